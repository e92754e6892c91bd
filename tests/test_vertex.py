"""Vertex AI: Gemini and Claude models through one provider, with OAuth tokens minted from a
service-account key by google-auth and renewed before they expire."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_vertex import PROJECT, MockVertex, service_account_file


@pytest.fixture(scope="module")
def vertex(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockVertex]:
    server = MockVertex().start()
    path, public = service_account_file(tmp_path_factory.mktemp("vertex"), f"{server.url}/token")
    server.public_key = public
    server.key_file = path  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vertex_gateway(impl: str, vertex: MockVertex) -> Iterator[Gateway]:
    config = write_config(
        f"""
server: {{master_key: {MASTER_KEY}}}
providers:
  vertex: {{base_url: "{vertex.url}", region: us-east5}}
"""
    )
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(vertex.key_file)}  # type: ignore[attr-defined]
    gw = start_gateway(impl, ["--config", str(config)], env)
    yield gw
    gw.stop()


@pytest.fixture
def vclient(vertex_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=vertex_gateway.v1,
        api_key=MASTER_KEY,
        max_retries=0,
        _strict_response_validation=True,
    ) as c:
        yield c


def test_gemini_on_vertex(vclient: openai.OpenAI, vertex: MockVertex) -> None:
    completion = vclient.chat.completions.create(
        model="vertex/gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "echo: hi"
    sent = vertex.state.last()
    assert (
        sent.path
        == f"/v1/projects/{PROJECT}/locations/us-east5/publishers/google/models/gemini-2.0-flash:generateContent"
    )
    assert sent.headers["authorization"].startswith("Bearer ya29.mock-")
    assert "x-goog-api-key" not in sent.headers
    chunks = list(
        vclient.chat.completions.create(
            model="vertex/gemini-2.0-flash",
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"


def test_claude_on_vertex(vclient: openai.OpenAI, vertex: MockVertex) -> None:
    completion = vclient.chat.completions.create(
        model="vertex/claude-sonnet-4@20250514", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "echo: hi"
    sent = vertex.state.last()
    assert sent.path.endswith("/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict")
    assert sent.body["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent.body
    assert sent.body["max_tokens"] == 16384
    chunks = list(
        vclient.chat.completions.create(
            model="vertex/claude-sonnet-4@20250514",
            messages=[{"role": "user", "content": "a b"}],
            stream=True,
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b"
    assert vertex.state.last().path.endswith(":streamRawPredict")


def test_fresh_token_is_reused(vclient: openai.OpenAI, vertex: MockVertex) -> None:
    vclient.chat.completions.create(
        model="vertex/gemini-2.0-flash", messages=[{"role": "user", "content": "x"}]
    )
    first = vertex.state.last().headers["authorization"]
    minted = len(vertex.minted)
    vclient.chat.completions.create(
        model="vertex/gemini-2.0-flash", messages=[{"role": "user", "content": "x"}]
    )
    assert vertex.state.last().headers["authorization"] == first
    assert len(vertex.minted) == minted  # no second exchange


def test_token_is_renewed_before_it_expires(impl: str, vertex: MockVertex) -> None:
    vertex.token_lifetime = 120  # inside the five-minute renewal margin from the start
    config = write_config(
        f'server: {{master_key: {MASTER_KEY}}}\nproviders:\n  vertex: {{base_url: "{vertex.url}"}}\n'
    )
    gw = start_gateway(
        impl, ["--config", str(config)], {"GOOGLE_APPLICATION_CREDENTIALS": str(vertex.key_file)}
    )  # type: ignore[attr-defined]
    try:
        with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as client:
            seen = []
            for _ in range(2):
                client.chat.completions.create(
                    model="vertex/gemini-2.0-flash", messages=[{"role": "user", "content": "x"}]
                )
                seen.append(vertex.state.last().headers["authorization"])
        assert seen[0] != seen[1]  # each request found its token about to lapse and renewed it
        assert all(vertex.minted[t.removeprefix("Bearer ")] > time.time() for t in seen)
    finally:
        vertex.token_lifetime = 3600
        gw.stop()


def test_missing_credentials_file_is_a_config_error(impl: str, tmp_path: Path) -> None:
    config = write_config("providers:\n  vertex: {project: p}\n")
    gw = start_gateway(
        impl,
        ["--config", str(config)],
        {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json")},
        wait=False,
    )
    assert gw.process.wait(30) == 2
    assert "missing.json" in gw.output()
