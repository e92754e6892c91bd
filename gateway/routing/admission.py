"""Per-target concurrency limits: a burst waits briefly in a bounded queue instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections import deque

from gateway.config.routing import AdmissionCfg
from gateway.errors import Overloaded


class Admission:
    __slots__ = ("_active", "_cfg", "_waiters")

    def __init__(self, cfg: AdmissionCfg) -> None:
        self._cfg = cfg
        self._active = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        return self._active

    async def acquire(self) -> float:
        """Takes a slot, waiting up to max_wait_ms in the queue; returns the seconds waited."""
        cfg = self._cfg
        if self._active < cfg.max_concurrent and not self._waiters:
            self._active += 1
            return 0.0
        if len(self._waiters) >= cfg.queue:
            raise Overloaded("This target is at its concurrency limit and its queue is full.")
        started = time.perf_counter()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), cfg.max_wait_ms / 1000)
        except (TimeoutError, asyncio.CancelledError) as err:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot arrived as we gave up: pass it on
            else:
                waiter.cancel()
                self._discard(waiter)
            if isinstance(err, TimeoutError):
                raise Overloaded(
                    "This target stayed at its concurrency limit for longer than the queue waits."
                ) from None
            raise
        return time.perf_counter() - started

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the next waiter as it is
                return
        self._active -= 1

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass
