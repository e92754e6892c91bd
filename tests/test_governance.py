"""Governance end to end: virtual keys through the admin API and the config file, model
allow-lists, RPM / TPM / concurrency / budget rules on a real Redis (exact across three
instances), leases that expire after kill -9, revocation reaching every instance, Redis lost
mid-run (fail open and fail closed), and OpenAI's rate-limit headers read by the SDKs."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2 as httpx
import openai
import pytest
import redis

from gateway.governance import scripts
from gateway.governance.rules import period_id
from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI
from tests.redis_server import RedisServer, start_cluster, start_redis

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
SHARED_REDIS = "redis://127.0.0.1:6379/0"

CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
models:
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: other
    targets: [{{provider: openai, model: gpt-ok}}]
usage: {{store: {store}, flush_interval: 0.2}}
governance:
  redis_url: {redis}
  reload_interval: 0.5
{extra}
"""


def configure(
    mock: MockOpenAI, redis_url: str | None, store: str = "sqlite", extra: str = ""
) -> str:
    redis_line = json.dumps(redis_url) if redis_url else "null"
    return str(
        write_config(
            CONFIG.format(mock=mock.url, store=json.dumps(store), redis=redis_line, extra=extra)
        )
    )


def start(impl: str, config: str, data_dir: str | None = None) -> Gateway:
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    if data_dir:
        env["GATEWAY_DATA_DIR"] = data_dir
    return start_gateway(impl, ["--config", config], env)


def make_key(gateway: Gateway, **fields: object) -> dict:
    reply = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN, json=fields, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json()


def chat(gateway: Gateway, key: str, model: str = "chat", **extra: object) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return httpx.post(
        f"{gateway.v1}/chat/completions", json=body, timeout=30,
        headers={"authorization": f"Bearer {key}"},
    )  # fmt: skip


