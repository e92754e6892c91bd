"""Metering end to end: costs in headers and usage chunks, the ledger in SQLite and in
PostgreSQL, the usage API's sums against what the mock reported, restarts and kill -9,
abandoned and cut streams, unpriced models, a store that is down, and bad parameters."""

from __future__ import annotations

import json
import signal
import tempfile
import time
from decimal import Decimal
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from tests.mock_openai import MockOpenAI

CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
models:
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
pricing:
  openai/cut-stream: {{input: 1, output: 2}}
  openai/endless-stream: {{input: 1, output: 2}}
  openai/no-usage: {{input: 1, output: 2}}
usage: {{store: {store}, flush_interval: 1}}
"""
# The mock reports 11 prompt tokens (3 cached) and 7 completion tokens; gpt-4o-mini costs
# $0.15 / $0.075 cached / $0.60 per million in the shipped catalog.
ONE_COST = Decimal("0.000005625")
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}


def start(impl: str, mock: MockOpenAI, store: str, data: str | None = None) -> Gateway:
    config = write_config(CONFIG.format(mock=mock.url, store=json.dumps(store)))
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    if data is not None:
        env["GATEWAY_DATA_DIR"] = data
    return start_gateway(impl, ["--config", str(config)], env)


def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0)


def usage(gateway: Gateway, query: str = "") -> dict:
    reply = httpx.get(f"{gateway.url}/v1/usage?{query}", headers=AUTH, timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json(parse_float=Decimal)


def traffic(gateway: Gateway) -> None:
    """Three priced requests by two users and two features, one stream; one unpriced."""
    with client(gateway) as c:
        for user, feature in (("alice", "search"), ("bob", "search"), ("alice", "chat")):
            meta = json.dumps({"feature": feature, "tags": ["beta"]})
            raw = c.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], user=user,
                extra_headers={"x-gateway-metadata": meta},
            )  # fmt: skip
            assert Decimal(raw.headers["x-gateway-cost"]) == ONE_COST
        stream = c.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], user="carol",
            stream=True, stream_options={"include_usage": True},
        )  # fmt: skip
        chunks = list(stream)
        assert chunks[-1].usage is not None
        assert Decimal(str(chunks[-1].usage.model_extra["cost"])) == ONE_COST  # type: ignore[index]
        raw = c.chat.completions.with_raw_response.create(
            model="openai/gpt-ok", messages=[{"role": "user", "content": "hi"}]
        )
        assert "x-gateway-cost" not in raw.headers  # no price: never a made-up $0


def test_costs_reach_clients_and_the_usage_api_sums_them(impl: str, mock: MockOpenAI, store: str) -> None:
    gateway = start(impl, mock, store)
    try:
        traffic(gateway)
        found = usage(gateway, "group_by=model,user,feature,tag&bucket=1h")
        assert found["requests"] == 5, found
        assert found["total_cost"] == 4 * ONE_COST
        assert found["input_tokens"] == 5 * 11 and found["output_tokens"] == 5 * 7
        assert found["unpriced_requests"] == 1 and found["unpriced_tokens"] == 18
        assert found["by_model"]["chat"]["cost"] == 4 * ONE_COST
        assert found["by_model"]["chat"]["requests"] == 4
        assert found["by_model"]["openai/gpt-ok"]["cost"] == 0
        assert found["by_model"]["openai/gpt-ok"]["unpriced_requests"] == 1
        assert found["by_user"]["alice"]["cost"] == 2 * ONE_COST
        assert found["by_user"]["bob"]["requests"] == 1
        assert found["by_feature"]["search"]["cost"] == 2 * ONE_COST
        assert found["by_feature"]["chat"]["requests"] == 1
        assert found["by_tag"]["beta"]["requests"] == 3
        assert sum(b["requests"] for b in found["series"]) == 5
        filtered = usage(gateway, "user=alice&group_by=feature")
        assert filtered["requests"] == 2 and set(filtered["by_feature"]) == {"search", "chat"}
        rows = httpx.get(f"{gateway.url}/v1/usage/requests?user=carol", headers=AUTH).json()
        (row,) = rows["data"]
        assert row["served_model"] == "gpt-4o-mini" and row["price_id"] == "openai/gpt-4o-mini"
        assert row["input_tokens"] == 11 and row["cached_tokens"] == 3 and not row["counted"]
        assert row["ttft_ms"] is not None and row["status"] == 200
        start_time = int(time.time()) - 3600
        page = httpx.get(
            f"{gateway.url}/v1/organization/usage/completions",
            params={"start_time": start_time, "bucket_width": "1h", "group_by": "model"},
            headers=AUTH,
        ).json()  # fmt: skip
        results = [r for b in page["data"] for r in b["results"]]
        assert page["object"] == "page" and all(b["object"] == "bucket" for b in page["data"])
        assert sum(r["num_model_requests"] for r in results) == 5
        assert {r["model"] for r in results} == {"chat", "openai/gpt-ok"}
        costs = httpx.get(
            f"{gateway.url}/v1/organization/costs", params={"start_time": start_time}, headers=AUTH
        ).json(parse_float=Decimal)
        total = sum(r["amount"]["value"] for b in costs["data"] for r in b["results"])
        assert total == 4 * ONE_COST
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'gateway_unpriced_requests_total{model="openai/gpt-ok",provider="openai"} 1.0' in metrics
    finally:
        gateway.stop()
    assert gateway.output().count("no price for openai/gpt-ok") == 1  # once per model


def test_rows_survive_a_restart_and_a_kill(impl: str, mock: MockOpenAI, store: str) -> None:
    data = tempfile.mkdtemp(prefix="gateway-data-")
    gateway = start(impl, mock, store, data)
    with client(gateway) as c:
        c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert gateway.stop() == 0  # SIGTERM flushes what is queued
    gateway = start(impl, mock, store, data)
    with client(gateway) as c:
        for _ in range(5):  # killed before its writer's next flush: the rows are in the spool
            c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
    gateway.stop(signal.SIGKILL)
    gateway = start(impl, mock, store, data)
    try:
        assert usage(gateway)["requests"] == 6
        rows = httpx.get(f"{gateway.url}/v1/usage/requests?limit=100", headers=AUTH).json()["data"]
        assert len(rows) == 6
        assert len({r["request_id"] for r in rows}) == 6
    finally:
        gateway.stop()


def test_an_answer_without_usage_is_charged_for_what_it_said(impl: str, mock: MockOpenAI) -> None:
    """A whole answer that reports no usage (some self-hosted servers send none) is charged
    for its counted prompt and its counted output (its text and tool calls), marked counted."""
    from gateway.metering.tokens import count_text

    gateway = start(impl, mock, "sqlite")
    try:
        with client(gateway) as c:
            said = c.chat.completions.create(
                model="openai/no-usage", messages=[{"role": "user", "content": "one two three four"}]
            )
            called = c.chat.completions.create(
                model="openai/no-usage-tools", messages=[{"role": "user", "content": "call it"}],
                tools=[{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            )  # fmt: skip
        assert said.usage is None and said.choices[0].message.content == "echo: one two three four"
        time.sleep(0.5)
        rows = httpx.get(f"{gateway.url}/v1/usage/requests", headers=AUTH).json()["data"]
        by_model = {row["model"]: row for row in rows}
        text, tools = by_model["openai/no-usage"], by_model["openai/no-usage-tools"]
        assert text["counted"] is True and tools["counted"] is True
        assert text["input_tokens"] > 0
        assert text["output_tokens"] == count_text("echo: one two three four", "no-usage")
        function = called.choices[0].message.tool_calls[0].function  # type: ignore[index]
        assert tools["output_tokens"] >= count_text(function.name + function.arguments, "x") > 0
        assert text["cost"] == pytest.approx((text["input_tokens"] + text["output_tokens"] * 2) / 1e6)
    finally:
        gateway.stop()


def test_a_translated_answer_is_priced_by_the_model_that_served_it(
    impl: str, anthropic_mock: MockAnthropic
) -> None:
    """Anthropic answers an alias with its dated model: that id is the ledger's served model
    and the price looked up first, whole and streamed (only the dated id has a price here)."""
    config = write_config(f"""
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  anthropic: {{api_key: {ANTHROPIC_KEY}, base_url: "{anthropic_mock.url}"}}
pricing:
  anthropic/claude-alias-20250101: {{input: 1, output: 2}}
