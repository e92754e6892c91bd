"""Breaker state shared by gateway instances through a Redis of the test's own, and the request
path surviving that Redis going away and coming back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx2 as httpx
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI
from tests.redis_server import RedisServer, start_redis

CONFIG = """
server: {{master_key: {key}}}
routing: {{redis_url: "{redis}"}}
providers:
  openai: {{type: openai-compatible, base_url: "{mock}/v1"}}
  backup: {{type: openai-compatible, base_url: "{mock}/backup/v1"}}
models:
  - name: shaky
    breaker: {{window: 4, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 60000}}
    targets: [{{provider: openai, model: status-500}}]
  - name: shaky-too
    breaker: {{window: 4, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 60000}}
    targets: [{{provider: openai, model: status-502}}]
  - name: steady
    targets: [{{provider: backup, model: gpt-ok}}]
"""


def _post(gw: Gateway, model: str) -> httpx.Response:
    return httpx.post(
        f"{gw.v1}/chat/completions",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def _open(gw: Gateway, model: str) -> bool:
    response = _post(gw, model)
    return response.status_code == 503 and response.json()["error"]["code"] == "no_healthy_targets"


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_instances_share_breakers_and_survive_redis_outage(
    impl: str, mock: MockOpenAI, redis: RedisServer
) -> None:
    config = write_config(CONFIG.format(key=MASTER_KEY, redis=redis.url, mock=mock.url))
    first = start_gateway(impl, ["--config", str(config)])
    second = start_gateway(impl, ["--config", str(config)])
    late: Gateway | None = None
    try:
        for _ in range(2):
            assert _post(first, "shaky").status_code == 500
        assert _open(first, "shaky")
        hits = mock.hits("status-500")
        # The second instance never saw a failure, yet skips the target too.
        assert _eventually(lambda: _open(second, "shaky"))
        assert mock.hits("status-500") == hits
        late = start_gateway(impl, ["--config", str(config)])  # reads the state on start
        assert _eventually(lambda: _open(late, "shaky"))

        redis.stop()  # Redis goes away: no request may fail or wait for it
        started = time.monotonic()
        for gw in (first, second, late):
            for _ in range(20):
                assert _post(gw, "steady").status_code == 200
        assert time.monotonic() - started < 10
        assert _open(second, "shaky")  # local state is kept

        revived = start_redis(redis.port)  # Redis returns on the same address
        redis.process = revived.process
        time.sleep(1.0)  # the subscriber reconnects with backoff
        for _ in range(2):
            assert _post(first, "shaky-too").status_code == 502
        assert _eventually(lambda: _open(second, "shaky-too"), timeout=10)
    finally:
        for gw in (first, second, late):
            if gw is not None:
                gw.stop()
