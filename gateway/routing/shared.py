"""Breaker state shared by every gateway instance through Redis.

Each transition is written to a hash per target (for instances that start later) and published
on a channel (for the ones running). Redis never sits on the request path: transitions are
queued, with a bound, and sent by a background task; a subscriber applies other instances'
transitions. While Redis is slow or down each instance keeps its own state, and on reconnect it
reloads the shared one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time

import msgspec

from gateway.observability import metrics
from gateway.redisbus import FAILURES, RedisWorker, follow, get_many, set_and_publish
from gateway.routing.health import HealthRegistry, State

LOG = logging.getLogger("gateway.routing")
CHANNEL = "gateway:breakers"
PREFIX = "gateway:breaker:"
_QUEUE = 1024
_TIMEOUT = 0.5  # seconds any one Redis operation may take


class _Transition(msgspec.Struct, kw_only=True):
    origin: str
    key: str
    state: int
    until: float
    trips: int


_DECODE = msgspec.json.Decoder(_Transition)
_ENCODE = msgspec.json.Encoder()


class SharedBreakers:
    def __init__(self, url: str, health: HealthRegistry) -> None:
        self._health = health
        self._origin = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self._queue: asyncio.Queue[_Transition] = asyncio.Queue(_QUEUE)
        self._worker = RedisWorker(url, timeout=_TIMEOUT)
        self.connected = False

    async def start(self) -> None:
        self._worker.connect()
        self._redis = self._worker.redis
        self._worker.spawn(self._publish_forever(), "breakers-publish")
        self._worker.spawn(
            follow(self._redis, CHANNEL, resync=self._load, handle=self._take, lost=self._lost),
            "breakers-subscribe",
        )

    async def stop(self) -> None:
        await self._worker.stop()

    def transition(self, key: str, state: State, until: float, trips: int) -> None:
        """A local breaker changed (HealthRegistry listener): queue it for the others."""
        item = _Transition(origin=self._origin, key=key, state=int(state), until=until, trips=trips)
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            metrics.observe_error("gateway")  # dropped: the other instances learn on their own

    async def _publish_forever(self) -> None:
        while True:
            item = await self._queue.get()
            payload = _ENCODE.encode(item)
            ttl_ms = max(1000, int((item.until - time.time()) * 1000) + 60_000)
            try:
                await set_and_publish(
                    self._redis, PREFIX + item.key, payload, ttl_ms, CHANNEL, payload, _TIMEOUT * 2
                )
            except FAILURES as err:
                LOG.warning("breaker state not shared (Redis: %s)", type(err).__name__)

    def _lost(self, err: BaseException) -> None:
        if self.connected:
            LOG.warning(
                "lost Redis for breaker sharing (%s); using local state", type(err).__name__
            )
        self.connected = False

    async def _take(self, payload: bytes) -> None:
        self._apply(payload)

    async def _load(self) -> None:
        """Takes on the state other instances left in Redis (on start and on reconnect)."""
        keys = [key async for key in self._redis.scan_iter(match=PREFIX + "*", count=200)]
        for payload in await get_many(self._redis, keys):
            if payload is not None:
                self._apply(payload)
        self.connected = True

    def _apply(self, payload: bytes) -> None:
        try:
            item = _DECODE.decode(payload)
        except msgspec.MsgspecError:
            return
        if item.origin == self._origin:
            return
        breaker = self._health.get(item.key)
        if breaker is None:
            return
        state = State(item.state)
        if state is State.OPEN and item.until <= time.time():
            return  # a cooldown that has already ended
        breaker.apply_remote(state, item.until, item.trips)
        metrics.observe_breaker(item.key, int(state), tripped=False)