usage: {{store: "sqlite", flush_interval: 1}}
""")  # fmt: skip
    gateway = start_gateway(impl, ["--config", str(config)], {"TEST_MASTER_KEY": MASTER_KEY})
    try:
        with client(gateway) as c:
            c.chat.completions.create(model="anthropic/claude-alias", messages=[{"role": "user", "content": "hi"}])
            for _ in c.chat.completions.create(
                model="anthropic/claude-alias", messages=[{"role": "user", "content": "hi"}], stream=True
            ):  # fmt: skip
                pass
        time.sleep(0.5)
        rows = httpx.get(f"{gateway.url}/v1/usage/requests", headers=AUTH).json()["data"]
        assert len(rows) == 2
        for row in rows:
            assert row["served_model"] == "claude-alias-20250101"
            assert row["price_id"] == "override/anthropic/claude-alias-20250101" and row["cost"] is not None
    finally:
        gateway.stop()


def test_a_service_tier_is_priced_at_its_own_rates(impl: str, mock: MockOpenAI) -> None:
    """OpenAI says it served at the priority tier (about twice the price): the ledger prices
    it at that tier's catalog rates and names the tier in the price id, whole and streamed;
    flex likewise; the default tier at the model's own rates."""
    gateway = start(impl, mock, "sqlite")
    messages: Any = [{"role": "user", "content": "hi"}]
    try:
        with client(gateway) as c:
            for tier in ("priority", "flex", "default"):
                c.chat.completions.create(model="openai/o3", messages=messages, service_tier=tier)  # type: ignore[arg-type]
            for _ in c.chat.completions.create(
                model="openai/o3", messages=messages, service_tier="priority", stream=True,
                stream_options={"include_usage": True},
            ):  # fmt: skip
                pass
        time.sleep(0.5)
        rows = httpx.get(f"{gateway.url}/v1/usage/requests?limit=10", headers=AUTH).json()["data"]
    finally:
        gateway.stop()
    by_price = {}
    for row in rows:
        by_price.setdefault(row["price_id"], []).append(row["cost"])
    assert sorted(by_price) == ["openai/o3", "openai/o3#flex", "openai/o3#priority"], rows
    assert len(by_price["openai/o3#priority"]) == 2, rows  # whole and streamed
    base, flex = by_price["openai/o3"][0], by_price["openai/o3#flex"][0]
    priority = by_price["openai/o3#priority"][0]
    assert priority > 1.5 * base and flex < base


