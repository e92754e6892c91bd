"""Alerts to webhooks: a breaker opening, an error-rate spike and a budget crossing 80%, sent
in Slack's and in plain JSON, each once (de-duplicated), only to the webhooks that asked for
that kind, retried when a webhook fails, and never with the webhook's secret URL in a log."""

from __future__ import annotations

import time
from typing import Any

import httpx2 as httpx
from aiohttp import web

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, until, write_config
from tests.mock_openai import MockOpenAI
from tests.mock_server import ThreadedServer

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
SECRET_PATH = "/hooks/T000/B000/secret-webhook-token-4242"
CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
models:
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: broken
    breaker: {{window: 2, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 60000}}
    targets: [{{provider: openai, model: status-503}}]
usage: {{flush_interval: 0.1}}
alerts:
  webhooks:
    - {{url: "{hooks}{secret}", format: slack}}
    - {{url: "{hooks}/json", events: [budget, error_rate], headers: {{authorization: Bearer hook-token}}}}
  check_interval: 0.2
  error_rate: {{threshold: 0.5, window_seconds: 30, min_requests: 3}}
"""


class Hooks(ThreadedServer):
    """Two webhook receivers; the JSON one fails its first `failures` deliveries with a 500."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 2

    def routes(self, app: web.Application) -> None:
        app.router.add_post(SECRET_PATH, self.slack)
        app.router.add_post("/json", self.json)

    async def slack(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.Response(text="ok")

    async def json(self, request: web.Request) -> web.Response:
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=500)
        await self.record(request)
        return web.Response(text="ok")

    def posted(self, path: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r.body for r in self.state.requests if r.path == path]

    def headers(self, path: str) -> list[Any]:
        with self.state.lock:
            return [r.headers for r in self.state.requests if r.path == path]




def chat(gw: Gateway, model: str, key: str = MASTER_KEY) -> httpx.Response:
    # max_tokens: the budget's hold is the request's most expensive outcome, here ~its cost.
    return httpx.post(
        f"{gw.v1}/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )  # fmt: skip


def test_alerts_reach_their_webhooks_once(impl: str, mock: MockOpenAI) -> None:
    hooks = Hooks().start()
    config = write_config(CONFIG.format(mock=mock.url, hooks=hooks.url, secret=SECRET_PATH))
    gw = start_gateway(
        impl, ["--config", str(config)],
        {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY},
    )  # fmt: skip
    try:
        # The breaker opens after two 503s; with two answers of three failed, the error rate
        # (67%) passes its threshold.
        for _ in range(2):
            assert chat(gw, "broken").status_code == 503
        cost = float(chat(gw, "chat").headers["x-gateway-cost"])

        def kinds(path: str) -> list[tuple[str, str]]:
            return [(b["kind"], b["level"]) for b in hooks.posted(path)]

        until(lambda: ("error_rate", "high") in kinds("/json"))
        made = httpx.post(
            f"{gw.url}/admin/keys", headers=ADMIN, timeout=10,
            json={"name": "search", "max_budget": round(cost * 4 / 0.9, 12)},
        )  # fmt: skip
        assert made.status_code == 200, made.text
        key = made.json()["key"]
        # Four requests spend 90% of the key's budget: past 80%, short of 100%.
        for _ in range(4):
            assert chat(gw, "chat", key).status_code == 200
        until(lambda: ("budget", "80%") in kinds("/json"))
        until(lambda: len(hooks.posted(SECRET_PATH)) >= 3)
        time.sleep(1.5)  # more checks, more breaker trips: nothing is sent twice
        for _ in range(3):
            chat(gw, "broken")
        time.sleep(1)
        slack = [b["text"] for b in hooks.posted(SECRET_PATH)]
        assert len(slack) == 3, slack
        assert any("circuit breaker opened for openai/status-503" in t for t in slack)
        assert any("80%" in t and "search" in t for t in slack)
        assert any("answers failed with a 5xx status" in t for t in slack)
        plain = hooks.posted("/json")
        assert sorted(kinds("/json")) == [("budget", "80%"), ("error_rate", "high")]  # no breaker
        budget = next(b for b in plain if b["kind"] == "budget")
        assert budget["source"] == "gateway" and budget["details"]["name"] == "search"
        assert budget["details"]["max_budget"] > budget["details"]["spent"] >= 0.8 * budget["details"]["max_budget"]
        assert all(h["authorization"] == "Bearer hook-token" for h in hooks.headers("/json"))
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert 'gateway_alerts_total{kind="budget",result="sent"} 2.0' in metrics
    finally:
        gw.stop()
        hooks.stop()
    assert hooks.failures == 0  # the JSON webhook's two failures were retried past
    assert "secret-webhook-token" not in gw.output()


def test_an_unreachable_webhook_never_slows_a_request(impl: str, mock: MockOpenAI) -> None:
    config = write_config(
        CONFIG.format(mock=mock.url, hooks="http://127.0.0.1:9", secret=SECRET_PATH)
    )
    gw = start_gateway(
        impl, ["--config", str(config)],
        {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY},
    )  # fmt: skip
    try:
        for _ in range(2):
            chat(gw, "broken")  # the breaker opens: an alert for a webhook that is not there
        started = time.monotonic()
        for _ in range(20):
            assert chat(gw, "chat").status_code == 200
        assert time.monotonic() - started < 5
        until(lambda: 'result="failed"' in httpx.get(f"{gw.url}/metrics").text, 30)
    finally:
        gw.stop()
    assert "secret-webhook-token" not in gw.output()
