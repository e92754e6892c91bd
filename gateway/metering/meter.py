"""The usage ledger's writer: rows queue in memory and are written in batches, off the
request path.

`record` is all a request pays: a deque append (and two dict additions for the metrics). A
task flushes every `flush_interval` (and on stop): the store appends the batch and adds it
into the rollups in one transaction (summed in Python for SQLite, metering/fold.py; in the
database for PostgreSQL). A batch the store
refuses is kept and retried, oldest first, never dropped silently; past `max_queue` rows the
oldest are dropped and counted (gateway_usage_rows_dropped_total). A store that is down at
start leaves metering degraded (gateway_usage_store_up 0, /health/ready says so) while rows
queue, and the gateway serves as usual. SIGTERM flushes everything. Each row is also
appended to a local spool file (metering/spool.py) when it is recorded, so a kill -9, or a
stop while the store is down, loses nothing: the next process on the same data directory
writes those rows again, and the store drops any it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import NamedTuple

from gateway.metering.row import UsageRow
from gateway.metering.spool import Spool
from gateway.observability import metrics
from gateway.store.base import RowQuery, StoreError, UsageStore

LOG = logging.getLogger("gateway.metering")
_RETRY_MAX = 30.0
_PRUNE_EVERY = 3600.0
_RECENT = 20_000
_ADOPT_EVERY = 10.0  # seconds between looks for a dead process's spool
_BATCH = 5000


class Reference(NamedTuple):
    """What a request's later references (its feedback) need of its ledger row."""

    key_id: str | None
    model: str
    route: str | None
    cost: int | None