def test_cut_and_abandoned_streams_are_counted(impl: str, mock: MockOpenAI) -> None:
    gateway = start(impl, mock, "sqlite")
    try:
        with client(gateway) as c, pytest.raises(openai.APIError):
            for _ in c.chat.completions.create(
                model="openai/cut-stream", messages=[{"role": "user", "content": "a b c d e f"}],
                stream=True,
            ):  # fmt: skip
                pass
        with httpx.stream(
            "POST", f"{gateway.v1}/chat/completions", headers=AUTH, timeout=10,
            json={"model": "openai/endless-stream", "stream": True,
                  "messages": [{"role": "user", "content": "go on"}]},
        ) as reply:  # fmt: skip
            for n, _ in enumerate(reply.iter_bytes()):
                if n >= 2:
                    break
        time.sleep(0.5)
        rows = httpx.get(f"{gateway.url}/v1/usage/requests", headers=AUTH).json()["data"]
        by_model = {row["model"]: row for row in rows}
        cut, left = by_model["openai/cut-stream"], by_model["openai/endless-stream"]
        for row in (cut, left):
            assert row["counted"] is True
            assert row["input_tokens"] > 0 and row["output_tokens"] > 0
            expected = (row["input_tokens"] * 1 + row["output_tokens"] * 2) / 1e6
            assert row["cost"] == pytest.approx(expected)
        assert left["status"] == 499
    finally:
        gateway.stop()


def test_a_store_that_is_down_degrades_metering_not_requests(impl: str, mock: MockOpenAI) -> None:
    gateway = start(impl, mock, "postgresql://postgres@127.0.0.1:9/nothing")
    try:
        with client(gateway) as c:
            answer = c.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content
        ready = httpx.get(f"{gateway.url}/health/ready").json()
        assert ready["status"] == "ready"
        assert ready["metering"]["degraded"] is True and ready["metering"]["queued"] >= 1
        reply = httpx.get(f"{gateway.url}/v1/usage", headers=AUTH)
        assert reply.status_code == 503 and reply.json()["error"]["code"] == "service_unavailable"
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert "gateway_usage_store_up 0.0" in metrics
    finally:
        gateway.stop(timeout=30)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("/v1/usage?time_range=yesterday", "time_range"),
        ("/v1/usage?group_by=colour", "group_by"),
        ("/v1/usage?start=not-a-date", "start"),
        ("/v1/usage?start=2026-12-02T00:00:00Z&end=2026-12-01T00:00:00Z", "end"),
        ("/v1/usage?bucket=1w", "bucket"),
        ("/v1/usage/requests?limit=0", "limit"),
        ("/v1/organization/usage/completions", "start_time"),
        ("/v1/organization/usage/completions?start_time=1&bucket_width=1y", "bucket_width"),
        ("/v1/organization/costs?start_time=1&bucket_width=1h", "bucket_width"),
    ],
)
def test_bad_parameters_are_400s_naming_them(gateway: Gateway, query: str, param: str) -> None:
    reply = httpx.get(gateway.url + query, headers=AUTH)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param