@pytest.fixture
def sdk() -> Iterator[Callable[..., Any]]:
    """Makes SDK clients (openai.OpenAI, anthropic.Anthropic) and closes them after the test,
    so no pooled connection outlives it."""
    made: list[Any] = []

    def make(kind: Callable[..., Any], **options: Any) -> Any:
        made.append(kind(max_retries=0, **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    server = start_redis()
    yield server
    server.stop()


def test_key_lifecycle_with_both_sdks(
    impl: str, mock: MockOpenAI, tmp_path, sdk: Callable[..., Any]
) -> None:
    gateway = start(impl, configure(mock, None), str(tmp_path))
    try:
        created = make_key(gateway, name="search", team="core", user="alice", models=["chat"])
        secret = created["key"]
        assert secret.startswith("sk-gw-") and "secret_hash" not in created
        key_id = created["id"]
        # The OpenAI SDK with the virtual key.
        client = sdk(openai.OpenAI, base_url=gateway.v1, api_key=secret)
        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}]
        )
        assert answer.choices[0].message.content
        assert [m.id for m in client.models.list().data] == ["chat"]
        # A model outside the allow-list: 403 model_not_allowed, naming the model.
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(
                model="other", messages=[{"role": "user", "content": "hi"}]
            )
        assert denied.value.code == "model_not_allowed" and "other" in denied.value.message
        # The Anthropic SDK sends it as x-api-key.
        claude = sdk(anthropic.Anthropic, base_url=gateway.url, api_key=secret)
        message = claude.messages.create(
            model="chat", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        assert message.content
        # Listing and reading never show the secret or its hash.
        listed = httpx.get(f"{gateway.url}/admin/keys", headers=ADMIN).json()["data"]
        assert [k["id"] for k in listed] == [key_id]
        document = httpx.get(f"{gateway.url}/admin/keys/{key_id}", headers=ADMIN).text
        assert secret not in document and "sha256" not in document
        # Patch, rotate (the old secret stops at once), revoke.
        patched = httpx.patch(
            f"{gateway.url}/admin/keys/{key_id}",
            headers=ADMIN,
            json={"models": None, "rpm_limit": 100},
        )
        assert patched.status_code == 200 and patched.json()["rpm_limit"] == 100
        assert chat(gateway, secret, "other").status_code == 200
        rotated = httpx.post(f"{gateway.url}/admin/keys/{key_id}/rotate", headers=ADMIN).json()
        assert rotated["key"] != secret
        old = chat(gateway, secret)
        assert old.status_code == 401 and old.json()["error"]["code"] == "invalid_api_key"
        assert secret not in old.text
        assert chat(gateway, rotated["key"]).status_code == 200
        assert httpx.delete(f"{gateway.url}/admin/keys/{key_id}", headers=ADMIN).status_code == 200
        revoked = chat(gateway, rotated["key"])
        assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_api_key"
        # The ledger attributes usage to the key, its team and its user.
        time.sleep(0.5)
        rows = httpx.get(f"{gateway.url}/v1/usage/requests?key={key_id}", headers=ADMIN).json()
        assert rows["data"] and {(r["team"], r["user"]) for r in rows["data"]} == {
            ("core", "alice")
        }
        # Only the master key manages keys; a virtual key cannot.
        again = make_key(gateway)
        assert (
            httpx.get(
                f"{gateway.url}/admin/keys", headers={"authorization": f"Bearer {again['key']}"}
            ).status_code
            == 401
        )
        # The secrets never reached the log.
        log = gateway.output()
        for leaked in (
            secret,
            rotated["key"],
            again["key"],
        ):
            assert leaked not in log
    finally:
        gateway.stop()
    # Only hashes are stored.
    db = sqlite3.connect(tmp_path / "usage.db")
    stored = " ".join(row[0] for row in db.execute("SELECT record FROM gateway_keys"))
    assert secret not in stored and rotated["key"] not in stored
    assert hashlib.sha256(rotated["key"].encode()).hexdigest() in stored


def test_bad_admin_input_is_a_400_naming_the_field(impl: str, mock: MockOpenAI, tmp_path) -> None:
    gateway = start(impl, configure(mock, None), str(tmp_path))
    try:
        for body, param in (
            ({"rpm_limit": -1}, "rpm_limit"),
            ({"budget_duration": "fortnight"}, "budget_duration"),
            ({"rpm_limit": "many"}, "rpm_limit"),
            ({"unknown": 1}, None),
            ({"expires_at": "yesterday"}, "expires_at"),
        ):
            reply = httpx.post(f"{gateway.url}/admin/keys", headers=ADMIN, json=body)
            assert reply.status_code == 400, (body, reply.text)
            if param:
                assert reply.json()["error"]["param"] == param
        assert httpx.get(f"{gateway.url}/admin/keys/nope", headers=ADMIN).status_code == 404
        unknown = chat(gateway, "sk-gw-not-a-key")
        assert unknown.status_code == 401 and "sk-gw-not-a-key" not in unknown.text
        expired = make_key(gateway, expires_at=time.time() - 1)
        assert chat(gateway, expired["key"]).status_code == 401
    finally:
        gateway.stop()


def test_rpm_is_exact_across_three_instances(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path, sdk: Callable[..., Any]
) -> None:
    config = configure(mock, private_redis.url)
    gateways = [start(impl, config, str(tmp_path)) for _ in range(3)]
    try:
        key = make_key(gateways[0], rpm_limit=100)["key"]
        time.sleep(1.2)  # the other instances read the new key (published, or polled)

        def one(i: int) -> int:
            return chat(gateways[i % 3], key).status_code

        with concurrent.futures.ThreadPoolExecutor(48) as pool:
            statuses = list(pool.map(one, range(300)))
        assert statuses.count(200) == 100, statuses
        assert statuses.count(429) == 200
        refused = chat(gateways[1], key)
        error = refused.json()["error"]
        assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
        assert (
            int(refused.headers["retry-after-ms"]) > 0 and int(refused.headers["retry-after"]) >= 1
        )
        assert refused.headers["x-ratelimit-limit-requests"] == "100"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        # Tokens, streamed, across the three: what was admitted never passes the limit by
        # more than one request's estimate (its input + max_tokens 100).
        tpm = make_key(gateways[0], tpm_limit=1000)["key"]
        time.sleep(1.2)

        def stream(i: int) -> int:
            client = sdk(openai.OpenAI, base_url=gateways[i % 3].v1, api_key=tpm)
            try:
                chunks = list(client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=100,
                    stream=True, stream_options={"include_usage": True},
                ))  # fmt: skip
            except openai.RateLimitError:
                return 0
            return chunks[-1].usage.total_tokens  # type: ignore[union-attr]

        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            used = list(pool.map(stream, range(120)))
        admitted = [u for u in used if u]
        assert 0 in used and len(admitted) >= 9  # refused some; 1000 / 110 fit at once at least
        assert sum(admitted) <= 1000 + 110
    finally:
        for gateway in gateways:
            gateway.stop()


