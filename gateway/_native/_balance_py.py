"""The routing kernel: per-request choice among a node's targets. This is the typed
specification of _balance_c, which must behave identically.

Every pick takes a bitmask of targets to skip (bit i set: target i is open, excluded or
already tried). Zero-weight targets are never picked. A pick returns -1 when nothing can be.

- ``pick``: smooth weighted round robin (nginx's): proportional and evenly interleaved.
- ``least_busy``: the fewest requests in flight per unit of weight.
- ``least_latency``: power of two choices on an EWMA of latency; a target that has not been
  picked for ``probe_every`` picks is picked next, so a recovering target gets probes.
"""

from collections.abc import Sequence
from math import isfinite

MAX_TARGETS = 64


def _checked(weights: Sequence[float]) -> list[float]:
    if len(weights) > MAX_TARGETS:
        raise ValueError(f"at most {MAX_TARGETS} targets, got {len(weights)}")
    out = [float(w) for w in weights]
    for w in out:
        if not (isfinite(w) and w >= 0.0):
            raise ValueError(f"weights must be finite and >= 0, got {w!r}")
    return out


class Balancer:
    __slots__ = ("_alpha", "_current", "_ewma", "_in_flight", "_probe_every", "_since", "_weights")

    def __init__(self, weights: Sequence[float], probe_every: int = 32, alpha: float = 0.3) -> None:
        self._weights = _checked(weights)
        n = len(self._weights)
        self._current = [0.0] * n
        self._in_flight = [0] * n
        self._ewma = [0.0] * n
        self._since = [0] * n
        self._probe_every = max(1, int(probe_every))
        self._alpha = float(alpha)

    def __len__(self) -> int:
        return len(self._weights)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(self._weights)

    def set_weight(self, index: int, weight: float) -> None:
        if not 0 <= index < len(self._weights):
            raise IndexError(index)
        self._weights[index] = _checked([weight])[0]
        self._current[index] = 0.0

    def in_flight(self, index: int) -> int:
        return self._in_flight[index]

    def latency(self, index: int) -> float:
        return self._ewma[index]

    def begin(self, index: int) -> None:
        self._in_flight[index] += 1

    def end(self, index: int, seconds: float, ok: bool) -> None:
        if self._in_flight[index] > 0:
            self._in_flight[index] -= 1
        current = self._ewma[index]
        # A failure counts as twice the slower of its own time and the usual one.
        observed = seconds if ok else 2.0 * max(seconds, current)
        self._ewma[index] = (
            observed if current == 0.0 else current + self._alpha * (observed - current)
        )

    def _picked(self, index: int) -> int:
        since = self._since
        for i in range(len(since)):
            since[i] += 1
        since[index] = 0
        return index

    def pick(self, unavailable: int = 0) -> int:
        weights = self._weights
        current = self._current
        total = 0.0
        best = -1
        best_value = 0.0
        for i in range(len(weights)):
            w = weights[i]
            if w <= 0.0 or (unavailable >> i) & 1:
                continue
            value = current[i] + w
            current[i] = value
            total += w
            if best < 0 or value > best_value:
                best = i
                best_value = value
        if best < 0:
            return -1
        current[best] -= total
        return self._picked(best)

    def least_busy(self, unavailable: int = 0) -> int:
        best = -1
        best_load = 0.0
        for i in range(len(self._weights)):
            w = self._weights[i]
            if w <= 0.0 or (unavailable >> i) & 1:
                continue
            load = self._in_flight[i] / w
            # Ties go to the target picked longest ago, so equal loads take turns.
            if (
                best < 0
                or load < best_load
                or (load == best_load and self._since[i] > self._since[best])
            ):
                best = i
                best_load = load
        return -1 if best < 0 else self._picked(best)

    def least_latency(self, unavailable: int, r1: float, r2: float) -> int:
        available = [
            i
            for i in range(len(self._weights))
            if self._weights[i] > 0.0 and not (unavailable >> i) & 1
        ]
        n = len(available)
        if n == 0:
            return -1
        starved = -1
        for i in available:
            if self._since[i] >= self._probe_every and (
                starved < 0 or self._since[i] > self._since[starved]
            ):
                starved = i
        if starved >= 0:
            return self._picked(starved)
        if n == 1:
            return self._picked(available[0])
        a = int(r1 * n) % n
        b = int(r2 * (n - 1)) % (n - 1)
        if b >= a:
            b += 1
        first, second = available[a], available[b]
        chosen = second if self._ewma[second] < self._ewma[first] else first
        return self._picked(chosen)
