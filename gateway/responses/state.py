"""Conversation state for /v1/responses: what each stored response said and was asked, so
`previous_response_id` works for every provider and GET /v1/responses/{id} answers.

The newest records stay in memory (a chain's next turn, on this instance, costs no read),
and in Redis when one is configured (hot.py: another instance's next turn, at once);
every record is written to the store in batches off the request path and kept while the store
is down (replayed when it returns, oldest dropped past `MAX_QUEUE`). Another instance reads
what it lacks from the store. A record belongs to the partition (the caller) that made it: any
other caller is told it does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.config.schema import ResponsesCfg
from gateway.errors import ServiceUnavailable
from gateway.responses.hot import RedisTier
from gateway.store.base import StoreError
from gateway.store.responses import ResponseStore

if TYPE_CHECKING:
    from gateway.governance.registry import Principal

LOG = logging.getLogger("gateway.responses")
MAX_QUEUE = 50_000


def partition_of(principal: Principal | None) -> str:
    """Whose stored responses a caller may read: its virtual key's, else the operator's."""
    return f"key:{principal.key.id}" if principal is not None else "operator"


class Stored(msgspec.Struct, kw_only=True):
    id: str
    partition: str
    created_at: float
    provider: str  # the provider that answered
    native: bool  # answered by the provider's own Responses API (its id, its state)
    response: dict[str, Any]
    input: list[dict[str, Any]]  # this request's input items
    conversation: list[dict[str, Any]]  # every item a continuation replays, outputs included


_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(Stored)


class Conversations:
    def __init__(
        self, store: ResponseStore | None, cfg: ResponsesCfg, hot: RedisTier | None = None
    ) -> None:
        self._store = store
        self._hot = hot
        self._cfg = cfg
        self._memory: OrderedDict[str, Stored] = OrderedDict()
        self._queue: deque[tuple[Stored, bytes]] = deque()  # each with its JSON, made once
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.enabled = cfg.store

    async def start(self) -> None:
        if self._hot is not None:
            await self._hot.start()
        if self._store is None:
            return
        try:
            await self._store.open()
        except StoreError as err:
            LOG.warning("responses: store unavailable at start (%s); records are queued", err)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._flush()), loop.create_task(self._prune())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._store is not None:
            with contextlib.suppress(StoreError, TimeoutError):
                async with asyncio.timeout(3):
                    await self._write()
            with contextlib.suppress(StoreError):
                await self._store.close()
        if self._hot is not None:
            await self._hot.stop()

    def keep(self, record: Stored) -> None:
        memory = self._memory
        memory[record.id] = record
        while len(memory) > self._cfg.max_memory:
            memory.popitem(last=False)
        if self._store is None:
            return
        encoded = _ENCODE.encode(record)
        if self._hot is not None:
            self._hot.put(record.id, encoded)
        if len(self._queue) >= MAX_QUEUE:
            self._queue.popleft()
        self._queue.append((record, encoded))
        self._wake.set()

    async def find(self, response_id: str, partition: str) -> Stored | None:
        record = self._memory.get(response_id) or await self._read(response_id)
        if record is None or record.partition != partition:
            return None
        if record.created_at < time.time() - self._cfg.retention_days * 86400:
            return None
        return record

    async def _read(self, response_id: str) -> Stored | None:
        """A record not in memory: still queued for the store, in Redis, or in the store."""
        if self._store is None:
            return None
        queued = next((r for r, _ in self._queue if r.id == response_id), None)
        if queued is not None:
            return queued
        shared = await self._hot.get(response_id) if self._hot is not None else None
        if shared is not None:
            return _DECODE.decode(shared)
        try:
            found = await self._store.get(response_id)
        except StoreError as err:
            raise _unavailable() from err
        return _DECODE.decode(found[1]) if found is not None else None

    async def forget(self, response_id: str, partition: str) -> bool:
        record = await self.find(response_id, partition)
        if record is None:
            return False
        self._memory.pop(response_id, None)
        self._queue = deque(q for q in self._queue if q[0].id != response_id)
        if self._hot is not None:
            self._hot.put(response_id, None)
        if self._store is not None:
            try:
                await self._store.delete(response_id)
            except StoreError as err:
                raise _unavailable() from err
        return True

    async def _write(self) -> None:
        assert self._store is not None
        while self._queue:
            batch = [self._queue[i] for i in range(min(256, len(self._queue)))]
            rows = [(r.id, r.partition, r.created_at, text.decode()) for r, text in batch]
            await self._store.put(rows)
            for _ in batch:
                self._queue.popleft()

    async def _flush(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._write()
            except StoreError as err:
                LOG.warning("responses: store write failed (%s); %d queued", err, len(self._queue))
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _prune(self) -> None:
        assert self._store is not None
        while True:
            before = time.time() - self._cfg.retention_days * 86400
            with contextlib.suppress(StoreError):
                await self._store.prune(before)
            await asyncio.sleep(3600)


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Stored responses are unavailable right now; retry shortly.", code="store_unavailable"
    )
