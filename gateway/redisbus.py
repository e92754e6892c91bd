"""What every Redis-backed helper of the gateway does the same way: a client that never waits
long, background tasks started and stopped with it, and a channel followed across outages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisError

FAILURES = (RedisError, OSError, TimeoutError)


class RedisWorker:
    """A Redis client and the tasks that use it, started and stopped together."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self.redis: Any = None

    def connect(self) -> None:
        self.redis = aioredis.from_url(
            self._url, socket_timeout=max(self._timeout, 1.0), socket_connect_timeout=self._timeout
        )

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *FAILURES):
                await task
        self._tasks = []
        if self.redis is not None:
            with contextlib.suppress(*FAILURES):
                await self.redis.aclose()


async def follow(
    redis: Any,
    channel: str,
    *,
    resync: Callable[[], Awaitable[None]],
    handle: Callable[[bytes], Awaitable[None]],
    lost: Callable[[BaseException], None] | None = None,
) -> None:
    """Subscribes, catches up (`resync`), then hands each message to `handle`; when Redis goes
    away, waits with growing backoff and does it all again once it is back."""
    backoff = 0.1
    while True:
        try:
            pubsub = redis.pubsub()
            await pubsub.subscribe(channel)
            await resync()
            backoff = 0.1
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    await handle(message["data"])
        except FAILURES as err:
            if lost is not None:
                lost(err)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
