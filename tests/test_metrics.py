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


def test_ledger_exposes_what_prometheus_client_would() -> None:
    """The single-process ledger's samples equal prometheus_client's own Counter and Histogram
    fed the same observations (bounds included: a value equal to a bound is in its bucket)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from gateway.api.usage import Usage
    from gateway.observability.ledger import Ledger

    buckets = (0.001, 0.01, 0.1, 1.0)
    observations = [0.0005, 0.001, 0.002, 0.01, 0.5, 1.0, 7.0]
    ledger = Ledger(buckets)
    theirs = CollectorRegistry()
    requests = Counter("gateway_requests", "r", ["model", "provider", "status"], registry=theirs)
    seconds = Histogram(
        "gateway_request_duration_seconds", "s", ["model", "provider", "status"],
        buckets=buckets, registry=theirs,
    )  # fmt: skip
    for value in observations:
        ledger.request("m", "p", 200, value, None, None)
        requests.labels("m", "p", "200").inc()
        seconds.labels("m", "p", "200").observe(value)
    ledger.usage("m", "p", Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7))
    ledger.started()
    ours = CollectorRegistry()
    ours.register(ledger)
    mine = generate_latest(ours).decode()
    reference = generate_latest(theirs).decode()
    names = ("gateway_requests_total", "gateway_request_duration_seconds_bucket",
             "gateway_request_duration_seconds_count", "gateway_request_duration_seconds_sum")  # fmt: skip
    for name in names:
        for le in ("0.001", "0.01", "0.1", "1.0", "+Inf", None):
            labels = {"model": "m", "status": "200"} | ({"le": le} if le else {})
            assert _sample(mine, name, **labels) == _sample(reference, name, **labels), (name, le)
    assert _sample(mine, "gateway_request_duration_seconds_bucket", le="0.001") == 2
    assert _sample(mine, "gateway_tokens_total", type="prompt") == 3
    assert 'type="cached"' not in mine  # no cached tokens reported: no such series
    assert "gateway_in_flight_requests 1.0" in mine
