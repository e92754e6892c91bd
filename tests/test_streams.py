"""Stream failure modes: before the first byte, mid-stream, cut connections, disconnecting clients."""

from __future__ import annotations

import time

import httpx2 as httpx
import openai
import pytest

from tests.harness import Gateway
from tests.mock_openai import MockOpenAI, wait_until

MESSAGES = [{"role": "user", "content": "hi"}]


def _events(http: httpx.Client, model: str) -> list[str]:
    body = {"model": model, "messages": MESSAGES, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line for line in response.iter_lines() if line]


def test_error_before_first_byte_is_an_http_error(client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="openai/fail-429", messages=MESSAGES, stream=True)  # type: ignore[arg-type]


def test_mid_stream_error_event_ends_without_done(client: openai.OpenAI, http: httpx.Client) -> None:
    events = _events(http, "openai/error-stream")
    assert events[-1].startswith('data: {"error":')
    assert "data: [DONE]" not in events
    with pytest.raises(openai.APIError, match="overloaded mid-stream"):
        list(client.chat.completions.create(model="openai/error-stream", messages=MESSAGES, stream=True))  # type: ignore[arg-type]


def test_cut_stream_ends_with_error_event(client: openai.OpenAI, http: httpx.Client) -> None:
    events = _events(http, "openai/cut-stream")
    assert len(events) == 3  # two relayed chunks, then the error event
    assert '"upstream_unavailable"' in events[-1]
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model="openai/cut-stream", messages=MESSAGES, stream=True))  # type: ignore[arg-type]


def test_stream_without_done_is_reported_as_cut(http: httpx.Client) -> None:
    events = _events(http, "openai/no-done")
    assert '"error"' in events[-1] and "data: [DONE]" not in events


def test_client_disconnect_cancels_upstream(gateway: Gateway, mock: MockOpenAI) -> None:
    before = mock.state.cancelled.count("endless-stream")
    body = {"model": "openai/endless-stream", "messages": MESSAGES, "stream": True}
    headers = {"authorization": "Bearer gw-master-key-for-tests"}
    with (
        httpx.Client(base_url=gateway.url, headers=headers) as c,
        c.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert next(response.iter_lines()).startswith("data: ")
    assert wait_until(lambda: mock.state.cancelled.count("endless-stream") > before, timeout=5)


def test_streams_are_relayed_incrementally(http: httpx.Client) -> None:
    body = {"model": "openai/drip-stream", "messages": MESSAGES, "stream": True}
    started = time.monotonic()
    arrivals = []
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic() - started)
    # The mock spaces its chunks 50 ms apart; a buffering relay would deliver them all at once.
    assert arrivals[-1] - arrivals[0] > 0.1