def test_headers_on_every_limited_response_and_the_window_resets(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path, sdk: Callable[..., Any]
) -> None:
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        key = make_key(gateway, rpm_limit=3, tpm_limit=100_000)["key"]
        client = sdk(openai.OpenAI, base_url=gateway.v1, api_key=key)
        for remaining in (2, 1, 0):
            raw = client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10
            )
            assert raw.headers["x-ratelimit-limit-requests"] == "3"
            assert raw.headers["x-ratelimit-remaining-requests"] == str(remaining)
            assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
            assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
            assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=10
            )
        assert limited.value.code == "rate_limit_exceeded"
        # The sliding minute: after it, the key is admitted again.
        deadline = time.monotonic() + 75
        while chat(gateway, key, max_tokens=10).status_code == 429:
            assert time.monotonic() < deadline, "the window never reset"
            time.sleep(1)
    finally:
        gateway.stop()


def test_tpm_with_streams_and_settling(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path, sdk: Callable[..., Any]
) -> None:
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        key = make_key(gateway, tpm_limit=400)["key"]
        client = sdk(openai.OpenAI, base_url=gateway.v1, api_key=key)
        # Each request reserves its input plus max_tokens (100) and settles to the mock's 18.
        admitted = 0
        for _ in range(12):
            try:
                stream = client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=100,
                    stream=True, stream_options={"include_usage": True},
                )  # fmt: skip
                list(stream)
                admitted += 1
                time.sleep(0.05)  # settles are batched: let this one land
            except openai.RateLimitError:
                break
        # Settled to actual usage (18 each), so far more than 400 / 108 requests fit.
        assert admitted == 12
        # An estimate larger than the limit can never fit: said so, and not retried.
        too_big = chat(gateway, key, max_tokens=1000)
        assert too_big.status_code == 429 and too_big.headers["x-should-retry"] == "false"
        # Without max_tokens the default output cap (4096) is reserved, which exceeds 400.
        assert chat(gateway, key).status_code == 429
    finally:
        gateway.stop()


def test_budget_is_never_overshot_and_says_do_not_retry(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        # gpt-4o-mini: each answer costs $0.000005625; the estimate (input + 20 output) less.
        created = make_key(gateway, max_budget=0.00003, budget_duration="1mo")
        key = created["key"]

        def one(_: int) -> int:
            return chat(gateway, key, max_tokens=20).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(40)))
        admitted = statuses.count(200)
        assert 1 <= admitted <= 6, statuses
        refused = chat(gateway, key, max_tokens=20)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert refused.headers["x-should-retry"] == "false"
        assert int(refused.headers["retry-after"]) > 0
        time.sleep(0.5)
        document = httpx.get(f"{gateway.url}/admin/keys/{created['id']}", headers=ADMIN).json()
        budget = document["limits"][0]["budget"]
        assert budget["max_budget"] == pytest.approx(0.00003)
        assert budget["spent"] == pytest.approx(admitted * 0.000005625)
        assert budget["spent"] <= 0.00003 and budget["held"] == 0
        assert budget["period_start"].endswith("+00:00") and budget["period_start"][8:10] == "01"
        # /v1/usage says the same for the key it is filtered by.
        usage = httpx.get(f"{gateway.url}/v1/usage?key={created['id']}", headers=ADMIN).json()
        assert usage["limits"][0]["budget"]["spent"] == pytest.approx(budget["spent"])
        assert usage["requests"] >= admitted
    finally:
        gateway.stop()


