"""The exact response cache end to end: keys, streams both ways, controls, TTL, namespaces,
admin, Redis persistence across restarts and instances, and a Redis outage."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI
from tests.redis_server import RedisServer, start_redis

CONFIG = """
server: {{master_key: {key}}}
cache: {{redis_url: "{redis}", namespace: "{namespace}"}}
providers:
  openai: {{type: openai-compatible, base_url: "{mock}/v1"}}
models:
  - name: cached
    cache: {{mode: simple, max_age: 60, namespace: "{namespace}"}}
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: cached-cut
    cache: {{mode: simple, namespace: "{namespace}"}}
    targets: [{{provider: openai, model: cut-stream}}]
  - name: cached-embed
    cache: {{mode: simple, namespace: "{namespace}"}}
    targets: [{{provider: openai, model: embed-small}}]
  - name: plain
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: priced
    cache: {{mode: simple, namespace: "{namespace}"}}
    targets: [{{provider: openai, model: gpt-ok}}]
pricing:
  openai/gpt-ok: {{input: 1.5, output: 6, cached_input: 0.75}}
  gpt-ok: {{input: 1000, output: 1000}}
"""


def _config(mock: MockOpenAI, redis_url: str, namespace: str | None = None) -> str:
    namespace = namespace or f"test-{uuid.uuid4().hex[:8]}"  # runs never see each other's entries
    return str(
        write_config(
            CONFIG.format(key=MASTER_KEY, redis=redis_url, namespace=namespace, mock=mock.url)
        )
    )


@pytest.fixture(scope="module")
def cached(impl: str, mock: MockOpenAI) -> Iterator[Gateway]:
    # The machine's own Redis, as production would have it.
    gw = start_gateway(impl, ["--config", _config(mock, "redis://127.0.0.1:6379/0")])
    yield gw
    gw.stop()


@pytest.fixture
def cclient(cached: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=cached.v1, api_key=MASTER_KEY, max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


def _ask(client: openai.OpenAI, text: str, model: str = "cached", **kw: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": text}], **kw
    )


def _unique() -> str:
    return f"question {uuid.uuid4().hex}"


def test_miss_then_hit(cclient: openai.OpenAI, mock: MockOpenAI) -> None:
    text = _unique()
    first = _ask(cclient, text)
    assert first.headers["x-gateway-cache"] == "MISS"
    hits = mock.hits("gpt-ok")
    second = _ask(cclient, text)
    assert second.headers["x-gateway-cache"] == "HIT"
    assert second.headers["x-gateway-cache-key"] == first.headers["x-gateway-cache-key"]
    assert (
        len(second.headers["x-gateway-cache-key"]) == 40
        and text not in second.headers["x-gateway-cache-key"]
    )
    assert second.parse().choices[0].message.content == f"echo: {text}"
    assert mock.hits("gpt-ok") == hits  # served without the provider
    assert (
        _ask(cclient, text, temperature=0.3).headers["x-gateway-cache"] == "MISS"
    )  # part of the key
    assert _ask(cclient, text, user="someone").headers["x-gateway-cache"] == "HIT"  # not part of it


def test_uncached_model_has_no_cache_header(cclient: openai.OpenAI) -> None:
    assert "x-gateway-cache" not in _ask(cclient, _unique(), model="plain").headers


def test_non_stream_entry_replays_as_a_stream(cclient: openai.OpenAI) -> None:
    text = _unique()
    _ask(cclient, text)
    with cclient.chat.completions.stream(
        model="cached",
        messages=[{"role": "user", "content": text}],
        stream_options={"include_usage": True},
        extra_headers={"x-gateway-cache": ""},
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == f"echo: {text}"
    raw = cclient.chat.completions.with_raw_response.create(
        model="cached", messages=[{"role": "user", "content": text}], stream=True
    )
    assert raw.headers["x-gateway-cache"] == "HIT"
    assert (
        "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        == f"echo: {text}"
    )
    assert final.usage is not None and final.usage.total_tokens == 18


def test_streamed_miss_is_stored_and_answers_non_stream(cclient: openai.OpenAI) -> None:
    text = _unique()
    streamed = cclient.chat.completions.create(
        model="cached", messages=[{"role": "user", "content": text}], stream=True
    )
    content = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    again = _ask(cclient, text)
    assert again.headers["x-gateway-cache"] == "HIT"
    assert again.parse().choices[0].message.content == content
    assert again.parse().choices[0].finish_reason == "stop"


def test_cut_streams_are_not_stored(cclient: openai.OpenAI, mock: MockOpenAI) -> None:
    text = _unique()
    for _ in range(2):
        stream = cclient.chat.completions.create(
            model="cached-cut", messages=[{"role": "user", "content": text}], stream=True
        )
        with pytest.raises(openai.APIError):
            list(stream)
    assert mock.hits("cut-stream") >= 2  # the second went upstream again


def test_controls(cclient: openai.OpenAI, mock: MockOpenAI) -> None:
    text = _unique()
    assert (
        _ask(cclient, text, extra_headers={"x-gateway-cache": "no-store"}).headers[
            "x-gateway-cache"
        ]
        == "MISS"
    )
    assert _ask(cclient, text).headers["x-gateway-cache"] == "MISS"  # nothing was stored
    before = mock.hits("gpt-ok")
    assert (
        _ask(cclient, text, extra_headers={"x-gateway-cache": "no-cache"}).headers[
            "x-gateway-cache"
        ]
        == "BYPASS"
    )
    assert (
        _ask(cclient, text, extra_headers={"x-gateway-cache": "refresh"}).headers["x-gateway-cache"]
        == "REFRESH"
    )
    assert mock.hits("gpt-ok") == before + 2
    assert _ask(cclient, text).headers["x-gateway-cache"] == "HIT"
    with pytest.raises(openai.BadRequestError):
        _ask(cclient, text, extra_headers={"x-gateway-cache": "sometimes"})


def test_ttl(cclient: openai.OpenAI) -> None:
    text = _unique()
    _ask(cclient, text, extra_headers={"x-gateway-cache-ttl": "1"})
    assert _ask(cclient, text).headers["x-gateway-cache"] == "HIT"
    time.sleep(1.2)
    assert _ask(cclient, text).headers["x-gateway-cache"] == "MISS"


def test_namespaces_are_isolated(cclient: openai.OpenAI) -> None:
    text = _unique()
    _ask(cclient, text, extra_headers={"x-gateway-cache-namespace": "tenant-a"})
    assert (
        _ask(cclient, text, extra_headers={"x-gateway-cache-namespace": "tenant-b"}).headers[
            "x-gateway-cache"
        ]
        == "MISS"
    )
    assert (
        _ask(cclient, text, extra_headers={"x-gateway-cache-namespace": "tenant-a"}).headers[
            "x-gateway-cache"
        ]
        == "HIT"
    )
    with pytest.raises(openai.BadRequestError):
        _ask(cclient, text, extra_headers={"x-gateway-cache-namespace": "no spaces:allowed"})


def test_embeddings_are_cached(cached: Gateway) -> None:
    body = {"model": "cached-embed", "input": [_unique()], "encoding_format": "float"}
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    first = httpx.post(f"{cached.v1}/embeddings", json=body, headers=headers)
    second = httpx.post(f"{cached.v1}/embeddings", json=body, headers=headers)
    assert (first.headers["x-gateway-cache"], second.headers["x-gateway-cache"]) == ("MISS", "HIT")
    assert first.json()["data"] == second.json()["data"]


def test_per_request_cache_policy(cclient: openai.OpenAI) -> None:
    route = json.dumps(
        {"targets": [{"provider": "openai", "model": "gpt-ok"}], "cache": {"mode": "simple"}}
    )
    text = _unique()
    assert (
        _ask(cclient, text, model="any", extra_headers={"x-gateway-config": route}).headers[
            "x-gateway-cache"
        ]
        == "MISS"
    )
    assert (
        _ask(cclient, text, model="any", extra_headers={"x-gateway-config": route}).headers[
            "x-gateway-cache"
        ]
        == "HIT"
    )


def test_admin(cclient: openai.OpenAI, cached: Gateway) -> None:
    with httpx.Client(
        base_url=cached.url, headers={"authorization": f"Bearer {MASTER_KEY}"}
    ) as admin:
        _admin_checks(cclient, cached, admin)


def _admin_checks(cclient: openai.OpenAI, cached: Gateway, admin: httpx.Client) -> None:
    assert httpx.delete(f"{cached.url}/admin/cache?all=true").status_code == 401
    text = _unique()
    key = _ask(cclient, text).headers["x-gateway-cache-key"]
    assert admin.delete(f"/admin/cache?key={key}").json()["deleted"] >= 1
    assert _ask(cclient, text).headers["x-gateway-cache"] == "MISS"
    _ask(cclient, text, extra_headers={"x-gateway-cache-namespace": "wipe-me"})
    stats = admin.get("/admin/cache/stats").json()
    assert stats["entries"] >= 1 and stats["redis"] is True
    assert admin.delete("/admin/cache", params={"all": "true"}).json()["deleted"] >= 1
    assert _ask(cclient, text).headers["x-gateway-cache"] == "MISS"
    assert admin.delete("/admin/cache").status_code == 400
    metrics = httpx.get(f"{cached.url}/metrics").text
    assert 'gateway_cache_lookups_total{model="cached",result="hit"}' in metrics
    assert "gateway_cache_tokens_saved_total" in metrics


def test_cost_saved_at_the_configured_price(cached: Gateway, cclient: openai.OpenAI) -> None:
    text = _unique()
    usage = _ask(cclient, text, model="priced").parse().usage
    for _ in range(3):
        assert _ask(cclient, text, model="priced").headers["x-gateway-cache"] == "HIT"
    # "provider/model" wins over the bare model name's (deliberately absurd) price; cached
    # prompt tokens are priced at the cached rate.
    details = usage.prompt_tokens_details
    cached_tokens = details.cached_tokens if details and details.cached_tokens else 0
    fresh = usage.prompt_tokens - cached_tokens
    per_hit = (fresh * 1.5 + cached_tokens * 0.75 + usage.completion_tokens * 6) / 1e6
    metrics = httpx.get(f"{cached.url}/metrics").text
    line = next(
        x for x in metrics.splitlines()
        if x.startswith('gateway_cache_cost_saved_usd_total{model="priced"}')
    )  # fmt: skip
    assert float(line.split()[-1]) == pytest.approx(3 * per_hit)
    assert per_hit > 0


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_entries_survive_restart_and_reach_other_instances(
    impl: str, mock: MockOpenAI, private_redis: RedisServer
) -> None:
    config = _config(mock, private_redis.url, namespace="shared")
    text = _unique()
    first = start_gateway(impl, ["--config", config])
    with openai.OpenAI(base_url=first.v1, api_key=MASTER_KEY, max_retries=0) as c:
        assert _ask(c, text).headers["x-gateway-cache"] == "MISS"
        time.sleep(0.2)  # the write goes to Redis in the background
    first.stop()
    restarted = start_gateway(impl, ["--config", config])
    other = start_gateway(impl, ["--config", config])
    try:
        for gw in (restarted, other):
            with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as c:
                raw = _ask(c, text)
                assert raw.headers["x-gateway-cache"] == "HIT"
                assert raw.parse().choices[0].message.content == f"echo: {text}"
        private_redis.stop()  # Redis dies: lookups miss fast, writes are dropped, requests flow
        started = time.monotonic()
        with openai.OpenAI(base_url=other.v1, api_key=MASTER_KEY, max_retries=0) as c:
            assert _ask(c, text).headers["x-gateway-cache"] == "HIT"  # still in memory
            for _ in range(20):
                assert _ask(c, _unique()).headers["x-gateway-cache"] == "MISS"
        assert time.monotonic() - started < 5
    finally:
        restarted.stop()
        other.stop()


def test_a_stalled_redis_costs_requests_nothing_and_is_logged_once(
    impl: str, mock: MockOpenAI, private_redis: RedisServer
) -> None:
    """SIGSTOP leaves Redis accepting connections and answering nothing: each lookup would wait
    its whole timeout. After a few timeouts the breaker stops asking, so requests during the
    stall are fast again; the log says Redis was lost and came back, once each, not per drop."""
    import signal

    gw = start_gateway(impl, ["--config", _config(mock, private_redis.url)])
    try:
        with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as c:
            assert _ask(c, _unique()).headers["x-gateway-cache"] == "MISS"
            private_redis.process.send_signal(signal.SIGSTOP)
            try:
                took = []
                for _ in range(60):
                    started = time.monotonic()
                    assert _ask(c, _unique()).headers["x-gateway-cache"] == "MISS"
                    took.append(time.monotonic() - started)
                # The first few pay the 50 ms lookup timeout; after the breaker opens, none do
                # (the client's own clock sees a rare outlier from outside the gateway).
                after = sorted(took[10:])
                shown = " ".join(f"{t * 1000:.0f}" for t in took)
                assert after[len(after) // 2] < 0.02 and after[-3] < 0.04, shown
            finally:
                private_redis.process.send_signal(signal.SIGCONT)
            deadline = time.monotonic() + 10
            while "Redis reachable again" not in gw.output() and time.monotonic() < deadline:
                time.sleep(0.1)
            text = _unique()
            assert _ask(c, text).headers["x-gateway-cache"] == "MISS"
            time.sleep(0.3)
            assert _ask(c, text).headers["x-gateway-cache"] == "HIT"
        log = gw.output()
        assert log.count("Redis unreachable") == 1, log
        assert log.count("Redis reachable again") == 1, log
        assert "cache write not shared" not in log
    finally:
        gw.stop()
