"""Smooth weighted round robin (nginx's algorithm): the typed specification of _wrr_c."""

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


class SmoothWeighted:
    """Picks target indexes in proportion to their weights, evenly interleaved.

    ``pick(unavailable)`` takes a bitmask: bit i set means target i must be skipped.
    Zero-weight targets are never picked. Returns -1 when nothing can be picked.
    """

    __slots__ = ("_current", "_weights")

    def __init__(self, weights: Sequence[float]) -> None:
        self._weights = _checked(weights)
        self._current = [0.0] * len(self._weights)

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
        if best >= 0:
            current[best] -= total
        return best