def test_the_usage_api_needs_the_master_key(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/v1/usage").status_code == 401


def test_unpriced_rows_are_repriced_when_a_price_arrives(impl: str, mock: MockOpenAI, store: str) -> None:
    gateway = start(impl, mock, store)
    try:
        with client(gateway) as c:
            c.chat.completions.create(model="openai/gpt-ok", messages=[{"role": "user", "content": "hi"}])
        assert usage(gateway)["unpriced_requests"] == 1
    finally:
        gateway.stop()
    priced = CONFIG.format(mock=mock.url, store=json.dumps(store)).replace(
        "pricing:\n", "pricing:\n  openai/gpt-ok: {input: 1, output: 2}\n"
    )
    config = write_config(priced)
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    gateway = start_gateway(impl, ["--config", str(config)], env)
    try:
        reply = httpx.post(f"{gateway.url}/admin/usage/reprice", headers=AUTH)
        assert reply.status_code == 200 and reply.json() == {"repriced": 1}
        found = usage(gateway)
        assert found["unpriced_requests"] == 0 and found["unpriced_tokens"] == 0
        assert found["total_cost"] == Decimal("0.000025")  # 11 in x $1 + 7 out x $2, per million
        assert httpx.post(f"{gateway.url}/admin/usage/reprice", headers=AUTH).json() == {"repriced": 0}
    finally:
        gateway.stop()



def test_a_row_carries_each_value_in_its_own_field() -> None:
    """Metering.row builds the row positionally (msgspec matches 36 keywords slowly): every
    field gets its own value, each source set to something no other field holds."""
    import types

    import msgspec

    from gateway.api.requests import ChatView
    from gateway.api.usage import CompletionTokensDetails, PromptTokensDetails, Usage
    from gateway.metering.record import Metering
    from gateway.pipeline.call import Call
    from gateway.providers.base import Endpoint

    view = msgspec.json.decode(
        b'{"model":"asked","messages":[{"role":"user","content":"hi"}],"user":"body-user"}', type=ChatView
    )
    call = Call("rid-1", Endpoint.CHAT, None, time.perf_counter())  # type: ignore[arg-type]
    call.view = view
    call.target = types.SimpleNamespace(provider=types.SimpleNamespace(name="prov"), model="target-model")  # type: ignore[assignment]
    call.usage = Usage(
        prompt_tokens=101, completion_tokens=102, total_tokens=203,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=103, cache_write_tokens=104, cache_write_1h_tokens=105),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=106),
    )  # fmt: skip
    call.cost_known, call.cost, call.price_id = True, 107, "price-id"
    call.status, call.error, call.error_fault, call.attempts = 503, "err-type", "provider", 3
    call.served_model, call.cache_result, call.usage_counted = "served", "MISS", True
    call.metadata = {"team": "meta-team", "feature": "feat", "tags": ["t1"]}
    call.fallback_path, call.guardrails = "1.0", "pii=mask"
    call.route_choice, call.route_reason = "cheap", "why"
    row = Metering(None, None, {}).row(call, 0.5, 0.25, ("req-body", "resp-body"))  # type: ignore[arg-type]
    assert msgspec.structs.asdict(row) | {"ts": 0} == {
        "ts": 0, "request_id": "rid-1", "endpoint": "chat/completions", "model": "asked",
        "provider": "prov", "served_model": "served", "status": 503, "error_type": "err-type",
        "input_tokens": 101, "cached_tokens": 103, "cache_write_tokens": 104, "output_tokens": 102,
        "reasoning_tokens": 106, "counted": True, "cost": 107, "saved": 0, "latency_ms": 500.0,
        "ttft_ms": 250.0, "attempts": 3, "cache": "MISS", "price_id": "price-id", "key_id": None,
        "team": "meta-team", "user": "body-user", "feature": "feat", "tags": '["t1"]',
        "fault": "provider", "fallback": "1.0", "guardrails": "pii=mask",
        "latency_bucket": row.latency_bucket, "ttft_bucket": row.ttft_bucket,
        "request_body": "req-body", "response_body": "resp-body", "route": "cheap",
        "route_reason": "why", "cache_write_1h_tokens": 105,
    }  # fmt: skip
    assert (row.latency_bucket, row.ttft_bucket) == (12, 10) and abs(row.ts - time.time() + 0.5) < 5
