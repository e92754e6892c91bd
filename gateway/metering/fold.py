"""A batch of ledger rows summed into rollup rows, on the writer's thread, before the store
sees it: one pass in Python (~0.6 µs a row), where SQL that read the written rows back and
grouped them cost the store ~6 µs a row (benchmarks/RESULTS.md, "the ledger's layout").

`fold(rows)` gives the minute rollup's sums by RollupKey, and the tag rollup's by
(minute, tag) (`Fold` adds a batch up piece by piece); `coarser(minutes, width)` regroups
minute sums into hours or days. What each measure sums is row.MEASURES' contract, the same
over any span:

requests, errors (a status outside 200-399), cache_hits (HIT or SEMANTIC_HIT), the token
counts, cost (a missing price counts 0 here and in unpriced_requests / unpriced_tokens when
the row has tokens), saved, latency_ms, errors by fault, ttft_count and ttft_ms (rows with a
first token), and one count per latency and time-to-first-token histogram bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Any

import msgspec

from gateway.metering.row import FAULTS, MEASURES, RollupKey, UsageRow

Sums = list[int | float]

_AT = {m: i for i, m in enumerate(MEASURES)}
_REQUESTS, _ERRORS, _HITS = _AT["requests"], _AT["errors"], _AT["cache_hits"]
_INPUT, _CACHED, _WRITE = _AT["input_tokens"], _AT["cached_tokens"], _AT["cache_write_tokens"]
_OUTPUT, _REASONING = _AT["output_tokens"], _AT["reasoning_tokens"]
_COST, _SAVED = _AT["cost"], _AT["saved"]
_UNPRICED, _UNPRICED_TOKENS = _AT["unpriced_requests"], _AT["unpriced_tokens"]
_LATENCY, _TTFT_COUNT, _TTFT = _AT["latency_ms"], _AT["ttft_count"], _AT["ttft_ms"]
_LAT0, _TTFT0 = _AT["lat_0"], _AT["ttft_0"]
_FAULT = {fault: _AT[f"errors_{fault}"] for fault in FAULTS}
_FLOATS = frozenset((_LATENCY, _TTFT))
_ZERO: Sums = [0.0 if i in _FLOATS else 0 for i in range(len(MEASURES))]
_HIT = frozenset(("HIT", "SEMANTIC_HIT"))
_DIMENSIONS = attrgetter(
    "endpoint", "key_id", "team", "user", "feature", "model", "provider", "status", "route"
)
_TAGS = msgspec.json.Decoder(list[str]).decode


def _sums(row: UsageRow, into: Sums) -> None:  # noqa: C901 - one flat pass a row, no calls
    into[_REQUESTS] += 1
    status = row.status
    if not 200 <= status < 400:
        into[_ERRORS] += 1
    if row.cache in _HIT:
        into[_HITS] += 1
    tokens = row.input_tokens + row.output_tokens
    into[_INPUT] += row.input_tokens
    into[_OUTPUT] += row.output_tokens
    if row.cached_tokens:
        into[_CACHED] += row.cached_tokens
    if row.cache_write_tokens:
        into[_WRITE] += row.cache_write_tokens
    if row.reasoning_tokens:
        into[_REASONING] += row.reasoning_tokens
    cost = row.cost
    if cost is not None:
        into[_COST] += cost
    elif tokens > 0:
        into[_UNPRICED] += 1
        into[_UNPRICED_TOKENS] += tokens
    if row.saved:
        into[_SAVED] += row.saved
    into[_LATENCY] += row.latency_ms
    into[_LAT0 + row.latency_bucket] += 1
    if row.fault is not None:
        at = _FAULT.get(row.fault)
        if at is not None:
            into[at] += 1
    if row.ttft_ms is not None:
        into[_TTFT_COUNT] += 1
        into[_TTFT] += row.ttft_ms
        if row.ttft_bucket is not None:
            into[_TTFT0 + row.ttft_bucket] += 1


class Fold:
    """Sums added up a piece at a time (`add`), so each piece of a batch is folded while it
    is in the cache from being encoded; `minutes()` and `tags` once the batch is done."""

    __slots__ = ("_minutes", "tags")

    def __init__(self) -> None:
        self._minutes: dict[tuple[int, tuple[Any, ...]], Sums] = {}
        self.tags: dict[tuple[int, str], Sums] = {}

    def add(self, rows: Iterable[UsageRow]) -> None:
        minutes, tags = self._minutes, self.tags
        for row in rows:
            minute = int(row.ts) // 60 * 60
            key = (minute, _DIMENSIONS(row))
            into = minutes.get(key)
            if into is None:
                into = minutes[key] = _ZERO.copy()
            _sums(row, into)
            if row.tags is not None:
                try:
                    values = _TAGS(row.tags)
                except msgspec.DecodeError:  # written by the gateway: never, but never fatal
                    continue
                for tag in values:
                    tagged = tags.get((minute, tag))
                    if tagged is None:
                        tagged = tags[(minute, tag)] = _ZERO.copy()
                    _sums(row, tagged)

    def minutes(self) -> dict[RollupKey, Sums]:
        """The minute rollup's sums (a missing dimension and "" are one value)."""
        out: dict[RollupKey, Sums] = {}
        for (minute, dims), sums in self._minutes.items():
            endpoint, key_id, team, user, feature, model, provider, status, route = dims
            rollup = RollupKey(
                minute, endpoint, key_id or "", team or "", user or "", feature or "", model,
                provider, status, route or "",
            )  # fmt: skip
            found = out.get(rollup)
            out[rollup] = sums if found is None else add(found, sums)
        return out


def fold(
    rows: Iterable[UsageRow],
) -> tuple[dict[RollupKey, Sums], dict[tuple[int, str], Sums]]:
    """The minute rollup's sums and the tag rollup's, for these rows."""
    folded = Fold()
    folded.add(rows)
    return folded.minutes(), folded.tags


def add(into: Sums, sums: Sums) -> Sums:
    for i, value in enumerate(sums):
        if value:
            into[i] += value
    return into


def coarser(minutes: dict[RollupKey, Sums], width: int) -> dict[RollupKey, Sums]:
    """Minute sums regrouped by periods of `width` seconds (an hour, a day)."""
    out: dict[RollupKey, Sums] = {}
    for key, sums in minutes.items():
        period = key._replace(minute=key.minute // width * width)
        found = out.get(period)
        out[period] = sums.copy() if found is None else add(found, sums)
    return out


__all__ = ["Fold", "Sums", "add", "coarser", "fold"]
