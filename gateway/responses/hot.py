"""Stored responses' shared hot tier: Redis (routing.redis_url or REDIS_URL), so an instance
can continue a conversation another one answered a moment ago, before the store has it.

Writes are queued and sent in pipelines off the request path; a read waits at most
`TIMEOUT` and a Redis that keeps failing is skipped (its breaker), so the tier only ever
makes a lookup faster, never a request slower than the store would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from gateway.redisbus import FAILURES, RedisBreaker, RedisWorker

LOG = logging.getLogger("gateway.responses")
TIMEOUT = 0.05  # seconds a lookup may wait on Redis
MAX_QUEUE = 10_000  # writes waiting for Redis; past this the oldest are dropped
MAX_TTL = 86_400  # seconds a record stays in Redis (the store keeps it for retention_days)


def _key(response_id: str) -> str:
    return f"gw:resp:{{{response_id}}}"


class RedisTier:
    def __init__(self, url: str, ttl: float) -> None:
        self._worker = RedisWorker(url, timeout=TIMEOUT)
        self._breaker = RedisBreaker("responses", log=LOG)
        self._ttl = max(1, int(min(ttl, MAX_TTL)))
        self._queue: deque[tuple[str, bytes | None]] = deque()  # None: delete
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self._worker.connect()
        self._breaker.redis = self._worker.redis
        self._worker.spawn(self._flush(), "responses-redis")

    async def stop(self) -> None:
        with contextlib.suppress(*FAILURES, TimeoutError):
            async with asyncio.timeout(1):
                await self._write()
        await self._breaker.stop()
        await self._worker.stop()

    def put(self, response_id: str, record: bytes | None) -> None:
        if len(self._queue) >= MAX_QUEUE:
            self._queue.popleft()
        self._queue.append((response_id, record))
        self._wake.set()

    async def get(self, response_id: str) -> bytes | None:
        if not self._breaker.allow():
            return None
        try:
            async with asyncio.timeout(TIMEOUT):
                found: bytes | None = await self._worker.redis.get(_key(response_id))
        except FAILURES as err:
            self._breaker.failed(err)
            return None
        self._breaker.succeeded()
        return found

    async def _write(self) -> None:
        while self._queue:
            batch = [self._queue[i] for i in range(min(256, len(self._queue)))]
            pipe = self._worker.redis.pipeline(transaction=False)
            for response_id, record in batch:
                if record is None:
                    pipe.delete(_key(response_id))
                else:
                    pipe.set(_key(response_id), record, ex=self._ttl)
            await pipe.execute()
            for _ in batch:
                self._queue.popleft()

    async def _flush(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._breaker.wait()
            try:
                async with asyncio.timeout(2):
                    await self._write()
                self._breaker.succeeded()
            except FAILURES as err:
                self._breaker.failed(err)
                await asyncio.sleep(0.5)
                self._wake.set()
