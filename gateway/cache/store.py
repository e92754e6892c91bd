"""Where cached answers live: an in-memory LRU with TTL and a byte budget, and Redis behind it
(shared by instances, kept across restarts). Redis never holds up a request: a lookup that
takes longer than its timeout is a miss, and writes go through a bounded background queue."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from gateway.api.usage import Usage
from gateway.observability import metrics
from gateway.redisbus import FAILURES, RedisBreaker, RedisWorker

LOG = logging.getLogger("gateway.cache")
PREFIX = "gateway:cache:"


class Entry(msgspec.Struct, kw_only=True, array_like=True):
    body: bytes  # the answer in OpenAI's JSON format (a stream is stored assembled)
    expires: float  # wall-clock time
    provider: str
    model: str
    usage: Usage | None = None


_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder(Entry)


class MemoryStore:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= time.time():
            self.delete(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        size = len(entry.body)
        if size > self._max_bytes // 4:
            return  # one answer may not crowd out the rest
        self.delete(key)
        self._entries[key] = entry
        self.bytes += size
        while len(self._entries) > self._max_entries or self.bytes > self._max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.bytes -= len(evicted.body)

    def delete(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.bytes -= len(entry.body)
        return True

    def sweep(self) -> int:
        now = time.time()
        expired = [k for k, e in self._entries.items() if e.expires <= now]
        for key in expired:
            self.delete(key)
        return len(expired)

    def items(self) -> list[tuple[str, Entry]]:
        now = time.time()
        return [(k, e) for k, e in self._entries.items() if e.expires > now]

    def delete_matching(self, prefix: str, suffix: str) -> int:
        doomed = [k for k in self._entries if k.startswith(prefix) and k.endswith(suffix)]
        for key in doomed:
            self.delete(key)
        return len(doomed)


_WRITE_TRIES = 3  # a write that failed on a lost connection is queued again, this many times


class RedisStore:
    """The shared tier. A Redis that keeps timing out is left alone behind a breaker: lookups
    are misses at once instead of each waiting its timeout, and writes wait in their bounded
    queue until it answers again."""

    def __init__(self, url: str, *, timeout_ms: int, queue: int) -> None:
        self._timeout = timeout_ms / 1000
        self._queue: asyncio.Queue[tuple[str, bytes, int, int]] = asyncio.Queue(queue)
        self._worker = RedisWorker(url, timeout=self._timeout)
        self._redis: Any = None
        self.breaker = RedisBreaker("response cache", log=LOG)

    async def start(self) -> None:
        self._worker.connect()
        self._redis = self.breaker.redis = self._worker.redis
        self._worker.spawn(self._write_forever(), "cache-writer")

    async def stop(self) -> None:
        await self.breaker.stop()
        await self._worker.stop()

    async def get(self, key: str) -> Entry | None:
        breaker = self.breaker
        if not breaker.allow():
            metrics.labelled(metrics.CACHE_DEGRADED, "redis_skipped").inc()
            return None
        fetch = asyncio.ensure_future(self._redis.get(PREFIX + key))
        breaker.inflight.add(fetch)
        try:
            payload = await asyncio.wait_for(fetch, self._timeout)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the request itself is cancelled (its client went away)
            metrics.labelled(metrics.CACHE_DEGRADED, "redis_skipped").inc()
            return None  # the breaker opened while this lookup waited: a miss, now
        except FAILURES as err:
            breaker.failed(err)
            metrics.labelled(metrics.CACHE_DEGRADED, "redis_read").inc()
            return None
        finally:
            breaker.inflight.discard(fetch)
        breaker.succeeded()
        if payload is None:
            return None
        try:
            entry = _DECODE.decode(payload)
        except msgspec.MsgspecError:
            return None
        return entry if entry.expires > time.time() else None

    def put(self, key: str, entry: Entry) -> None:
        ttl_ms = int((entry.expires - time.time()) * 1000)
        if ttl_ms <= 0:
            return
        self._enqueue((PREFIX + key, _ENCODE.encode(entry), ttl_ms, 0))

    def _enqueue(self, item: tuple[str, bytes, int, int]) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            metrics.labelled(metrics.CACHE_DEGRADED, "dropped_write").inc()

    async def _write_forever(self) -> None:
        while True:
            await self.breaker.wait()
            key, payload, ttl_ms, tries = await self._queue.get()
            try:
                await asyncio.wait_for(self._redis.set(key, payload, px=ttl_ms), 2.0)
            except FAILURES as err:
                self.breaker.failed(err)  # logs when Redis is lost, not for every write
                metrics.labelled(metrics.CACHE_DEGRADED, "redis_write").inc()
                if tries + 1 < _WRITE_TRIES and not isinstance(err, ResponseError):
                    self._enqueue((key, payload, ttl_ms, tries + 1))
            else:
                self.breaker.succeeded()

    async def delete_matching(self, prefix: str, suffix: str) -> int:
        pattern = PREFIX + _glob(prefix) + "*" + _glob(suffix)
        deleted = 0
        async for key in self._redis.scan_iter(match=pattern, count=500):
            deleted += int(await self._redis.delete(key))
        return deleted


class CacheStore:
    """The memory tier in front of Redis; a Redis hit is copied into memory."""

    def __init__(self, memory: MemoryStore, redis: RedisStore | None) -> None:
        self.memory = memory
        self.redis = redis

    async def get(self, key: str) -> Entry | None:
        entry = self.memory.get(key)
        if entry is None and self.redis is not None:
            entry = await self.redis.get(key)
            if entry is not None:
                self.memory.put(key, entry)
        return entry

    def put(self, key: str, entry: Entry) -> None:
        self.memory.put(key, entry)
        if self.redis is not None:
            self.redis.put(key, entry)
        metrics.CACHE_ENTRIES.set(len(self.memory))

    async def delete_matching(self, prefix: str = "", suffix: str = "") -> int:
        """Deletes every entry whose key (partition:hash) has this prefix and suffix."""
        count = self.memory.delete_matching(prefix, suffix)
        if self.redis is not None:
            count = max(count, await self.redis.delete_matching(prefix, suffix))
        metrics.CACHE_ENTRIES.set(len(self.memory))
        return count


def _glob(text: str) -> str:
    """Literal text inside a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
