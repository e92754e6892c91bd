"""What every Redis-backed helper of the gateway does the same way: a client that never waits
long, background tasks started and stopped with it, and a channel followed across outages."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import RedisClusterException, RedisError

# RedisClusterException (a cluster's own refusals: no slot covered, a command it blocks) is
# not a RedisError.
FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


CLUSTER = "redis+cluster://"
SENTINEL = "redis+sentinel://"


def _hosts(listed: str, default_port: int) -> list[tuple[str, int]]:
    out = []
    for part in listed.split(","):
        host, _, port = part.rpartition(":")
        out.append((host or "127.0.0.1", int(port or default_port)))
    return out


def client(url: str, **options: Any) -> Any:
    """`redis://…` (one server), `redis+cluster://host:port,host:port` (a Redis Cluster:
    redis-py's cluster client follows MOVED and ASK) or
    `redis+sentinel://host:port,host:port/<service>[/<db>]` (the service's master as the
    sentinels name it, found again after a failover)."""
    if url.startswith(CLUSTER):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        listed = url.removeprefix(CLUSTER).split("/")[0]
        nodes = [ClusterNode(host, port) for host, port in _hosts(listed, 6379)]
        return RedisCluster(startup_nodes=nodes, **options)
    if url.startswith(SENTINEL):
        from redis.asyncio.sentinel import Sentinel

        listed, _, path = url.removeprefix(SENTINEL).partition("/")
        service, _, db = path.partition("/")
        timeouts = {k: v for k, v in options.items() if k.startswith("socket")}
        sentinel = Sentinel(_hosts(listed, 26379), sentinel_kwargs=timeouts, **timeouts)
        return sentinel.master_for(service or "mymaster", db=int(db or 0), **options)
    return aioredis.from_url(url, **options)


def is_cluster(redis: Any) -> bool:
    return hasattr(redis, "mget_nonatomic")  # only redis-py's cluster client has it


async def set_and_publish(  # noqa: PLR0913 - the key, its value and life, and the message
    redis: Any, name: str, value: bytes, px: int, channel: str, message: bytes | str, timeout: float
) -> None:
    """SET a key and PUBLISH that it changed: one pipelined round trip on a single Redis; two
    commands on a cluster, which refuses PUBLISH in a pipeline (and sends it to every node)."""
    if is_cluster(redis):
        await asyncio.wait_for(redis.set(name, value, px=px), timeout)
        await asyncio.wait_for(redis.publish(channel, message), timeout)
        return
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(name, value, px=px)
        pipe.publish(channel, message)
        await asyncio.wait_for(pipe.execute(), timeout)


async def get_many(redis: Any, names: list[Any]) -> list[bytes | None]:
    """MGET, or on a cluster (where the keys sit in many slots) one MGET per slot."""
    if not names:
        return []
    if is_cluster(redis):
        return list(await redis.mget_nonatomic(names))
    return list(await redis.mget(names))


def pubsub_url(url: str) -> str:
    """Where to subscribe: a cluster propagates PUBLISH to every node, so any one of them."""
    if url.startswith(CLUSTER):
        return "redis://" + url.removeprefix(CLUSTER).split("/")[0].split(",")[0]
    return url


class RedisWorker:
    """A Redis client and the tasks that use it, started and stopped together."""

    def __init__(self, url: str, *, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []
        self.redis: Any = None

    def connect(self, *, pubsub: bool = False) -> None:
        url = pubsub_url(self._url) if pubsub else self._url
        self.redis = client(
            url, socket_timeout=max(self._timeout, 1.0), socket_connect_timeout=self._timeout
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


class RedisBreaker:
    """Stops asking a Redis that keeps failing, and says so once rather than per operation.

    Each failed or timed-out call counts; after `threshold` in a row the breaker opens: callers
    see `allow() == False` and skip Redis at no cost (a lookup is a miss at once, a writer
    waits), while one background task PINGs every `probe_interval` seconds. The first PING that
    answers closes it. Calls still waiting on Redis when it opens are cancelled (`inflight`),
    so the requests behind them do not each sit out their timeout. One line is logged when
    Redis is lost and one when it is back, with how many operations were skipped meanwhile.
    """

    def __init__(
        self,
        what: str,
        *,
        threshold: int = 3,
        probe_interval: float = 1.0,
        probe_timeout: float = 0.5,
        log: logging.Logger | None = None,
    ) -> None:
        self._what = what
        self._threshold = threshold
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._log = log or logging.getLogger("gateway.redis")
        self._failures = 0
        self._opened_at = 0.0
        self._skipped = 0
        self._probe: asyncio.Task[None] | None = None
        self._recovered = asyncio.Event()
        self._recovered.set()
        self.redis: Any = None  # the client the probe PINGs
        self.inflight: set[asyncio.Future[Any]] = set()  # calls to cancel if Redis is lost

    @property
    def open(self) -> bool:
        return not self._recovered.is_set()

    def allow(self) -> bool:
        """Whether to call Redis now; a refusal is counted as a skipped operation."""
        if self._recovered.is_set():
            return True
        self._skipped += 1
        return False

    async def wait(self) -> None:
        """Until Redis is reachable (for background writers, which keep their queue)."""
        await self._recovered.wait()

    def succeeded(self) -> None:
        self._failures = 0

    def failed(self, err: BaseException) -> None:
        self._failures += 1
        if self._failures < self._threshold or self.open:
            return
        self._recovered.clear()
        self._opened_at = time.monotonic()
        self._skipped = len(self.inflight)
        for call in self.inflight:
            call.cancel()
        self._log.warning(
            "%s: Redis unreachable (%s); not asking it until it answers again",
            self._what,
            type(err).__name__,
        )
        if self.redis is not None:
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())

    async def _probe_until_back(self) -> None:
        while True:
            await asyncio.sleep(self._probe_interval)
            try:
                await asyncio.wait_for(self.redis.ping(), self._probe_timeout)
            except FAILURES:
                continue
            break
        self._failures = 0
        self._recovered.set()
        self._log.warning(
            "%s: Redis reachable again after %.1fs; %d operations skipped meanwhile",
            self._what,
            time.monotonic() - self._opened_at,
            self._skipped,
        )

    async def stop(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
