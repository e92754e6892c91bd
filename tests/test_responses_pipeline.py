"""/v1/responses through the rest of the gateway: fallback from a native target to a translated
one, the cache, output guardrails, the usage ledger, and stored responses across a restart on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from tests.mock_openai import MockOpenAI
from tests.redis_server import start_redis

CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
usage: {{store: "{store}", flush_interval: 0.1}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{openai}/v1"}}
  anthropic: {{api_key: {anthropic_key}, base_url: "{anthropic}"}}
guardrails:
  policies:
    pii: {{kinds: [email], direction: output}}
    pii-in: {{kinds: [email], direction: input}}
models:
  - name: fallback
    strategy: {{mode: fallback}}
    targets: [{{provider: openai, model: status-503}}, {{provider: anthropic, model: claude-ok}}]
  - name: cached
    cache: {{mode: simple}}
    targets: [{{provider: anthropic, model: claude-ok}}]
  - name: cached-native
    cache: {{mode: simple}}
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: guarded
    guardrails: [pii]
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: overridden
    targets: [{{provider: openai, model: gpt-ok, override_params: {{temperature: 0.1, max_tokens: 33}}}}]
  - name: overridden-chat
    targets: [{{provider: openai, model: gpt-ok, override_params: {{frequency_penalty: 0.5}}}}]
  - name: guarded-in
    guardrails: [pii-in]
    targets: [{{provider: openai, model: gpt-ok}}]
pricing:
  anthropic/claude-ok: {{input: 1, output: 2}}
  openai/gpt-ok: {{input: 1, output: 2}}
"""


def _start(impl: str, mock: MockOpenAI, anthropic_mock: MockAnthropic, store: str) -> Gateway:
    config = write_config(
        CONFIG.format(
            openai=mock.url, anthropic=anthropic_mock.url, anthropic_key=ANTHROPIC_KEY, store=store
        )
    )
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    return start_gateway(impl, ["--config", str(config)], env)


