"""The cache's background life: Redis connections, the semantic index's sync and sweeps, and
the optional snapshot file that keeps a Redis-less cache across restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import msgspec

from gateway.cache.semantic import Record, SemanticIndex, SemanticSync
from gateway.cache.store import CacheStore, Entry

LOG = logging.getLogger("gateway.cache")
SWEEP_SECONDS = 30.0


class Snapshot(msgspec.Struct, array_like=True):
    entries: list[tuple[str, Entry]]
    semantic: list[Record]


_ENCODE = msgspec.msgpack.Encoder()
_DECODE = msgspec.msgpack.Decoder(Snapshot)


class CacheRuntime:
    def __init__(
        self,
        store: CacheStore,
        semantic: SemanticIndex,
        sync: SemanticSync | None,
        snapshot_path: str | None,
    ) -> None:
        self._store = store
        self._semantic = semantic
        self._sync = sync
        self._snapshot = Path(snapshot_path) if snapshot_path else None
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._snapshot is not None and self._snapshot.exists():
            await asyncio.to_thread(self._load)
        if self._store.redis is not None:
            await self._store.redis.start()
        if self._sync is not None:
            await self._sync.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="cache-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._sync is not None:
            await self._sync.stop()
        if self._store.redis is not None:
            await self._store.redis.stop()
        if self._snapshot is not None:
            await asyncio.to_thread(self._save)
        await asyncio.to_thread(self._semantic.close)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            self._store.memory.sweep()
            await asyncio.wrap_future(self._semantic.sweep())

    def _save(self) -> None:
        assert self._snapshot is not None
        snapshot = Snapshot(self._store.memory.items(), self._semantic.records())
        partial = self._snapshot.with_suffix(self._snapshot.suffix + ".partial")
        partial.write_bytes(_ENCODE.encode(snapshot))
        os.replace(partial, self._snapshot)  # a crash mid-write leaves the old snapshot whole
        LOG.info("cache snapshot: %d entries written to %s", len(snapshot.entries), self._snapshot)

    def _load(self) -> None:
        assert self._snapshot is not None
        try:
            snapshot = _DECODE.decode(self._snapshot.read_bytes())
        except (OSError, msgspec.MsgspecError) as err:
            LOG.warning("cache snapshot %s not loaded: %s", self._snapshot, err)
            return
        for key, entry in snapshot.entries:
            self._store.memory.put(key, entry)
        self._semantic.add_many([(r.query(), r.key, r.expires) for r in snapshot.semantic])
        LOG.info("cache snapshot: %d entries loaded from %s", len(snapshot.entries), self._snapshot)
