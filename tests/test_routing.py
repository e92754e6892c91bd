"""Reliability routing end to end: fallback, retries, balancing, breakers, deadlines, stream-safe
failover, per-request config, admission and fault injection, against a fault-scripting mock."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI

CONFIG = """
server: {{master_key: {key}}}
routing: {{max_attempts: 4, fault_injection: true}}
providers:
  openai: {{api_key: {upstream}, base_url: "{mock}/v1"}}
  backup: {{type: openai-compatible, base_url: "{mock}/backup/v1"}}
  dead: {{type: openai-compatible, base_url: "http://127.0.0.1:9/v1", timeouts: {{connect: 1}}}}
  limited:
    type: openai-compatible
    base_url: "{mock}/limited/v1"
    admission: {{max_concurrent: 1, queue: 1, max_wait_ms: 300}}
models:
  - name: fb-basic
    strategy: {{mode: fallback}}
    targets: [{{provider: openai, model: status-503}}, {{provider: backup, model: gpt-ok}}]
  - name: fb-400
    strategy: {{mode: fallback}}
    targets: [{{provider: openai, model: fail-400}}, {{provider: backup, model: gpt-ok}}]
  - name: fb-custom
    strategy: {{mode: fallback, on_status_codes: [400]}}
    targets: [{{provider: openai, model: fail-400}}, {{provider: backup, model: gpt-ok}}]
  - name: fb-dead
    strategy: {{mode: fallback}}
    targets: [{{provider: dead, model: x}}, {{provider: openai, model: drop}}, {{provider: backup, model: gpt-ok}}]
  - name: fb-slow
    strategy: {{mode: fallback}}
    timeouts: {{first_byte: 0.4}}
    targets: [{{provider: openai, model: slow-3}}, {{provider: backup, model: gpt-ok}}]
  - name: retry-flaky
    retry: {{attempts: 3, backoff: {{initial_ms: 10, max_ms: 20}}}}
    targets: [{{provider: openai, model: flaky-r1-2}}]
  - name: retry-then-fallback
    strategy: {{mode: fallback}}
    retry: {{attempts: 5, backoff: {{initial_ms: 1, max_ms: 2}}}}
    breaker: {{enabled: false}}
    targets: [{{provider: openai, model: status-500}}, {{provider: openai, model: status-502}}, {{provider: backup, model: gpt-ok}}]
  - name: retry-after
    retry: {{attempts: 1, backoff: {{initial_ms: 1, max_ms: 1}}}}
    breaker: {{enabled: false}}
    targets: [{{provider: openai, model: flaky-ra-1-429}}]
  - name: retry-after-too-long
    strategy: {{mode: fallback}}
    retry: {{attempts: 2, max_retry_after_ms: 1000}}
    breaker: {{enabled: false}}
    targets: [{{provider: openai, model: status-429-ra-30}}, {{provider: backup, model: gpt-ok}}]
  - name: weighted
    strategy: {{mode: loadbalance}}
    targets: [{{provider: backup, model: w-a, weight: 3}}, {{provider: backup, model: w-b, weight: 1}}]
  - name: fastest
    strategy: {{mode: least-latency}}
    targets: [{{provider: backup, model: latency-one}}, {{provider: backup, model: latency-two}}]
  - name: busy
    strategy: {{mode: least-busy}}
    targets: [{{provider: backup, model: slow-0.3}}, {{provider: backup, model: gpt-ok}}]
  - name: breaker-single
    breaker: {{window: 4, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 600}}
    targets: [{{provider: openai, model: status-500}}]
  - name: breaker-fallback
    strategy: {{mode: fallback}}
    breaker: {{window: 4, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 60000}}
    targets: [{{provider: openai, model: status-502}}, {{provider: backup, model: gpt-ok}}]
  - name: breaker-429
    targets: [{{provider: openai, model: status-429-ra-1}}]
  - name: tiered
    strategy:
      mode: conditional
      conditions:
        - {{query: {{metadata.tier: pro}}, then: premium}}
        - {{query: {{$or: [{{params.max_tokens: {{$gte: 1000}}}}, {{signals.has_tools: true}}]}}, then: big}}
      default: basic
    targets:
      - {{name: premium, provider: backup, model: cond-premium}}
      - {{name: big, provider: backup, model: cond-big}}
      - {{name: basic, provider: backup, model: cond-basic}}
  - name: nested
    strategy: {{mode: fallback}}
    targets:
      - strategy: {{mode: loadbalance}}
        targets: [{{provider: openai, model: status-503}}, {{provider: openai, model: status-500}}]
      - {{alias: fb-basic}}
  - name: overridden
    targets: [{{provider: backup, model: gpt-ok, override_params: {{temperature: 0.0, max_tokens: 7}}}}]
  - name: stream-fb
    strategy: {{mode: fallback}}
    targets: [{{provider: openai, model: error-first}}, {{provider: backup, model: gpt-ok}}]
  - name: stream-mid
    strategy: {{mode: fallback}}
    targets: [{{provider: openai, model: error-stream}}, {{provider: backup, model: gpt-ok}}]
  - name: stream-stall
    strategy: {{mode: fallback}}
    timeouts: {{first_byte: 0.4}}
    targets: [{{provider: openai, model: stall-stream}}, {{provider: backup, model: gpt-ok}}]
  - name: stream-idle
    timeouts: {{idle: 0.3}}
    targets: [{{provider: openai, model: stall-mid}}]
  - name: queued
    targets: [{{provider: limited, model: slow-0.5}}]
  - name: drill
    strategy: {{mode: fallback}}
    timeouts: {{first_byte: 0.5}}
    targets: [{{provider: openai, model: gpt-ok}}, {{provider: backup, model: gpt-ok}}]
