"""Request logs with bodies: kept only where asked (a model's `log_bodies`, a virtual key's
metadata), PII and secrets masked before they are written, cut to the cap, streams as sent,
and erased after their retention (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time

import httpx2 as httpx
import msgspec
import openai

from gateway.metering.row import UsageRow
from gateway.store import open_store
from gateway.store.base import RowQuery
from tests.harness import MASTER_KEY, UPSTREAM_KEY, start_gateway, write_config
from tests.mock_openai import MockOpenAI

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
EMAIL = "jane.doe@example-corp.com"
SECRET = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
CONFIG = """
server: {{master_key: env:TEST_MASTER_KEY}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
models:
  - name: logged
    log_bodies: true
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: plain
    targets: [{{provider: openai, model: gpt-4o-mini}}]
usage: {{flush_interval: 0.1}}
logging: {{body_max_bytes: 1024}}
"""


def ledger_row(url: str, request_id: str) -> dict:
    found = httpx.get(
        f"{url}/v1/usage/requests?request_id={request_id}", headers=ADMIN, timeout=30
    ).json()["data"]
    assert len(found) == 1, found
    return found[0]


def test_bodies_are_kept_masked_and_capped_where_asked(impl: str, mock: MockOpenAI) -> None:
    config = write_config(CONFIG.format(mock=mock.url))
    gw = start_gateway(
        impl, ["--config", str(config)],
        {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY},
    )  # fmt: skip
    client = openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0)
    try:
        text = f"mail {EMAIL} with key {SECRET}"
        logged = client.chat.completions.with_raw_response.create(
            model="logged", messages=[{"role": "user", "content": text}]
        )
        row = ledger_row(gw.url, logged.headers["x-request-id"])
        request, answer = row["request_body"], row["response_body"]
        assert '"model":"logged"' in request.replace(" ", "") and "[EMAIL_1]" in request
        assert EMAIL not in request and SECRET not in request and "[OPENAI_KEY_1]" in request
        assert "echo: mail [EMAIL_1]" in answer and EMAIL not in answer  # the answer too
        plain = client.chat.completions.with_raw_response.create(
            model="plain", messages=[{"role": "user", "content": text}]
        )
        row = ledger_row(gw.url, plain.headers["x-request-id"])
        assert row["request_body"] is None and row["response_body"] is None
        # A stream is kept as it was sent; a long body is cut at the cap.
        stream = client.chat.completions.with_raw_response.create(
            model="logged", stream=True, messages=[{"role": "user", "content": "x " * 2000}]
        )
        for _ in stream.parse():
            pass
        row = ledger_row(gw.url, stream.headers["x-request-id"])
        assert row["request_body"].endswith("…[truncated]")
        assert len(row["request_body"]) < 1100
        assert row["response_body"].startswith("data: {")
        # A virtual key whose metadata asks for bodies has them kept on any model.
        made = httpx.post(
            f"{gw.url}/admin/keys", headers=ADMIN, timeout=10,
            json={"name": "audited", "metadata": {"log_bodies": "true"}},
        ).json()  # fmt: skip
        with openai.OpenAI(base_url=gw.v1, api_key=made["key"], max_retries=0) as audited:
            reply = audited.chat.completions.with_raw_response.create(
                model="plain", messages=[{"role": "user", "content": "audit me"}]
            )
        row = ledger_row(gw.url, reply.headers["x-request-id"])
        assert "audit me" in row["request_body"] and "audit me" in row["response_body"]
    finally:
        client.close()
        gw.stop()
    assert EMAIL not in gw.output() and SECRET not in gw.output()


def test_bodies_are_erased_after_their_retention(store: str) -> None:
    async def run() -> None:
        ledger = open_store(store, {})
        await ledger.open()
        now = time.time()
        rows = [
            UsageRow(
                ts=ts, request_id=f"r{i}", endpoint="chat/completions", model="m", provider="p",
                served_model=None, status=200, error_type=None, input_tokens=1, cached_tokens=0,
                cache_write_tokens=0, output_tokens=1, reasoning_tokens=0, counted=False,
                cost=1, saved=0, latency_ms=1.0, ttft_ms=None, attempts=1, cache=None,
                request_body='{"q": 1}', response_body='{"a": 1}',
            )  # fmt: skip
            for i, ts in enumerate((now - 5 * 86400, now - 60))
        ]
        await ledger.write(rows)
        assert await ledger.erase_bodies(now - 3 * 86400) == 1
        found = [r for _, r in await ledger.rows(RowQuery(0, now + 1, {}, 10))]
        assert [(r.request_id, r.request_body) for r in found] == [("r0", None), ("r1", '{"q": 1}')]
        assert found[0].input_tokens == 1  # the row itself stays
        assert msgspec.structs.asdict(found[1])["response_body"] == '{"a": 1}'
        await ledger.close()

    asyncio.run(run())
