"""OpenAI clients talking to Azure OpenAI deployments through the gateway."""

from __future__ import annotations

import openai
import pytest

from tests.mock_openai import AZURE_KEY, MockOpenAI


def test_deployment_url_and_key(pclient: openai.OpenAI, mock: MockOpenAI) -> None:
    completion = pclient.chat.completions.create(
        model="azure/my-gpt4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "echo: hi"
    sent = mock.state.last()
    assert sent.path == "/openai/deployments/my-gpt4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == AZURE_KEY
    assert "authorization" not in {k.lower() for k in sent.headers}


def test_v1_api(pclient: openai.OpenAI, mock: MockOpenAI) -> None:
    pclient.chat.completions.create(
        model="azure-v1/gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    sent = mock.state.last()
    assert sent.path == "/openai/v1/chat/completions" and sent.query == {}
    assert sent.body["model"] == "gpt-4o"


def test_stream_drops_the_filter_chunk(pclient: openai.OpenAI) -> None:
    chunks = list(
        pclient.chat.completions.create(
            model="azure/my-gpt4o", messages=[{"role": "user", "content": "a b"}], stream=True
        )
    )
    assert chunks and all(c.choices and c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "echo: a b "


def test_embeddings_through_a_deployment(pclient: openai.OpenAI, mock: MockOpenAI) -> None:
    result = pclient.embeddings.create(
        model="azure/embed-deploy", input=["x", "y"], encoding_format="float"
    )
    assert [d.index for d in result.data] == [0, 1]
    assert mock.state.last().path == "/openai/deployments/embed-deploy/embeddings"


def test_content_filter_is_a_400_with_its_code(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        pclient.chat.completions.create(
            model="azure/filtered", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.code == "content_filter"