"""
HI: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def routing(impl: str, mock: MockOpenAI) -> Iterator[Gateway]:
    config = write_config(CONFIG.format(key=MASTER_KEY, upstream=UPSTREAM_KEY, mock=mock.url))
    gw = start_gateway(impl, ["--config", str(config)])
    yield gw
    gw.stop()


@pytest.fixture(autouse=True)
def _fresh_counters(mock: MockOpenAI) -> None:
    mock.counters.clear()  # flaky targets fail anew in each test


@pytest.fixture
def rclient(routing: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=routing.v1, api_key=MASTER_KEY, max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


def _chat(client: openai.OpenAI, model: str, **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(model=model, messages=HI, **kw)


def test_fallback_on_listed_status(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    raw = _chat(rclient, "fb-basic")
    assert raw.parse().choices[0].message.content == "echo: hi"
    assert raw.headers["x-gateway-provider"] == "backup"
    assert raw.headers["x-gateway-fallback-index"] == "1"
    assert raw.headers["x-gateway-attempts"] == "2"


def test_no_fallback_on_unlisted_status(rclient: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        _chat(rclient, "fb-400")
    assert info.value.response.headers["x-gateway-attempts"] == "1"
    assert _chat(rclient, "fb-custom").headers["x-gateway-provider"] == "backup"  # listed there


def test_fallback_on_connection_errors(rclient: openai.OpenAI) -> None:
    raw = _chat(rclient, "fb-dead")  # refused, then dropped mid-response, then served
    assert raw.headers["x-gateway-fallback-index"] == "2"
    assert raw.headers["x-gateway-attempts"] == "3"


def test_fallback_on_first_byte_deadline(rclient: openai.OpenAI) -> None:
    started = time.monotonic()
    raw = _chat(rclient, "fb-slow")
    assert raw.headers["x-gateway-provider"] == "backup"
    assert time.monotonic() - started < 2.5


def test_retries_with_backoff_then_success(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    raw = _chat(rclient, "retry-flaky")
    assert raw.headers["x-gateway-attempts"] == "3"  # two 503s, then an answer


def test_retry_budget_caps_all_attempts(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    # 6 tries per target would be 18; routing.max_attempts is 4, retries included.
    with pytest.raises(openai.APIStatusError) as info:
        _chat(rclient, "retry-then-fallback")
    assert info.value.response.headers["x-gateway-attempts"] == "4"


def test_retry_after_is_honoured(rclient: openai.OpenAI) -> None:
    started = time.monotonic()
    raw = _chat(rclient, "retry-after")  # 429 with retry-after: 1, then an answer
    assert raw.headers["x-gateway-attempts"] == "2"
    assert time.monotonic() - started >= 0.95


def test_retry_after_beyond_the_cap_moves_on_at_once(rclient: openai.OpenAI) -> None:
    started = time.monotonic()
    raw = _chat(rclient, "retry-after-too-long")
    assert raw.headers["x-gateway-provider"] == "backup"
    assert raw.headers["x-gateway-attempts"] == "2"
    assert time.monotonic() - started < 1.0


def test_weights_respected(rclient: openai.OpenAI) -> None:
    models = Counter(_chat(rclient, "weighted").headers["x-gateway-model"] for _ in range(80))
    assert models == {"w-a": 60, "w-b": 20}  # smooth weighted round robin is exact


def test_least_latency_moves_away_and_back(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    mock.latencies.update({"one": 0.15, "two": 0.0})
    picks = Counter(_chat(rclient, "fastest").headers["x-gateway-model"] for _ in range(40))
    assert picks["latency-two"] >= 32
    mock.latencies.update({"one": 0.0, "two": 0.15})  # the slow one recovers; the other slows
    for _ in range(80):
        _chat(rclient, "fastest")
    picks = Counter(_chat(rclient, "fastest").headers["x-gateway-model"] for _ in range(30))
    assert picks["latency-one"] >= 22


def test_least_busy_spreads_concurrent_requests(routing: Gateway) -> None:
    results: list[str] = []

    def one() -> None:
        with openai.OpenAI(base_url=routing.v1, api_key=MASTER_KEY, max_retries=0) as c:
            results.append(_chat(c, "busy").headers["x-gateway-model"])

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join()
    # The slow target holds its requests; the others go to the free one.
    assert Counter(results)["gpt-ok"] >= 4


def test_breaker_opens_then_probes(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            _chat(rclient, "breaker-single")
    before = mock.hits("status-500")
    with pytest.raises(openai.InternalServerError) as info:
        _chat(rclient, "breaker-single")
    assert info.value.status_code == 503 and info.value.code == "no_healthy_targets"
    assert int(info.value.response.headers["retry-after"]) >= 1
    assert mock.hits("status-500") == before  # open: the target was not called
    time.sleep(0.7)
    with pytest.raises(openai.InternalServerError) as probe:
        _chat(rclient, "breaker-single")
    assert probe.value.status_code == 500  # the half-open probe went through, and failed
    assert mock.hits("status-500") == before + 1
    with pytest.raises(openai.InternalServerError) as again:
        _chat(rclient, "breaker-single")
    assert again.value.code == "no_healthy_targets"  # re-opened, for longer


def test_dead_target_gets_no_traffic_while_open(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    before = mock.hits("status-502")
    for _ in range(30):
        assert _chat(rclient, "breaker-fallback").headers["x-gateway-provider"] == "backup"
    assert mock.hits("status-502") - before <= 2  # tripped after min_requests; skipped after


def test_429_with_retry_after_opens_for_that_long(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        _chat(rclient, "breaker-429")
    with pytest.raises(openai.InternalServerError) as info:
        _chat(rclient, "breaker-429")
    assert info.value.code == "no_healthy_targets"
    time.sleep(1.1)
    with pytest.raises(openai.RateLimitError):
        _chat(rclient, "breaker-429")  # cooled down: tried again


def test_conditional_routing(rclient: openai.OpenAI) -> None:
    def model(**kw: Any) -> str:
        return str(_chat(rclient, "tiered", **kw).headers["x-gateway-model"])

    assert (
        model(extra_headers={"x-gateway-metadata": json.dumps({"tier": "pro"})}) == "cond-premium"
    )
    assert model(max_tokens=2000) == "cond-big"
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert model(tools=tools) == "cond-big"
    assert model() == "cond-basic"
    with pytest.raises(openai.BadRequestError) as info:
        model(extra_headers={"x-gateway-metadata": "[1, 2]"})
    assert info.value.body["param"] == "x-gateway-metadata"  # type: ignore[index]


def test_nested_strategies_and_aliases(rclient: openai.OpenAI) -> None:
    raw = _chat(rclient, "nested")
    assert raw.headers["x-gateway-provider"] == "backup"
    assert raw.headers["x-gateway-fallback-index"] == "1.1"  # second child: fb-basic's second


def test_override_params(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    _chat(rclient, "overridden", temperature=1.5)
    body = mock.state.last().body
    assert body["temperature"] == 0.0 and body["max_tokens"] == 7


def _stream_events(routing: Gateway, model: str) -> tuple[httpx.Response, list[str]]:
    response = httpx.post(
        f"{routing.v1}/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": model, "messages": HI, "stream": True},
        timeout=20,
    )
    return response, [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]


def test_stream_failing_before_content_is_served_by_the_fallback(routing: Gateway) -> None:
    response, events = _stream_events(routing, "stream-fb")
    assert response.status_code == 200
    assert response.headers["x-gateway-provider"] == "backup"
    assert events[-1] == "[DONE]"
    assert not any('"error"' in e for e in events)


def test_stream_failing_after_content_ends_with_error_and_no_done(routing: Gateway) -> None:
    response, events = _stream_events(routing, "stream-mid")
    assert response.headers["x-gateway-provider"] == "openai"  # committed: never switched
    assert events[-1] != "[DONE]" and "error" in json.loads(events[-1])
    contents = [c["delta"].get("content") for e in events[:-1] for c in json.loads(e)["choices"]]
    assert "echo: " in contents  # the client had content before the failure


def test_stream_first_byte_deadline_fails_over(routing: Gateway) -> None:
    started = time.monotonic()
    response, events = _stream_events(routing, "stream-stall")
    assert response.headers["x-gateway-provider"] == "backup" and events[-1] == "[DONE]"
    assert time.monotonic() - started < 2.5


def test_stream_idle_deadline(routing: Gateway) -> None:
    started = time.monotonic()
    _, events = _stream_events(routing, "stream-idle")
    assert "timeout" in json.loads(events[-1])["error"]["code"]
    assert time.monotonic() - started < 2.5


def test_request_deadline(rclient: openai.OpenAI) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as info:
        _chat(rclient, "openai/slow-3", extra_headers={"x-gateway-timeout": "0.4"})
    assert info.value.status_code == 504
    assert time.monotonic() - started < 2.0


def test_config_header(rclient: openai.OpenAI) -> None:
    route = {"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "model": "status-500"}, {"provider": "backup", "model": "from-header"}]}  # fmt: skip
    raw = _chat(rclient, "anything", extra_headers={"x-gateway-config": json.dumps(route)})
    assert raw.headers["x-gateway-model"] == "from-header"
    bad = {"targets": [{"provider": "openai", "model": "m", "weight": "heavy"}]}
    with pytest.raises(openai.BadRequestError) as info:
        _chat(rclient, "anything", extra_headers={"x-gateway-config": json.dumps(bad)})
    assert "targets[0].weight: expected a number" in info.value.message
    assert info.value.body["param"] == "x-gateway-config"  # type: ignore[index]
    unknown = {"targets": [{"provider": "nowhere", "model": "m"}]}
    with pytest.raises(openai.BadRequestError) as info:
        _chat(rclient, "anything", extra_headers={"x-gateway-config": json.dumps(unknown)})
    assert "targets[0].provider: 'nowhere' is not a configured provider" in info.value.message


def test_admission_queue_then_429(routing: Gateway) -> None:
    statuses: list[int] = []

    def one() -> None:
        response = httpx.post(
            f"{routing.v1}/chat/completions",
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "queued", "messages": HI},
            timeout=20,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "gateway_overloaded"

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    # One runs; one waits 300 ms in the queue for a slot held 500 ms, then gives up; one finds
    # the queue full at once.
    assert sorted(statuses) == [200, 429, 429]


def test_fault_injection_drills(rclient: openai.OpenAI, routing: Gateway) -> None:
    raw = _chat(rclient, "drill", extra_headers={"x-gateway-fault": "status=503; target=openai"})
    assert raw.headers["x-gateway-provider"] == "backup"
    started = time.monotonic()
    raw = _chat(
        rclient, "drill", extra_headers={"x-gateway-fault": "stall=5; target=openai/gpt-ok"}
    )
    assert raw.headers["x-gateway-provider"] == "backup"  # the stall hit the first-byte deadline
    assert time.monotonic() - started < 2.5
    raw = _chat(rclient, "drill", extra_headers={"x-gateway-fault": "status=503; times=1"})
    assert raw.headers["x-gateway-fallback-index"] == "1"  # only the first attempt was hit
    cut = httpx.post(
        f"{routing.v1}/chat/completions",
        headers={
            "authorization": f"Bearer {MASTER_KEY}",
            "x-gateway-fault": "cut=2; target=openai",
        },
        json={
            "model": "drill",
            "messages": [{"role": "user", "content": "a b c d e"}],
            "stream": True,
        },
        timeout=20,
    )
    lines = [line[6:] for line in cut.text.splitlines() if line.startswith("data: ")]
    assert "error" in json.loads(lines[-1])
    with pytest.raises(openai.BadRequestError):
        _chat(rclient, "drill", extra_headers={"x-gateway-fault": "status=99"})


def test_routing_metrics(routing: Gateway) -> None:
    text = httpx.get(f"{routing.url}/metrics").text
    assert "gateway_retries_total{" in text
    assert "gateway_fallbacks_total{" in text
    assert 'gateway_breaker_state{target="openai/status-500"}' in text
    assert 'gateway_errors_total{fault="provider"}' in text
    assert 'gateway_errors_total{fault="caller"}' in text


def test_operator_can_disable_config_header_and_drills(impl: str, mock: MockOpenAI) -> None:
    config = write_config(
        f"""
server: {{master_key: {MASTER_KEY}}}
routing: {{config_header: false}}
providers:
  openai: {{type: openai-compatible, base_url: "{mock.url}/v1"}}
"""
    )
    gw = start_gateway(impl, ["--config", str(config)])
    try:
        with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as client:
            route = {"targets": [{"provider": "openai", "model": "gpt-ok"}]}
            with pytest.raises(openai.BadRequestError) as info:
                _chat(client, "openai/gpt-ok", extra_headers={"x-gateway-config": json.dumps(route)})
            assert info.value.code == "config_header_disabled"
            # fault_injection is off by default: the drill header is ignored.
            raw = _chat(client, "openai/gpt-ok", extra_headers={"x-gateway-fault": "status=503"})
            assert raw.parse().choices[0].message.content == "echo: hi"
    finally:
        gw.stop()
