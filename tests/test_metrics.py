"""Prometheus metrics: requests by model/provider/status, latencies, time to first token, tokens."""

from __future__ import annotations

import re

import httpx2 as httpx
import openai

from tests.harness import Gateway

MESSAGES = [{"role": "user", "content": "hi"}]


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_tokens_and_ttft(gateway: Gateway, client: openai.OpenAI) -> None:
    before = httpx.get(f"{gateway.url}/metrics").text
    client.chat.completions.create(model="chat-default", messages=MESSAGES)  # type: ignore[arg-type]
    list(client.chat.completions.create(model="chat-default", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
    try:
        client.chat.completions.create(model="missing-model", messages=MESSAGES)  # type: ignore[arg-type]
    except openai.NotFoundError:
        pass
    after = httpx.get(f"{gateway.url}/metrics").text

    def delta(name: str, **labels: str) -> float:
        return _sample(after, name, **labels) - _sample(before, name, **labels)

    ok = {"model": "chat-default", "provider": "openai", "status": "200"}
    assert delta("gateway_requests_total", **ok) == 2
    assert delta("gateway_request_duration_seconds_count", **ok) == 2
    assert delta("gateway_requests_total", model="unknown", status="404") == 1
    assert delta("gateway_time_to_first_token_seconds_count", model="chat-default") == 1
    assert delta("gateway_upstream_duration_seconds_count", provider="openai") == 2
    # Both requests were accounted, the stream too (the gateway asked upstream for its usage).
    assert delta("gateway_tokens_total", model="chat-default", type="prompt") == 22
    assert delta("gateway_tokens_total", model="chat-default", type="cached") == 6
