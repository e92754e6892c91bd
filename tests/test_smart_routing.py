"""Smart routing end to end: cheapest, complexity and semantic modes, targets skipped for what
a request needs (context window, tools), the context-window fallback, the decision in headers
and in the ledger; and the complexity scorer's twins and accuracy on the labelled set."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from gateway._native import _complexity_py
from gateway.config import ConfigError, parse_config
from gateway.routing.catalog import build_catalog
from gateway.routing.complexity import score
from gateway.routing.health import HealthRegistry
from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI

try:
    from gateway._native import _complexity_c
except ImportError:  # pragma: no cover - the suite builds the extensions first
    _complexity_c = None  # type: ignore[assignment]

PROMPTS = json.loads((Path(__file__).parent / "data" / "complexity_prompts.json").read_text())["prompts"]
AUTH = {"authorization": f"Bearer {MASTER_KEY}"}
CONFIG = """
server: {{master_key: {key}}}
providers:
  openai: {{api_key: {upstream}, base_url: "{mock}/v1"}}
pricing:
  openai/big-model: {{input: 10, output: 30}}
  openai/small-model: {{input: 0.1, output: 0.4}}
  openai/mid-model: {{input: 1, output: 2}}
models:
  - name: big
    targets: [{{provider: openai, model: big-model}}]
  - name: auto-cost
    strategy: {{mode: cheapest}}
    targets:
      - {{name: unpriced, provider: openai, model: free-looking-model}}
      - {{name: frontier, provider: openai, model: big-model}}
      - {{name: cheap, provider: openai, model: small-model, supports: [json_schema]}}
      - {{name: mid, provider: openai, model: mid-model, supports: [tools]}}
  - name: auto-hard
    strategy:
      mode: complexity
      tiers: [{{below: 0.35, target: cheap}}, {{target: frontier}}]
    targets:
      - {{name: cheap, provider: openai, model: small-model}}
      - {{name: frontier, provider: openai, model: big-model}}
  - name: auto-topic
    strategy:
      mode: semantic
      default: general
      routes:
        - name: billing
          examples: ["How do I update my credit card?", "Why was I charged twice this month?",
                     "Can I get a refund for my invoice?"]
          target: billing-bot
        - name: coding
          examples: ["Fix this Python error in my function", "How do I write a SQL join?",
                     "Why does my JavaScript loop print undefined?"]
          target: code-bot
    targets:
      - {{name: general, provider: openai, model: mid-model}}
      - {{name: billing-bot, provider: openai, model: small-model}}
      - {{name: code-bot, provider: openai, model: big-model}}
  - name: short-first
    strategy: {{mode: fallback}}
    targets:
      - {{name: short, provider: openai, model: short-model, context_window: 60}}
      - {{name: long, provider: openai, model: big-model, context_window: 200000}}
  - name: tiny
    on_context_overflow: fallback
    context_fallback: big
    targets: [{{provider: openai, model: small-model, context_window: 40}}]
  - name: tiny-strict
    targets: [{{provider: openai, model: small-model, context_window: 40}}]
