"""Bounded label sets: a client-chosen string becomes a metric label only while there is room.

Every label value is a time series kept for the life of the process, so names a client picks
(`provider/anything` that some upstream accepts) must not each become one. The first `limit`
accepted names are kept as labels; later ones are counted together as `other`.
"""

from __future__ import annotations

OTHER = "other"
UNKNOWN = "unknown"


class BoundedLabels:
    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def label(self, name: str, *, admit: bool) -> str:
        """`name` if it already is a label; else it becomes one if `admit` (the provider took
        it) and there is room; else `other` for an admitted name, `unknown` for a refused one."""
        if name in self._seen:
            return name
        if not admit:
            return UNKNOWN
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(name)
        return name


MODEL_LABELS = BoundedLabels(100)