def test_limited_keys_work_through_the_anthropic_front_door(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path, sdk: Callable[..., Any]
) -> None:
    """A key under a token limit and a budget, on /v1/messages: the estimate counts the
    Anthropic body (it was a 500: the token counter took the raw messages for chat ones)."""
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        created = make_key(gateway, tpm_limit=100000, max_budget=1, budget_duration="1mo")
        claude = sdk(anthropic.Anthropic, base_url=gateway.url, api_key=created["key"])
        message = claude.messages.create(
            model="chat", max_tokens=50, system="Be brief.",
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
        )  # fmt: skip
        assert message.content
        with claude.messages.stream(
            model="chat", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            assert stream.get_final_text()
        time.sleep(0.5)
        document = httpx.get(f"{gateway.url}/admin/keys/{created['id']}", headers=ADMIN).json()
        assert document["limits"][0]["budget"]["spent"] > 0
        assert document["limits"][0]["budget"]["held"] == 0
    finally:
        gateway.stop()


def test_two_requests_with_one_request_id_hold_and_settle_apart(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    """A request id is the client's (a load balancer's retry, an SDK's, a client that reuses
    one): two requests in flight under one id are two holds. They were one hold counted
    twice, and the second settle found nothing: a request's estimate stayed held for good."""
    priced = "pricing:\n  openai/slow-1: {input: 1, output: 2}"  # a slow model with a price
    gateway = start(impl, configure(mock, private_redis.url, extra=priced), str(tmp_path))
    try:
        created = make_key(gateway, max_budget=1, budget_duration="1mo")
        headers = {"authorization": f"Bearer {created['key']}", "x-request-id": "same-id-twice"}
        body = {"model": "openai/slow-1", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}

        def one(_: int) -> int:
            return httpx.post(f"{gateway.v1}/chat/completions", json=body, headers=headers, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            assert list(pool.map(one, range(2))) == [200, 200]
        deadline = time.monotonic() + 5
        while True:
            budget = httpx.get(f"{gateway.url}/admin/keys/{created['id']}", headers=ADMIN).json()["limits"][0]["budget"]
            if budget["held"] == 0:
                break
            assert time.monotonic() < deadline, budget  # settles are written within a batch
            time.sleep(0.1)
        assert budget["spent"] > 0
    finally:
        gateway.stop()


def test_concurrency_limit_and_queueing(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        plain = make_key(gateway, max_parallel_requests=2)["key"]
        queued = make_key(gateway, max_parallel_requests=2, queue_ms=5000)["key"]

        def slow(key: str) -> int:
            body = {"model": "openai/slow-1", "messages": [{"role": "user", "content": "hi"}]}
            return httpx.post(f"{gateway.v1}/chat/completions", json=body, timeout=30,
                              headers={"authorization": f"Bearer {key}"}).status_code  # fmt: skip

        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(slow, [plain] * 6))
        assert statuses.count(200) == 2 and statuses.count(429) == 4, statuses
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(slow, [queued] * 6))
        assert statuses == [200] * 6  # waited for a slot instead
    finally:
        gateway.stop()


def test_kill_9_leaves_no_lease_after_its_ttl(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    config = configure(mock, private_redis.url, extra="  lease_grace: 1")
    first = start(impl, config, str(tmp_path))
    second = start(impl, config, str(tmp_path))
    try:
        created = make_key(first, max_parallel_requests=1)
        key = created["key"]
        time.sleep(1.2)
        pool = concurrent.futures.ThreadPoolExecutor(1)
        body = {"model": "openai/slow-30", "messages": [{"role": "user", "content": "hi"}]}
        pool.submit(
            httpx.post, f"{first.v1}/chat/completions", json=body, timeout=60,
            headers={"authorization": f"Bearer {key}", "x-gateway-timeout": "2"},
        )  # fmt: skip
        time.sleep(0.7)
        assert chat(second, key).status_code == 429  # the slot is held by the first instance
        first.stop(signal.SIGKILL)
        # The hold expires at its deadline (2 s) + grace (1 s) without anyone releasing it.
        deadline = time.monotonic() + 10
        while chat(second, key).status_code != 200:
            assert time.monotonic() < deadline, "the dead instance's lease never expired"
            time.sleep(0.25)
        time.sleep(0.3)  # that request's own hold is settled in the next batch
        with redis.Redis.from_url(private_redis.url) as client:
            assert client.zcard(f"gw:{{key:{created['id']}}}:h") == 0
        pool.shutdown(wait=False)
    finally:
        first.stop()
        second.stop()


def test_a_live_request_keeps_its_hold_and_a_killed_one_loses_it_within_a_lease(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    """Holds are short leases renewed while their request lives: a 30 s request keeps its
    concurrency slot well past the 2 s lease; once its instance is killed, the slot is free
    within about a lease (the old design held it for the request's whole 600 s deadline)."""
    config = configure(mock, private_redis.url, extra="  lease_ttl: 2")
    first = start(impl, config, str(tmp_path))
    second = start(impl, config, str(tmp_path))
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        created = make_key(first, max_parallel_requests=1)
        key = created["key"]
        time.sleep(1.2)
        body = {"model": "openai/slow-30", "messages": [{"role": "user", "content": "hi"}]}
        pool.submit(httpx.post, f"{first.v1}/chat/completions", json=body, timeout=60,
                    headers={"authorization": f"Bearer {key}"})  # fmt: skip
        time.sleep(0.7)
        for _ in range(5):  # 5 s: two and a half leases, renewed by the instance serving it
            assert chat(second, key).status_code == 429
            time.sleep(1.0)
        first.stop(signal.SIGKILL)
        killed = time.monotonic()
        while chat(second, key).status_code != 200:
            assert time.monotonic() - killed < 6, "the dead instance's hold outlived its lease"
            time.sleep(0.2)
    finally:
        pool.shutdown(wait=False)
        first.stop()
        second.stop()


def test_revocation_reaches_every_instance_within_a_second(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, store: str, tmp_path
) -> None:
    # Keys in SQLite or PostgreSQL, shared by three instances; pub/sub only (no polling).
    text = Path(configure(mock, private_redis.url, store=store)).read_text()
    config = str(write_config(text.replace("reload_interval: 0.5", "reload_interval: 30")))
    gateways = [start(impl, config, str(tmp_path)) for _ in range(3)]
    try:
        created = make_key(gateways[0])
        key = created["key"]
        deadline = time.monotonic() + 1.0
        while not all(chat(g, key).status_code == 200 for g in gateways[1:]):
            assert time.monotonic() < deadline, "a new key did not reach every instance in 1 s"
        assert (
            httpx.delete(f"{gateways[0].url}/admin/keys/{created['id']}", headers=ADMIN).status_code
            == 200
        )
        revoked_at = time.monotonic()
        for gateway in gateways[1:]:
            while chat(gateway, key).status_code != 401:
                assert time.monotonic() - revoked_at < 1.0, "revocation took more than 1 s"
    finally:
        for gateway in gateways:
            gateway.stop()


def test_redis_lost_mid_run_fails_open_for_rates_closed_for_closed_budgets(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    extra = """  limits:
    - {scope: feature, match: paid, max_budget: 100, on_store_error: closed}"""
    gateway = start(impl, configure(mock, private_redis.url, extra=extra), str(tmp_path))
    try:
        key = make_key(gateway, rpm_limit=1000)["key"]
        paid = {"x-gateway-metadata": json.dumps({"feature": "paid"})}
        assert chat(gateway, key).status_code == 200
        private_redis.stop()
        started = time.monotonic()
        statuses = [chat(gateway, key).status_code for _ in range(50)]
        assert statuses == [200] * 50  # rate limits fail open
        assert time.monotonic() - started < 10
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        closed = httpx.post(f"{gateway.v1}/chat/completions", json=body, timeout=10,
                            headers={"authorization": f"Bearer {key}", **paid})  # fmt: skip
        assert closed.status_code == 503 and closed.json()["error"]["code"] == "budget_unavailable"
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert "gateway_limiter_degraded 1.0" in metrics
        assert "Redis unreachable" in gateway.output()
    finally:
        gateway.stop()


def test_a_budget_is_not_overspent_while_redis_is_away(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    """Budgets admit while Redis is away (on_store_error: open), but only what Redis last
    said was left. Each answer costs $0.000005625 and reserves about $0.0000132 (the input
    and 20 output tokens); a budget of ten answers, five spent with Redis up, has about
    $0.0000206 left: enough for two more locally, not for another eight (it used to check the
    local spend against the whole budget)."""
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        created = make_key(gateway, max_budget=10 * 0.000005625, budget_duration="1mo")
        key = created["key"]
        for _ in range(5):
            assert chat(gateway, key, max_tokens=20).status_code == 200
            time.sleep(0.1)  # settled before the next, so the estimate is the only hold
        private_redis.stop()
        statuses = [chat(gateway, key, max_tokens=20).status_code for _ in range(8)]
        assert 1 <= statuses.count(200) <= 2, statuses
        refused = chat(gateway, key, max_tokens=20)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "insufficient_quota"
    finally:
        gateway.stop()


def test_redis_back_replays_what_was_admitted_locally(
    impl: str, mock: MockOpenAI, tmp_path
) -> None:
    server = start_redis()
    gateway = start(impl, configure(mock, server.url), str(tmp_path))
    try:
        created = make_key(gateway, max_budget=10)
        key = created["key"]
        assert chat(gateway, key, max_tokens=20).status_code == 200
        port = server.port
        server.stop()
        for _ in range(4):
            assert chat(gateway, key, max_tokens=20).status_code == 200
        server = start_redis(port)
        deadline = time.monotonic() + 15
        while True:
            document = httpx.get(f"{gateway.url}/admin/keys/{created['id']}", headers=ADMIN).json()
            limits = document["limits"][0]
            if limits["source"] == "redis" and limits["budget"]["spent"] == pytest.approx(
                4 * 0.000005625
            ):
                break  # the fresh Redis holds what was admitted while it was away
            assert time.monotonic() < deadline, document
            time.sleep(0.3)
    finally:
        gateway.stop()
        server.stop()


def test_config_keys_teams_and_rules(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    secret = "sk-gw-from-the-config-file-0123456789"
    hashed = "sk-gw-hashed-in-the-config-0123456789"
    extra = f"""  keys:
    - {{id: ci, key: env:TEST_CONFIG_KEY, team: platform, models: ["ch*"]}}
    - {{id: hashed, key_hash: "sha256:{hashlib.sha256(hashed.encode()).hexdigest()}"}}
  teams:
    platform: {{rpm_limit: 4}}
  limits:
    - {{scope: user, rpm_limit: 2}}"""
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY, "TEST_CONFIG_KEY": secret,
           "GATEWAY_DATA_DIR": str(tmp_path)}  # fmt: skip
    gateway = start_gateway(
        impl, ["--config", configure(mock, private_redis.url, extra=extra)], env
    )
    try:
        assert chat(gateway, hashed).status_code == 200
        assert chat(gateway, secret, "other").status_code == 403
        # Each user gets 2 a minute; the team 4 across its keys.
        assert [chat(gateway, secret, user="u1").status_code for _ in range(3)] == [200, 200, 429]
        assert [chat(gateway, secret, user="u2").status_code for _ in range(3)] == [200, 200, 429]
        team = chat(gateway, secret, user="u3")
        assert team.status_code == 429 and "team platform" in team.json()["error"]["message"]
        # The CLI prints the hash the file takes (the secret read from stdin, never argv).
        printed = subprocess.run(
            [sys.executable, "-m", "gateway", "keys", "hash"], input=hashed + "\n",
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        assert printed == f"sha256:{hashlib.sha256(hashed.encode()).hexdigest()}"
        # Declared in the file: the admin API cannot change it.
        assert httpx.delete(f"{gateway.url}/admin/keys/ci", headers=ADMIN).status_code == 409
        assert secret not in gateway.output()
    finally:
        gateway.stop()


def test_no_redis_limits_per_process(impl: str, mock: MockOpenAI, tmp_path) -> None:
    gateway = start(impl, configure(mock, None), str(tmp_path))
    try:
        key = make_key(gateway, rpm_limit=2)["key"]
        assert [chat(gateway, key).status_code for _ in range(3)] == [200, 200, 429]
    finally:
        gateway.stop()


def test_teams_through_the_admin_api(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        name = f"t-{uuid.uuid4().hex[:6]}"
        made = httpx.post(
            f"{gateway.url}/admin/teams", headers=ADMIN, json={"name": name, "rpm_limit": 3}
        )
        assert made.status_code == 200, made.text
        keys = [make_key(gateway, team=name)["key"] for _ in range(2)]
        statuses = [chat(gateway, keys[i % 2]).status_code for i in range(4)]
        assert statuses == [200, 200, 200, 429]
        team = httpx.get(f"{gateway.url}/admin/teams/{name}", headers=ADMIN).json()
        assert team["limits"][0]["requests_this_minute"] == 3
        assert (
            httpx.patch(
                f"{gateway.url}/admin/teams/{name}", headers=ADMIN, json={"rpm_limit": None}
            ).status_code
            == 200
        )
        assert chat(gateway, keys[0]).status_code == 200
        assert httpx.delete(f"{gateway.url}/admin/teams/{name}", headers=ADMIN).status_code == 200
        assert httpx.get(f"{gateway.url}/admin/teams/{name}", headers=ADMIN).status_code == 404
    finally:
        gateway.stop()


def test_a_target_at_its_own_limit_is_skipped_like_a_cooling_one(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    extra = """  limits:
    - {scope: provider, match: openai, rpm_limit: 2}
    - {scope: provider, match: backup/gpt-ok, rpm_limit: 1}"""
    text = (
        Path(configure(mock, private_redis.url, extra=extra))
        .read_text()
        .replace(
            "models:\n",
            f"""  backup: {{type: openai-compatible, api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock.url}/v1"}}
models:
  - name: fb
    strategy: {{mode: fallback}}
    targets: [{{provider: openai, model: gpt-4o-mini}}, {{provider: backup, model: gpt-ok}}]
""",
            1,
        )
    )
    gateway = start(impl, str(write_config(text)), str(tmp_path))
    try:
        served = []
        for _ in range(4):
            reply = chat(gateway, MASTER_KEY, "fb")
            served.append((reply.status_code, reply.headers.get("x-gateway-provider")))
        assert served[:3] == [(200, "openai"), (200, "openai"), (200, "backup")]
        assert served[3][0] == 503  # both targets at their limits: like all cooling down
        assert int(httpx.post(f"{gateway.v1}/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
                              headers=ADMIN).headers["retry-after"]) >= 1  # fmt: skip
        time.sleep(1.2)  # decisions are handed to prometheus once a second
        metrics = httpx.get(f"{gateway.url}/metrics").text
        assert (
            'gateway_ratelimit_decisions_total{outcome="requests",rule="provider:openai"}'
            in metrics
        )
    finally:
        gateway.stop()


def test_the_scripts_budget_periods_match_the_gateways() -> None:
    """Redis computes a budget's period from its own clock; the admin API shows the same."""
    with redis.Redis.from_url(SHARED_REDIS) as client:
        try:
            client.ping()
        except redis.ConnectionError as err:
            pytest.fail(f"Redis is needed on 127.0.0.1:6379 (apt-get install redis-server): {err}")
        scope = f"test:{uuid.uuid4().hex}"
        for period in (0, 86400, 7 * 86400, 30 * 86400, -1, 3600):
            found = client.eval(scripts.INSPECT, 5, *scripts.keys_of(scope), period)
            now = float(client.time()[0])
            assert found[5].decode() == period_id(period, now), period


def test_on_a_redis_cluster(impl: str, mock: MockOpenAI, tmp_path) -> None:
    """Keys are hash-tagged per scope; a key's and its team's rules sit in different slots and
    are reserved scope by scope, all or nothing, on a 3-master cluster shared by 2 instances."""
    cluster = start_cluster()
    config = configure(mock, cluster.url)
    gateways = [start(impl, config, str(tmp_path)) for _ in range(2)]
    try:
        team = f"c-{uuid.uuid4().hex[:6]}"
        made = httpx.post(
            f"{gateways[0].url}/admin/teams", headers=ADMIN, json={"name": team, "rpm_limit": 30}
        )
        assert made.status_code == 200
        key = make_key(gateways[0], team=team, rpm_limit=20)
        other = make_key(gateways[0], team=team)
        time.sleep(1.2)

        def one(i: int) -> int:
            return chat(gateways[i % 2], key["key"]).status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(one, range(40)))
        assert statuses.count(200) == 20, statuses  # the key's own limit
        # The team had 20 of its 30; refused requests gave their team count back.
        assert [chat(gateways[1], other["key"]).status_code for _ in range(11)] == [200] * 10 + [
            429
        ]
        document = httpx.get(f"{gateways[0].url}/admin/keys/{key['id']}", headers=ADMIN).json()
        assert [d["requests_this_minute"] for d in document["limits"]] == [20, 30]
    finally:
        for gateway in gateways:
            gateway.stop()
        cluster.stop()


def test_a_fallback_mid_window_admits_no_more_than_redis_had_left(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    """Redis gave out 3 of 6 this minute, then hangs: decided locally, the key gets the 3
    Redis had left, not a fresh local minute of 6 (nor 6 again for one already used up)."""
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        half = make_key(gateway, rpm_limit=6)["key"]
        spent = make_key(gateway, rpm_limit=2)["key"]
        assert [chat(gateway, half).status_code for _ in range(3)] == [200] * 3
        assert [chat(gateway, spent).status_code for _ in range(3)] == [200, 200, 429]
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            assert [chat(gateway, half).status_code for _ in range(5)] == [200] * 3 + [429] * 2
            assert chat(gateway, spent).status_code == 429
            assert "Redis unreachable" in gateway.output()
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
    finally:
        gateway.stop()


def test_a_hung_redis_stalls_no_request_for_long(
    impl: str, mock: MockOpenAI, private_redis: RedisServer, tmp_path
) -> None:
    """A Redis that stops answering (SIGSTOP, not a refused connection): reserves wait past
    redis_timeout_ms only until three have failed and the breaker opens; then every request is
    decided locally at once."""
    gateway = start(impl, configure(mock, private_redis.url), str(tmp_path))
    try:
        key = make_key(gateway, rpm_limit=1000)["key"]
        assert chat(gateway, key).status_code == 200
        private_redis.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                timed = list(
                    pool.map(
                        lambda _: (chat(gateway, key).status_code, time.monotonic()), range(24)
                    )
                )
            assert [status for status, _ in timed] == [200] * 24
            assert max(at for _, at in timed) - started < 2.5  # never the 1 s hard wait per request
            later = time.monotonic()
            assert chat(gateway, key).status_code == 200
            assert time.monotonic() - later < 0.5  # the breaker is open: no wait at all
        finally:
            private_redis.process.send_signal(signal.SIGCONT)
    finally:
        gateway.stop()