"""
LONG = "Please read this carefully. " * 40
SIMPLE = "What is the capital of France?"
HARD = (
    "Design a payment gateway that handles 5,000 requests per second. Outline the architecture"
    " step by step: data model, APIs, caching, sharding, failure modes and monitoring, and"
    " analyze the trade-offs of each choice."
)


@pytest.fixture(scope="module")
def smart(impl: str, mock: MockOpenAI) -> Gateway:  # type: ignore[misc]
    config = write_config(CONFIG.format(key=MASTER_KEY, upstream=UPSTREAM_KEY, mock=mock.url))
    gateway = start_gateway(impl, ["--config", str(config)])
    yield gateway
    gateway.stop()


def ask(gateway: Gateway, model: str, text: str, **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{gateway.v1}/chat/completions", json=body, headers=AUTH, timeout=30)


def served(reply: httpx.Response) -> str:
    assert reply.status_code == 200, reply.text
    return str(reply.json()["model"])


def test_cheapest_picks_the_lowest_expected_cost_that_can_serve(smart: Gateway) -> None:
    reply = ask(smart, "auto-cost", SIMPLE)
    assert served(reply) == "small-model"
    assert reply.headers["x-gateway-route"] == "cheap"
    reason = reply.headers["x-gateway-route-reason"]
    assert reason.startswith("cheapest: $") and " vs $" in reason, reason
    # Tools are asked for: the cheapest target does not support them, the next one does.
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert served(ask(smart, "auto-cost", SIMPLE, tools=tools)) == "mid-model"
    # A JSON schema: only `cheap` declares it among the limited ones; `frontier` supports all.
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert served(ask(smart, "auto-cost", SIMPLE, response_format=schema)) == "small-model"
    # Both: neither limited target qualifies, so the priced one that supports everything.
    assert served(ask(smart, "auto-cost", SIMPLE, tools=tools, response_format=schema)) == "big-model"


def test_cheapest_moves_on_when_its_choice_fails(smart: Gateway, mock: MockOpenAI) -> None:
    config = CONFIG.format(key=MASTER_KEY, upstream=UPSTREAM_KEY, mock=mock.url).replace(
        "model: small-model, supports: [json_schema]", "model: status-503, supports: [json_schema]"
    ).replace("openai/small-model:", "openai/status-503:")
    gateway = start_gateway("compiled", ["--config", str(write_config(config))])
    try:
        reply = ask(gateway, "auto-cost", SIMPLE)
        assert served(reply) == "mid-model"  # the next cheapest
        assert reply.headers["x-gateway-attempts"] == "2"
        assert reply.headers["x-gateway-route"] == "mid"
        assert reply.headers["x-gateway-route-reason"].endswith("; moved on from cheap")
    finally:
        gateway.stop()


def test_complexity_sends_simple_prompts_to_the_cheap_tier(smart: Gateway) -> None:
    easy = ask(smart, "auto-hard", SIMPLE)
    assert served(easy) == "small-model"
    assert easy.headers["x-gateway-route"] == "cheap"
    assert easy.headers["x-gateway-route-reason"].startswith("complexity=0.")
    assert easy.headers["x-gateway-route-reason"].endswith("<0.35")
    hard = ask(smart, "auto-hard", HARD)
    assert served(hard) == "big-model"
    assert hard.headers["x-gateway-route-reason"].endswith(">=0.35")
    # Asking for a long reply is a signal too.
    middling = "Tell me about the history of Rome in detail."
    assert served(ask(smart, "auto-hard", middling)) == "small-model"
    assert served(ask(smart, "auto-hard", middling, max_tokens=8000)) == "big-model"


def test_semantic_routes_by_nearest_examples(smart: Gateway) -> None:
    billing = ask(smart, "auto-topic", "I was charged twice on my credit card this month, can I get a refund?")
    assert served(billing) == "small-model"
    assert billing.headers["x-gateway-route"] == "billing-bot"
    assert float(billing.headers["x-gateway-route-score"]) >= 0.35
    coding = ask(smart, "auto-topic", "Why does my Python function raise a KeyError?")
    assert served(coding) == "big-model", coding.headers["x-gateway-route-reason"]
    other = ask(smart, "auto-topic", "Write a limerick about a sleepy walrus.")
    assert served(other) == "mid-model"
    assert other.headers["x-gateway-route"] == "general"
    assert other.headers["x-gateway-route-reason"].startswith("semantic: default")


def test_targets_too_short_for_the_request_are_skipped_unsent(smart: Gateway, mock: MockOpenAI) -> None:
    before = mock.hits("short-model")
    reply = ask(smart, "short-first", LONG)
    assert served(reply) == "big-model"
    assert reply.headers["x-gateway-attempts"] == "1"  # the short one was never sent
    assert mock.hits("short-model") == before
    assert served(ask(smart, "short-first", "hi")) == "short-model"
    # max_tokens counts against the window too.
    assert served(ask(smart, "short-first", "hi", max_tokens=500)) == "big-model"


def test_context_overflow_falls_back_or_fails_with_openais_code(smart: Gateway) -> None:
    reply = ask(smart, "tiny", LONG)
    assert served(reply) == "big-model"
    assert reply.headers["x-gateway-route-reason"] == "context_fallback"
    client = openai.OpenAI(base_url=smart.v1, api_key=MASTER_KEY, max_retries=0)
    with client, pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-strict", messages=[{"role": "user", "content": LONG}])
    assert caught.value.code == "context_length_exceeded"
    assert served(ask(smart, "tiny-strict", "hi")) == "small-model"


def test_the_ledger_keeps_the_decision(smart: Gateway) -> None:
    ask(smart, "auto-hard", SIMPLE, user="ledger-check")
    ask(smart, "auto-hard", HARD)
    ask(smart, "big", "hi")
    rows = []
    for _ in range(50):
        found = httpx.get(f"{smart.url}/v1/usage/requests?user=ledger-check", headers=AUTH, timeout=30)
        assert found.status_code == 200, found.text
        rows = found.json()["data"]
        if rows:
            break
    (row,) = rows
    assert row["route"] == "cheap" and row["route_reason"].startswith("complexity=")
    by_route = httpx.get(f"{smart.url}/v1/usage/requests?route=cheap", headers=AUTH, timeout=30).json()
    assert by_route["data"] and all(r["route"] == "cheap" for r in by_route["data"])
    grouped = httpx.get(f"{smart.url}/v1/usage?group_by=route,model", headers=AUTH, timeout=30).json()
    assert grouped["by_route"]["cheap"]["requests"] >= 1  # cost by routing decision, from the rollups
    assert "frontier" in grouped["by_route"] and "openai/big-model" in grouped["by_route"]


def test_plain_routes_say_how_they_routed(smart: Gateway) -> None:
    reply = ask(smart, "big", "hi")
    assert reply.headers["x-gateway-route"] == "openai/big-model"
    assert reply.headers["x-gateway-route-reason"] == "single"
    reply = ask(smart, "short-first", "hi")
    assert reply.headers["x-gateway-route"] == "short"
    assert reply.headers["x-gateway-route-reason"] == "fallback"


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ("{mode: complexity, tiers: [{below: 0.3, target: a}]}", "at least two tiers"),
        ("{mode: complexity, tiers: [{target: a}, {target: b}]}", "every tier but the last needs `below`"),
        ("{mode: complexity, tiers: [{below: 0.6, target: a}, {below: 0.3, target: b}, {target: a}]}", "must rise"),
        ("{mode: complexity, tiers: [{below: 0.3, target: a}, {target: nope}]}", "no target named 'nope'"),
        ("{mode: semantic, routes: [{name: r, examples: [x], target: a}]}", "needs routes and a default"),
        ("{mode: fallback, tiers: [{below: 0.3, target: a}, {target: b}]}", "only in complexity mode"),
    ],
)  # fmt: skip
def test_bad_smart_strategies_are_config_errors(strategy: str, message: str) -> None:
    text = f"""