@pytest.fixture(scope="module")
def pipeline_gateway(
    impl: str, mock: MockOpenAI, anthropic_mock: MockAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    store = f"sqlite:///{tmp_path_factory.mktemp('responses')}/usage.db"
    gateway = _start(impl, mock, anthropic_mock, store)
    yield gateway
    gateway.stop()


@pytest.fixture
def rclient(pipeline_gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=pipeline_gateway.v1, api_key=MASTER_KEY, max_retries=0,
        _strict_response_validation=True,
    ) as c:  # fmt: skip
        yield c


def _paths(mock: MockOpenAI, since: int) -> list[str]:
    with mock.state.lock:
        return [r.path for r in mock.state.requests[since:]]


def test_a_failed_native_target_falls_back_to_a_translated_one(rclient: openai.OpenAI) -> None:
    raw = rclient.responses.with_raw_response.create(model="fallback", input="hi")
    response = raw.parse()
    assert response.output_text == "echo: hi" and raw.headers["x-gateway-provider"] == "anthropic"
    with rclient.responses.stream(model="fallback", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text.strip() == "echo: hi"


def test_translated_answers_are_cached_native_ones_are_not(
    rclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    first = rclient.responses.with_raw_response.create(model="cached", input="cache me")
    second = rclient.responses.with_raw_response.create(model="cached", input="cache me")
    assert first.headers["x-gateway-cache"] == "MISS" and second.headers["x-gateway-cache"] == "HIT"
    assert second.parse().output_text == first.parse().output_text == "echo: cache me"
    assert second.parse().id != first.parse().id  # each answer is a response of its own
    with rclient.responses.stream(model="cached", input="cache me") as stream:
        assert stream.get_final_response().output_text == "echo: cache me"
    for _ in range(2):  # OpenAI's own format is not a chat answer to share
        native = rclient.responses.with_raw_response.create(model="cached-native", input="n")
        assert native.headers["x-gateway-cache"] == "MISS"
        assert native.parse().output_text == "native: n"


def test_output_guardrails_see_a_translated_answer(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    since = len(mock.state.requests)
    raw = rclient.responses.with_raw_response.create(model="guarded", input="write to bob.smith@gmail.com")
    response = raw.parse()
    assert _paths(mock, since) == ["/v1/chat/completions"]  # not passed through: scanned
    assert "bob.smith@gmail.com" not in response.output_text and "EMAIL" in response.output_text
    assert "pii" in raw.headers["x-gateway-guardrails"]


def test_masked_input_is_what_reaches_an_openai_target(
    rclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    since = len(mock.state.requests)
    rclient.responses.create(model="guarded-in", input="mail bob.smith@gmail.com")
    assert _paths(mock, since) == ["/v1/chat/completions"]  # the masked chat body, not the raw one
    sent = mock.state.last().body["messages"][-1]["content"]
    assert "bob.smith@gmail.com" not in sent and "EMAIL" in sent
    plain = rclient.responses.create(model="guarded-in", input="nothing to mask")
    assert _paths(mock, since)[-1] == "/v1/responses" and plain.output_text == "native: nothing to mask"


def test_a_hosted_tools_item_is_never_passed_through_unscanned(
    rclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    """Hosted tools' items are relayed to OpenAI as sent, but the guardrails scan the chat
    form, which leaves them out: one that may hold what an input guardrail looks for sends the
    request as the (scanned) chat form instead, without it; a clean one passes through."""
    since = len(mock.state.requests)
    leaky: Any = [
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": "bob.smith@gmail.com"}},
        {"role": "user", "content": "what did you find?"},
    ]  # fmt: skip
    rclient.responses.create(model="guarded-in", input=leaky, store=False)
    assert _paths(mock, since) == ["/v1/chat/completions"]
    assert "bob.smith@gmail.com" not in json.dumps(mock.state.last().body)
    clean: Any = [{**leaky[0], "action": {"type": "search", "query": "weather"}}, leaky[1]]
    rclient.responses.create(model="guarded-in", input=clean, store=False)
    assert _paths(mock, since)[-1] == "/v1/responses" and clean[0] in mock.state.last().body["input"]


def test_a_targets_overrides_reach_it_in_either_form(rclient: openai.OpenAI, mock: MockOpenAI) -> None:
    since = len(mock.state.requests)
    rclient.responses.create(model="overridden", input="hi", temperature=0.9)
    sent = mock.state.last()
    assert sent.path == "/v1/responses"
    assert sent.body["temperature"] == 0.1 and sent.body["max_output_tokens"] == 33
    rclient.responses.create(model="overridden-chat", input="hi")
    assert _paths(mock, since)[-1] == "/v1/chat/completions"  # no Responses equivalent
    assert mock.state.last().body["frequency_penalty"] == 0.5


def test_the_ledger_names_the_endpoint_and_prices_it(
    rclient: openai.OpenAI, pipeline_gateway: Gateway
) -> None:
    rclient.responses.create(model="cached-native", input="priced", metadata={"k": "v"})
    rclient.responses.create(model="anthropic/claude-ok", input="priced too")
    auth = {"authorization": f"Bearer {MASTER_KEY}"}
    deadline = time.monotonic() + 10
    while True:
        rows = httpx.get(f"{pipeline_gateway.url}/v1/usage/requests?limit=50", headers=auth).json()
        mine = [r for r in rows["data"] if r["endpoint"] == "responses"]
        providers = {r["provider"] for r in mine}
        if {"openai", "anthropic"} <= providers:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    native = next(r for r in mine if r["model"] == "cached-native")
    assert native["input_tokens"] == 13 and native["output_tokens"] == 9
    assert native["cost"] == pytest.approx((13 * 1 + 9 * 2) / 1e6)
    assert all(r["cost"] > 0 for r in mine if r["cache"] != "HIT"), mine


def test_stored_responses_survive_a_restart(
    impl: str, mock: MockOpenAI, anthropic_mock: MockAnthropic, store: str
) -> None:
    gateway = _start(impl, mock, anthropic_mock, store)
    try:
        client = openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0)
        made = client.responses.create(model="anthropic/claude-ok", input="remember me")
        client.close()
    finally:
        gateway.stop()
    gateway = _start(impl, mock, anthropic_mock, store)
    try:
        with openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0) as client:
            assert client.responses.retrieve(made.id).output_text == "echo: remember me"
            client.responses.create(model="anthropic/claude-ok", input="and now?",
                                    previous_response_id=made.id)  # fmt: skip
        sent = anthropic_mock.state.last().body["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    finally:
        gateway.stop()


def test_another_instance_continues_at_once_through_redis(
    impl: str, mock: MockOpenAI, anthropic_mock: MockAnthropic, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two instances with stores of their own and one Redis: B continues what A answered (the
    shared hot tier), and a Redis that dies costs B only the store's answer, never an error."""
    redis = start_redis()
    gateways: list[Gateway] = []
    try:
        for name in ("a", "b"):
            store = f"sqlite:///{tmp_path_factory.mktemp(name)}/usage.db"
            config = write_config(
                CONFIG.format(openai=mock.url, anthropic=anthropic_mock.url,
                              anthropic_key=ANTHROPIC_KEY, store=store)
                + f"routing: {{redis_url: {redis.url}}}\n"
            )  # fmt: skip
            env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
            gateways.append(start_gateway(impl, ["--config", str(config)], env))
        a, b = (openai.OpenAI(base_url=g.v1, api_key=MASTER_KEY, max_retries=0) for g in gateways)
        made = a.responses.create(model="anthropic/claude-ok", input="from a")
        deadline = time.monotonic() + 5
        while True:
            try:
                follow = b.responses.create(model="anthropic/claude-ok", input="on b",
                                            previous_response_id=made.id)  # fmt: skip
                break
            except openai.BadRequestError:
                assert time.monotonic() < deadline, "B never saw A's response"
                time.sleep(0.05)
        assert [m["role"] for m in anthropic_mock.state.last().body["messages"]] == [
            "user", "assistant", "user",
        ]  # fmt: skip
        assert b.responses.retrieve(made.id).id == made.id
        redis.stop()
        with pytest.raises(openai.BadRequestError):  # not in B's own store: a 400, not a 5xx
            b.responses.create(model="anthropic/claude-ok", input="x", previous_response_id="resp_gone")
        assert b.responses.retrieve(follow.id).id == follow.id  # B's own, from memory
        a.close()
        b.close()
    finally:
        for gateway in gateways:
            gateway.stop()
        redis.stop()


def test_counting_input_tokens_passes_the_checks_a_request_does(
    rclient: openai.OpenAI, mock: MockOpenAI, pipeline_gateway: Gateway
) -> None:
    """Counting sends the input to OpenAI: the input guardrails (a masked input is counted
    here, never sent) and a key's model allow-list apply to it as to the request itself."""
    since = len(mock.state.requests)
    masked = rclient.responses.input_tokens.with_raw_response.count(
        model="guarded-in", input="mail bob.smith@gmail.com"
    )
    assert masked.parse().input_tokens > 0 and masked.headers["x-gateway-token-count"] != "provider"
    assert _paths(mock, since) == []
    plain = rclient.responses.input_tokens.with_raw_response.count(model="guarded-in", input="hello")
    assert plain.headers["x-gateway-token-count"] == "provider"
    assert _paths(mock, since) == ["/v1/responses/input_tokens"]
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    made = httpx.post(f"{pipeline_gateway.url}/admin/keys", json={"models": ["cached"]},
                      headers=admin, timeout=10)  # fmt: skip
    assert made.status_code == 200, made.text
    with openai.OpenAI(base_url=pipeline_gateway.v1, api_key=made.json()["key"], max_retries=0) as c:
        with pytest.raises(openai.PermissionDeniedError) as caught:
            c.responses.input_tokens.count(model="guarded", input="hello")
        assert caught.value.code == "model_not_allowed"
        assert c.responses.input_tokens.count(model="cached", input="hello").input_tokens > 0
    assert _paths(mock, since) == ["/v1/responses/input_tokens"]


def test_what_only_openai_holds_is_never_dropped_or_sent_unscanned(
    rclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    """A stored prompt, an OpenAI conversation and a background run are OpenAI's: another
    provider is refused them (400) rather than sent the request without them. A prompt's
    variables are not in the chat form the input guardrails scan: when they may hold what an
    input guardrail looks for, the request is refused rather than passed through unscanned."""
    fields: list[tuple[str, Any]] = [
        ("prompt", {"id": "pmpt_1", "variables": {"city": "Paris"}}),
        ("conversation", "conv_1"),
        ("background", True),
    ]
    for field, value in fields:
        with pytest.raises(openai.BadRequestError) as caught:
            rclient.responses.create(model="anthropic/claude-ok", input="hi", extra_body={field: value})
        assert caught.value.param == field and caught.value.code == "unsupported_parameter"
        assert "OpenAI" in caught.value.message
    since = len(mock.state.requests)
    rclient.responses.create(model="guarded-in", input="hi", extra_body={"prompt": fields[0][1]})
    assert _paths(mock, since) == ["/v1/responses"] and mock.state.last().body["prompt"] == fields[0][1]
    leaky = {"id": "pmpt_1", "variables": {"to": "bob.smith@gmail.com"}}
    with pytest.raises(openai.BadRequestError) as caught:
        rclient.responses.create(model="guarded-in", input="hi", extra_body={"prompt": leaky})
    assert caught.value.param == "prompt" and "guardrails" in caught.value.message
    assert _paths(mock, since) == ["/v1/responses"]


def test_a_reasoning_summary_is_never_passed_through_unscanned(
    rclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    """Reasoning items are relayed to OpenAI as sent but left out of the chat form the input
    guardrails scan: one whose summary may hold what an input guardrail looks for sends the
    request as the scanned chat form instead."""
    since = len(mock.state.requests)
    reasoning: Any = {"type": "reasoning", "id": "rs_1",
                      "summary": [{"type": "summary_text", "text": "mail bob.smith@gmail.com"}]}  # fmt: skip
    turn: Any = [reasoning, {"role": "user", "content": "and then?"}]
    rclient.responses.create(model="guarded-in", input=turn, store=False)
    assert _paths(mock, since) == ["/v1/chat/completions"]
    assert "bob.smith@gmail.com" not in json.dumps(mock.state.last().body)
    clean: Any = [{**reasoning, "summary": [{"type": "summary_text", "text": "thinking"}]}, turn[1]]
    rclient.responses.create(model="guarded-in", input=clean, store=False)
    assert _paths(mock, since)[-1] == "/v1/responses" and mock.state.last().body["input"][0]["id"] == "rs_1"
