"""A connection's deadline on one lazily re-armed timer, for both HTTP hops.

A timer handle created and cancelled on every request costs more than the request's own
bookkeeping, so a new deadline only moves `when`. The timer is replaced only when the deadline
comes earlier than it would fire; otherwise, firing early, it sets itself again for the rest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_SLACK = 0.002  # an event loop's clock may run in whole milliseconds (libuv's does)


class Deadline:
    __slots__ = ("_callback", "_loop", "_timer", "_timer_at", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback  # called once `when` has passed
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self.when: float | None = None

    def arm(self, when: float) -> None:
        """Calls back at loop time `when`, unless moved or cleared before."""
        self.when = when
        timer = self._timer
        if timer is not None:
            if self._timer_at <= when:
                return
            timer.cancel()
        self._set(when)

    def clear(self) -> None:
        """No deadline for now; the pending timer, if any, lapses without calling back."""
        self.when = None

    def stop(self) -> None:
        """No deadline, and no pending timer (the connection is gone)."""
        self.when = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set(self, at: float) -> None:
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        when = self.when
        if when is None:
            return
        if self._loop.time() < when - _SLACK:
            self._set(when)
            return
        self.when = None
        self._callback()
