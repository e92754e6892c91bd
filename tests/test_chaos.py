"""Chaos: three targets failing at random (errors, rate limits, dropped connections, stalls)
for a few thousand requests. Every request that had at least one healthy target succeeds."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI, chaos_outcome

TARGETS = ("chaos-a", "chaos-b", "chaos-c")
CONFIG = """
server: {{master_key: {key}}}
providers:
  openai: {{type: openai-compatible, base_url: "{mock}/v1"}}
models:
  - name: chaos
    strategy: {{mode: fallback}}
    timeouts: {{first_byte: 1.2}}  # generous: the mock shares a GIL with 16 client threads on a loaded CI machine
    breaker: {{enabled: false}}
    targets: [{targets}]
"""
REQUESTS = 2000
THREADS = 16


@pytest.fixture(scope="module")
def chaos_gateway(impl: str, mock: MockOpenAI) -> Iterator[Gateway]:
    targets = ", ".join(f"{{provider: openai, model: {t}}}" for t in TARGETS)
    config = write_config(CONFIG.format(key=MASTER_KEY, mock=mock.url, targets=targets))
    gw = start_gateway(impl, ["--config", str(config)])
    yield gw
    gw.stop()


def test_every_request_with_a_healthy_target_succeeds(chaos_gateway: Gateway) -> None:
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def worker(seeds: range) -> None:
        with httpx.Client(timeout=30) as client:
            for seed in seeds:
                response = client.post(
                    f"{chaos_gateway.v1}/chat/completions",
                    headers={"authorization": f"Bearer {MASTER_KEY}"},
                    json={
                        "model": "chaos",
                        "messages": [{"role": "user", "content": "x"}],
                        "chaos_seed": seed,
                    },
                )
                with lock:
                    statuses[seed] = response.status_code

    threads = [
        threading.Thread(target=worker, args=(range(i, REQUESTS, THREADS),)) for i in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(statuses) == REQUESTS
    healthy = {
        seed for seed in range(REQUESTS) if any(chaos_outcome(seed, t) == "ok" for t in TARGETS)
    }
    failed_healthy = sorted(seed for seed in healthy if statuses[seed] != 200)
    assert failed_healthy == [], (
        f"{len(failed_healthy)} requests failed though a target was healthy"
    )
    hopeless = REQUESTS - len(healthy)
    assert 0 < hopeless < REQUESTS // 5  # the draw really did fail some requests everywhere
    assert all(statuses[seed] != 200 for seed in range(REQUESTS) if seed not in healthy)