providers: {{openai: {{api_key: sk-x}}}}
models:
  - name: m
    strategy: {strategy}
    targets: [{{name: a, provider: openai, model: x}}, {{name: b, provider: openai, model: y}}]
"""
    with pytest.raises(ConfigError, match=message):
        build_catalog(parse_config(text, {}), {}, HealthRegistry())


def test_complexity_twins_agree() -> None:
    assert _complexity_c is not None, "the compiled extensions are not built: run `make install`"
    rng = random.Random(5)
    alphabet = "ab cd\n\t-*1.)?{}();=<>[]+^%`é€😀Why PROVE step json"
    texts = [p["prompt"] for p in PROMPTS] + ["", "```", "1.", "- x", "x" * 20000]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(80))) for _ in range(2000)]
    asks = [{}, {"turns": 3, "tools": True, "max_tokens": 5000, "structured": True}, {"max_tokens": 1500}]
    for n, text in enumerate(texts):
        assert _complexity_c.features(text) == _complexity_py.features(text), repr(text)
        ask = asks[n % 3]
        assert _complexity_c.score(text, **ask) == _complexity_py.score(text, **ask), repr(text)


def test_complexity_accuracy_per_tier_on_the_labelled_set() -> None:
    """The README's figures: at 0.35, most simple prompts score below and complex above, on
    the held-out (odd-numbered) prompts as on those the weights were fitted on."""
    for part, least in ((0, 0.93), (1, 0.92)):
        chosen = [p for i, p in enumerate(PROMPTS) if i % 2 == part]
        simple = [score(p["prompt"]) for p in chosen if p["label"] == "simple"]
        complex_ = [score(p["prompt"]) for p in chosen if p["label"] == "complex"]
        assert len(simple) > 60 and len(complex_) > 50
        assert sum(s < 0.35 for s in simple) / len(simple) >= least
        assert sum(s >= 0.35 for s in complex_) / len(complex_) >= least


SHADOW_CONFIG = """
server: {{master_key: {key}}}
providers:
  openai: {{api_key: {upstream}, base_url: "{mock}/v1"}}
pricing:
  openai/big-model: {{input: 10, output: 30}}
  openai/small-model: {{input: 0.1, output: 0.4}}
usage: {{store: "sqlite:///{tmp}/usage.db", flush_interval: 0.1}}
models:
  - name: big
    targets: [{{provider: openai, model: big-model}}]
  - name: shadowed
    shadow: {{target: big, ratio: 1.0}}
    targets: [{{provider: openai, model: small-model}}]
  - name: slow-shadowed
    shadow: {{target: openai/slow-1.5, ratio: 1.0, max_concurrent: 1}}
    targets: [{{provider: openai, model: small-model}}]