class Meter:
    def __init__(
        self,
        store: UsageStore,
        *,
        flush_interval: float = 0.5,
        max_queue: int = 100_000,
        retention_days: float = 7,
        body_retention_days: float = 3,
        spool: Spool | None = None,
    ) -> None:
        self.store = store
        self._spool = spool
        self._replay: list[UsageRow] = []  # a dead process's spooled rows, written first
        self._next_adopt = 0.0
        self._interval = flush_interval
        self._max_queue = max_queue
        self._retention = retention_days * 86400
        self._body_retention = body_retention_days * 86400
        self._queue: deque[UsageRow] = deque()
        # The latest rows by request id, for what refers back to a request (POST /v1/feedback)
        # without a scan of the store: two generations, the older dropped whole when the
        # newer fills, so a request pays one dict insert.
        # Only what refers back needs, never the row (it may carry logged bodies).
        self._recent: dict[str, tuple[str | None, str, str | None, int | None]] = {}
        self._older: dict[str, tuple[str | None, str, str | None, int | None]] = {}
        self._pending: list[UsageRow] = []  # a batch the store refused, written first next time
        self._costs: dict[tuple[str, str], int] = {}  # (model label, provider) -> nanos
        self._unpriced: dict[tuple[str, str], int] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._opened = False
        self._failures = 0
        self._next_try = 0.0
        self._next_prune = 0.0
        self.last_error: str | None = None

    @property
    def degraded(self) -> bool:
        return not self._opened or self._failures > 0

    @property
    def queued(self) -> int:
        return len(self._queue) + len(self._pending) + len(self._replay)

    def record(self, row: UsageRow, label: str) -> None:
        """Called once per request, on the event loop: never waits, never raises."""
        queue = self._queue
        queue.append(row)
        if self._spool is not None:
            self._spool.append(row)
        recent = self._recent
        recent[row.request_id] = (row.key_id, row.model, row.route, row.cost)  # a Reference
        if len(recent) >= _RECENT:
            self._older, self._recent = recent, {}
        if len(queue) + len(self._pending) > self._max_queue:  # the oldest row goes
            if self._pending:
                self._pending.pop(0)
            else:
                queue.popleft()
            metrics.USAGE_DROPPED.inc()
        if row.cost:
            key = (label, row.provider)
            self._costs[key] = self._costs.get(key, 0) + row.cost
        elif row.cost is None and row.input_tokens + row.output_tokens > 0:
            key = (row.provider, label)
            self._unpriced[key] = self._unpriced.get(key, 0) + 1

    async def find(self, request_id: str) -> Reference | None:
        """Who made a request and what it was: a recent one from memory, else from the store
        (within the raw rows' retention; raises StoreError when the store cannot say)."""
        known = self._recent.get(request_id) or self._older.get(request_id)
        if known is not None:
            return Reference(*known)
        now = time.time()
        query = RowQuery(now - self._retention, now + 60, {"request_id": [request_id]}, 1)
        found = await self.store.rows(query)
        if not found:
            return None
        row = found[0][1]
        return Reference(row.key_id, row.model, row.route, row.cost)

    async def start(self) -> None:
        if self._spool is not None:
            self._spool.open()
            self._adopt()
        await self._open()
        self._task = asyncio.create_task(self._run(), name="usage-meter")

    async def _open(self) -> bool:
        if self._opened:
            return True
        try:
            await self.store.open()
        except (StoreError, OSError) as err:
            self._failed(err)
            return False
        self._opened = True
        metrics.USAGE_STORE_UP.set(1)
        return True

    def _failed(self, err: BaseException) -> None:
        self._failures += 1
        self.last_error = str(err)
        metrics.USAGE_STORE_UP.set(0)
        delay = min(_RETRY_MAX, 0.5 * 2 ** min(self._failures, 8))
        self._next_try = time.monotonic() + delay
        if self._failures == 1:
            LOG.warning(
                "usage store %s unavailable (%s): rows are queued and retried",
                self.store.description, err,
            )  # fmt: skip

    def _adopt(self) -> None:
        self._next_adopt = time.monotonic() + _ADOPT_EVERY
        if self._spool is not None and self._spool.active:
            self._replay.extend(self._spool.adopt())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if time.monotonic() >= self._next_adopt:
                self._adopt()
            try:
                await self.flush()
                await self._prune()
            except Exception:  # pragma: no cover - the writer must outlive any one failure
                LOG.exception("usage writer failed")

    async def flush(self, *, force: bool = False) -> bool:
        """Writes what is queued; True when nothing is left. Retries wait out a backoff unless
        `force` (a stop, or a usage query that wants fresh numbers).

        A cancelled caller (a stop, a usage query whose client left) does not cancel the
        flush: the store's thread would commit the batch regardless, and the batch, still
        pending here, would be written a second time."""
        return await asyncio.shield(self._flush(force))

    async def _flush(self, force: bool) -> bool:
        """Writes a dead process's spooled rows, then the batch left from a failure, then the
        rows queued when this flush began (rows recorded meanwhile wait for the next one, in
        the spool's next file), and deletes the spool files those rows were in."""
        self._publish_metrics()
        async with self._lock:
            if not force and time.monotonic() < self._next_try:
                return False
            if not await self._open():
                return False
            spool = self._spool
            sealed = spool.seal() if spool is not None else -1
            try:
                while self._replay:
                    await self.store.write(self._replay[:_BATCH], replayed=True)
                    del self._replay[:_BATCH]
                if spool is not None:
                    spool.adopted_written()
                todo = len(self._queue)
                while self._pending or todo > 0:
                    if not self._pending:
                        self._pending = self._take(min(_BATCH, todo))
                        todo -= len(self._pending)
                        if not self._pending:
                            break
                    await self.store.write(self._pending)
                    self._pending = []
            except (StoreError, OSError) as err:
                self._failed(err)
                return False
            if spool is not None:
                spool.committed(sealed)
            if self._failures:
                LOG.warning("usage store %s recovered", self.store.description)
                self._failures = 0
                self.last_error = None
                metrics.USAGE_STORE_UP.set(1)
            metrics.USAGE_QUEUED.set(self.queued)
            return not self._queue

    def _take(self, size: int = _BATCH) -> list[UsageRow]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(size, len(queue)))]

    def _publish_metrics(self) -> None:
        costs, self._costs = self._costs, {}
        for (model, provider), nanos in costs.items():
            metrics.labelled(metrics.COST, model, provider).inc(nanos / 1e9)
        unpriced, self._unpriced = self._unpriced, {}
        for (provider, model), count in unpriced.items():
            metrics.labelled(metrics.UNPRICED, provider, model).inc(count)
        metrics.USAGE_QUEUED.set(self.queued)

    async def _prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune or not self._opened:
            return
        self._next_prune = now + _PRUNE_EVERY
        try:
            await self.store.prune(time.time() - self._retention)
            await self.store.erase_bodies(time.time() - self._body_retention)
        except (StoreError, OSError) as err:
            LOG.warning("usage store %s: retention failed: %s", self.store.description, err)

    async def stop(self, timeout: float = 10.0) -> None:
        """Flushes everything (retrying within `timeout`), then closes the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        deadline = time.monotonic() + timeout
        while not await self.flush(force=True) and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if self.queued:
            spooled = self._spool is not None and self._spool.active
            LOG.error(
                "usage store %s: %d rows not written at shutdown"
                + (" (kept in the spool for the next start)" if spooled else ""),
                self.store.description,
                self.queued,
            )
        if self._spool is not None:
            self._spool.close(everything_written=not self.queued)
        if self._opened:
            await self.store.close()
