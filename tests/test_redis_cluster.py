"""Every Redis user of the gateway on a Redis Cluster (`redis+cluster://`), two instances
sharing it: exact and semantic cache entries (written by one, served by the other, and
rebuilt into a restarted instance's index), shared breakers, and stored responses' hot tier.
(Limits on a cluster are in test_governance.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI
from tests.redis_server import RedisCluster, start_cluster

CONFIG = """
server: {{master_key: {key}}}
routing: {{redis_url: "{redis}", fault_injection: true}}
providers:
  openai: {{api_key: {upstream}, base_url: "{mock}/v1"}}
models:
  - name: exact
    cache: {{mode: simple, namespace: "{ns}"}}
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: sem
    cache: {{mode: semantic, namespace: "{ns}"}}
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: fragile
    breaker: {{window: 4, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 60000}}
    targets: [{{provider: openai, model: status-500}}]
responses: {{store: true}}
usage: {{store: "sqlite:///{tmp}/usage.db"}}
"""


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    made = start_cluster()
    yield made
    made.stop()


def _config(mock: MockOpenAI, cluster: RedisCluster, tmp: str, ns: str, section: bool = False) -> str:
    """The cluster as a `redis+cluster://` URL, or as the `redis:` section's node list."""
    text = CONFIG.format(key=MASTER_KEY, redis=cluster.url, upstream=UPSTREAM_KEY, mock=mock.url,
                         ns=ns, tmp=tmp)  # fmt: skip
    if section:
        nodes = ", ".join(f'"127.0.0.1:{n.port}"' for n in cluster.nodes)
        text = text.replace(f'routing: {{redis_url: "{cluster.url}", ',
                            f"redis: {{cluster: true, nodes: [{nodes}]}}\nrouting: {{")  # fmt: skip
        assert "redis_url" not in text
    return str(write_config(text))


def _client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0)


def _cache(gateway: Gateway, model: str, text: str) -> str:
    with _client(gateway) as c:
        raw = c.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
    return str(raw.headers["x-gateway-cache"])


def _eventually(check: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_two_instances_share_everything_through_a_cluster(
    impl: str, mock: MockOpenAI, cluster: RedisCluster, tmp_path: object
) -> None:
    # One instance names the cluster by URL, the other by the `redis:` section: the same Redis.
    ns = f"c-{uuid.uuid4().hex[:6]}"
    config = _config(mock, cluster, str(tmp_path), ns)
    other = _config(mock, cluster, str(tmp_path), ns, section=True)
    first, second = start_gateway(impl, ["--config", config]), start_gateway(impl, ["--config", other])
    try:
        # Exact cache: written by one instance, read by the other.
        assert _cache(first, "exact", "What is the capital of Peru?") == "MISS"
        assert _eventually(lambda: _cache(second, "exact", "What is the capital of Peru?") == "HIT")
        # Semantic cache: the other instance learns the entry through pub/sub.
        assert _cache(first, "sem", "Why is the sky blue?") == "MISS"
        assert _eventually(lambda: _cache(second, "sem", "why is the sky blue") == "SEMANTIC_HIT")
        # Stored responses: created on one, retrieved from the other.
        with _client(first) as c:
            made = c.responses.create(model="exact", input="Remember the number 42.")
        with _client(second) as c:
            assert _eventually(lambda: c.responses.retrieve(made.id).id == made.id)
        # Breakers: tripped by one instance's failures, open on the other.
        with _client(first) as c:
            for _ in range(3):
                with pytest.raises(openai.APIError):
                    c.chat.completions.create(model="fragile", messages=[{"role": "user", "content": "x"}])
        def tripped() -> bool:
            metrics = httpx.get(f"{second.url}/metrics").text
            return 'gateway_breaker_state{target="openai/status-500"} 2.0' in metrics
        assert _eventually(tripped)
    finally:
        first.stop()
        second.stop()
    # A restarted instance rebuilds its semantic index from the cluster before it is ready.
    later = start_gateway(impl, ["--config", config])
    try:
        assert _cache(later, "sem", "why is the sky blue") == "SEMANTIC_HIT"
        assert "semantic index: Redis unreadable" not in later.output()
    finally:
        later.stop()


def test_two_instances_share_the_cache_through_sentinel_and_follow_a_failover(
    impl: str, mock: MockOpenAI, tmp_path: object
) -> None:
    """`redis+sentinel://`: the master the sentinels name; when it stops answering and the
    replica is promoted, the gateway finds the new master (a request meanwhile is a miss, never
    an error)."""
    import signal

    import redis as redis_py

    from tests.redis_server import start_sentinel

    watched = start_sentinel()
    try:
        config = CONFIG.format(key=MASTER_KEY, redis=watched.url, upstream=UPSTREAM_KEY,
                               mock=mock.url, ns="sentinel", tmp=tmp_path)  # fmt: skip
        path = str(write_config(config))
        first, second = start_gateway(impl, ["--config", path]), start_gateway(impl, ["--config", path])
        try:
            assert _cache(first, "exact", "What is the capital of Chile?") == "MISS"
            assert _eventually(lambda: _cache(second, "exact", "What is the capital of Chile?") == "HIT")
            watched.primary.process.send_signal(signal.SIGSTOP)
            sentinel = redis_py.Redis(port=watched.sentinel.port)

            def promoted() -> bool:
                host, port = sentinel.sentinel_get_master_addr_by_name("mymaster")
                return int(port) == watched.replica.port

            assert _eventually(promoted, timeout=30)
            # The new master has the entry (replicated before the stop), and takes new ones.
            assert _eventually(lambda: _cache(second, "exact", "What is the capital of Chile?") == "HIT", 20)
            assert _cache(first, "exact", "What is the capital of Cuba?") in ("MISS", "HIT")
            assert _eventually(lambda: _cache(second, "exact", "What is the capital of Cuba?") == "HIT", 20)
        finally:
            first.stop()
            second.stop()
    finally:
        watched.stop()