"""


def test_shadow_traffic_compares_a_candidate_off_the_clients_path(
    impl: str, mock: MockOpenAI, tmp_path: Path
) -> None:
    import time

    config = SHADOW_CONFIG.format(key=MASTER_KEY, upstream=UPSTREAM_KEY, mock=mock.url, tmp=tmp_path)
    gateway = start_gateway(impl, ["--config", str(write_config(config))])
    try:
        ids = [ask(gateway, "shadowed", f"question {i}").headers["x-request-id"] for i in range(3)]
        with httpx.stream("POST", f"{gateway.v1}/chat/completions", headers=AUTH, timeout=30, json={
            "model": "shadowed", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "streamed question"}],
        }) as streamed:  # fmt: skip
            assert b"[DONE]" in b"".join(streamed.iter_bytes())
            ids.append(streamed.headers["x-request-id"])
        started = time.perf_counter()
        slow = [ask(gateway, "slow-shadowed", "hello") for _ in range(3)]
        assert time.perf_counter() - started < 1.5  # the 1.5 s candidate is never waited for
        assert all(served(r) == "small-model" for r in slow)
        deadline = time.time() + 10
        while True:
            reply = httpx.get(f"{gateway.v1}/usage/shadow?recent=10", headers=AUTH, timeout=10)
            assert reply.status_code == 200, reply.text
            groups = {g["model"]: g for g in reply.json(parse_float=float)["data"]}
            if groups.get("slow-shadowed", {}).get("requests") == 1 and groups.get("shadowed", {}).get("requests") == 4:
                break
            assert time.time() < deadline, reply.text
            time.sleep(0.2)
        fast = groups["shadowed"]
        assert fast["candidate"] == "big" and fast["answered"] == 4  # the stream asked whole
        assert 0 < fast["incumbent_cost"] < fast["candidate_cost"]  # the frontier model costs more
        assert fast["mean_similarity"] is not None and fast["mean_similarity"] > 0.5
        recent = {c[0]: c for c in reply.json()["recent"]}  # array-like: request_id first
        assert set(ids) <= set(recent)
        assert groups["slow-shadowed"]["candidate_cost"] == 0  # unpriced: no made-up cost
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert 'gateway_shadow_skipped_total{model="slow-shadowed"} 2.0' in metrics
        rows = httpx.get(f"{gateway.v1}/usage/requests?route=shadow", headers=AUTH, timeout=10).json()["data"]
        assert {r["model"] for r in rows} == {"big", "openai/slow-1.5"}
        assert all(r["route_reason"].startswith("shadow of ") for r in rows)
        assert feedback_ok(gateway, ids[0])
        if impl == "compiled":  # the page is the same for both builds
            _dashboard_shows_the_comparison(gateway)
    finally:
        gateway.stop()


def feedback_ok(gateway: Gateway, request_id: str) -> bool:
    reply = httpx.post(f"{gateway.v1}/feedback", headers=AUTH, timeout=10,
                       json={"request_id": request_id, "score": 0.75, "label": "fine"})  # fmt: skip
    return reply.status_code == 200


def _dashboard_shows_the_comparison(gateway: Gateway) -> None:
    from playwright.sync_api import sync_playwright

    from tests.test_dashboard import _chromium

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{gateway.url}/dashboard")
            page.fill("#login-key", MASTER_KEY)
            errors.clear()  # the sign-in page's own (its missing favicon)
            page.click("#login-submit")
            page.wait_for_selector("body[data-loaded]", timeout=10_000)
            row = page.locator("#shadow tr[data-name='shadowed'] td")
            assert row.nth(1).inner_text() == "big" and row.nth(2).inner_text() == "4"
            scored = page.locator("#feedback tr[data-name='shadowed'] td")
            assert scored.nth(3).inner_text() == "0.75"
            assert page.locator("#by-route tr[data-name='shadow']").count() == 1
            assert not errors, errors
        finally:
            browser.close()


def test_a_route_sent_in_the_header_is_ranked_and_checked_too(smart: Gateway) -> None:
    route = {
        "strategy": {"mode": "complexity", "tiers": [{"below": 0.35, "target": "c"}, {"target": "f"}]},
        "targets": [{"name": "c", "provider": "openai", "model": "small-model", "context_window": 60},
                    {"name": "f", "provider": "openai", "model": "big-model"}],
    }  # fmt: skip
    import json as json_module

    header = {"x-gateway-config": json_module.dumps(route)}
    body = {"model": "per-request", "messages": [{"role": "user", "content": SIMPLE}]}
    reply = httpx.post(f"{smart.v1}/chat/completions", json=body, headers={**AUTH, **header}, timeout=30)
    assert served(reply) == "small-model" and reply.headers["x-gateway-route"] == "c"
    assert reply.headers["x-gateway-route-reason"].startswith("complexity=")
    body["max_tokens"] = 500  # a simple question, but too long a reply for c's window
    reply = httpx.post(f"{smart.v1}/chat/completions", json=body, headers={**AUTH, **header}, timeout=30)
    assert served(reply) == "big-model" and reply.headers["x-gateway-attempts"] == "1"  # c unsent
    assert reply.headers["x-gateway-route"] == "f"
    assert reply.headers["x-gateway-route-reason"].endswith("<0.35; moved on from c")  # c's tier
