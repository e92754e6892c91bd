"""Embeddings (float and the SDK's default base64) and the models endpoints."""

from __future__ import annotations

import urllib.parse

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, Gateway
from tests.mock_openai import MockOpenAI


@pytest.fixture
def loose(gateway: Gateway) -> openai.OpenAI:
    # The SDK validates base64 embeddings as lists before decoding them, so strict mode would
    # reject OpenAI's own answers; base64 is checked through the SDK's decoded result instead.
    return openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0)


def test_embeddings_float(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="chat-default", input=["a", "b"], encoding_format="float")
    assert [d.index for d in result.data] == [0, 1]
    assert result.data[1].embedding == [1.5, -1.25, 3.0]


def test_embeddings_default_base64(loose: openai.OpenAI, mock: MockOpenAI) -> None:
    result = loose.embeddings.create(model="chat-default", input=["a", "b"])
    assert mock.state.last().body["encoding_format"] == "base64"
    assert result.data[1].embedding == [1.5, -1.25, 3.0]


def test_embeddings_base64_from_float_only_upstream(loose: openai.OpenAI, mock: MockOpenAI) -> None:
    result = loose.embeddings.create(model="local-embed", input="a")
    assert mock.state.last().body["encoding_format"] == "float"  # downgraded for this vendor
    assert result.data[0].embedding == [0.5, -1.25, 3.0]


def test_list_models(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["chat-default", "balanced", "unreachable", "local-embed"]


def test_retrieve_model_with_slash_raw_and_encoded(http: httpx.Client) -> None:
    for path in ("/v1/models/groq/llama-3.1-8b-instant", "/v1/models/" + urllib.parse.quote("groq/llama-3.1-8b-instant", safe="")):
        response = http.get(path)
        assert response.status_code == 200, response.text
        assert response.json()["id"] == "groq/llama-3.1-8b-instant"
        assert response.json()["object"] == "model"


def test_retrieve_model_via_sdk(client: openai.OpenAI) -> None:
    assert client.models.retrieve("chat-default").id == "chat-default"
    assert client.models.retrieve("groq/some-model").owned_by == "groq"
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nope/nothing")
    assert caught.value.code == "model_not_found"


def test_health(gateway: Gateway, impl: str) -> None:
    assert httpx.get(f"{gateway.url}/health/live").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/ready").json()
    assert ready["status"] == "ready"
    assert ready["extensions"] == impl  # the build under test is the one that was loaded
