"""Circuit breakers: one per upstream target (provider and model), shared by every route.

closed -> open when the failure ratio over the last `window` outcomes reaches `failure_ratio`
(once `min_requests` are in), or at once on a 429 that says how long to wait. The cooldown is
that Retry-After, else `cooldown_ms` doubled on each trip in a row. After it, one probe goes
through (half-open): success closes the breaker, failure opens it again for longer.
"""

from __future__ import annotations

import enum
import time
from collections import deque
from collections.abc import Callable

from gateway.config.routing import BreakerCfg


class State(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


# Called on every transition with (key, state, wall-clock time the cooldown ends, trips).
Listener = Callable[[str, State, float, int], None]


class Breaker:
    __slots__ = (
        "_cfg",
        "_failures",
        "_listener",
        "_outcomes",
        "_probing",
        "_until",
        "key",
        "state",
        "trips",
    )

    def __init__(self, key: str, cfg: BreakerCfg, listener: Listener | None = None) -> None:
        self.key = key
        self._cfg = cfg
        self._listener = listener
        self._outcomes: deque[bool] = deque(maxlen=cfg.window)
        self._failures = 0
        self.state = State.CLOSED
        self.trips = 0
        self._until = 0.0  # monotonic end of the cooldown
        self._probing = False

    def available(self) -> bool:
        """Whether a request could be sent now (without claiming the half-open probe)."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN:
            return time.monotonic() >= self._until
        return not self._probing

    def acquire(self) -> bool:
        """Claims the right to send; in half-open, only one request at a time gets it."""
        if self.state is State.CLOSED:
            return True
        if self.state is State.OPEN:
            if time.monotonic() < self._until:
                return False
            self._set(State.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def release(self) -> None:
        """The claimed request ended without a verdict (the client left): free the probe."""
        self._probing = False

    def retry_after(self) -> float:
        """Seconds until this target may be tried again (0 if it may now)."""
        return max(0.0, self._until - time.monotonic()) if self.state is State.OPEN else 0.0

    def record(self, ok: bool, retry_after: float | None = None) -> None:
        if self.state is not State.CLOSED:
            self._probing = False
            if ok:
                self._close()
            else:
                self._trip(retry_after)
            return
        if not ok and retry_after is not None:
            self._trip(retry_after)  # the provider said how long: believe it
            return
        outcomes = self._outcomes
        if len(outcomes) == outcomes.maxlen and not outcomes[0]:
            self._failures -= 1
        outcomes.append(ok)
        if not ok:
            self._failures += 1
            cfg = self._cfg
            if len(outcomes) >= cfg.min_requests and self._failures >= cfg.failure_ratio * len(
                outcomes
            ):
                self._trip(None)

    def _close(self) -> None:
        self._outcomes.clear()
        self._failures = 0
        self.trips = 0
        self._set(State.CLOSED)

    def _trip(self, retry_after: float | None) -> None:
        self.trips += 1
        cfg = self._cfg
        if retry_after is None:
            growth = 2 ** min(self.trips - 1, 30)
            retry_after = min(cfg.cooldown_ms * growth, cfg.max_cooldown_ms) / 1000
        self._until = time.monotonic() + retry_after
        self._outcomes.clear()
        self._failures = 0
        self._set(State.OPEN)

    def _set(self, state: State) -> None:
        self.state = state
        if self._listener is not None:
            until = time.time() + max(0.0, self._until - time.monotonic())
            self._listener(self.key, state, until, self.trips)

    def apply_remote(self, state: State, until: float, trips: int) -> None:
        """Another gateway instance saw this transition (shared.py); take it on, quietly."""
        self.trips = trips
        if state is State.OPEN:
            self._until = time.monotonic() + max(0.0, until - time.time())
            self._outcomes.clear()
            self._failures = 0
        elif state is State.CLOSED:
            self._outcomes.clear()
            self._failures = 0
        self.state = state
        self._probing = False


class HealthRegistry:
    """Every target's breaker by key; the listener, when set, shares transitions (Redis)."""

    def __init__(self) -> None:
        self._breakers: dict[str, Breaker] = {}
        self.listener: Listener | None = None

    def breaker(self, key: str, cfg: BreakerCfg) -> Breaker:
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self._breakers[key] = Breaker(key, cfg, self._notify)
        return breaker

    def get(self, key: str) -> Breaker | None:
        return self._breakers.get(key)

    def all(self) -> list[Breaker]:
        return list(self._breakers.values())

    def _notify(self, key: str, state: State, until: float, trips: int) -> None:
        if self.listener is not None:
            self.listener(key, state, until, trips)
