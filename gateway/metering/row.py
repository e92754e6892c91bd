"""One ledger row per request, and the minute rollups the usage API is served from.

The stores fold each written batch into the rollups in SQL (store/sql.py), in the same
transaction: no Python loop over rows, so the writer holds the GIL for little."""

from __future__ import annotations

from typing import NamedTuple

import msgspec


class UsageRow(msgspec.Struct, array_like=True, gc=False):
    """What one request used and cost. Money in nano-dollars; `cost` is None when the model has
    no price (never a silent 0); `counted` when the gateway counted the tokens itself because
    the provider reported none (a cut stream, say)."""

    ts: float  # unix seconds, when the request arrived
    request_id: str
    endpoint: str
    model: str  # what the client asked for
    provider: str
    served_model: str | None  # what answered (the provider's dated id when it says)
    status: int
    error_type: str | None
    input_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    output_tokens: int
    reasoning_tokens: int
    counted: bool
    cost: int | None
    saved: int  # what a cache hit would have cost
    latency_ms: float
    ttft_ms: float | None
    attempts: int
    cache: str | None  # HIT | SEMANTIC_HIT | MISS | BYPASS | REFRESH, or None
    price_id: str | None = None  # which price was applied, e.g. "openai/gpt-4o"
    key_id: str | None = None
    team: str | None = None
    user: str | None = None
    feature: str | None = None
    tags: str | None = None  # a JSON array of strings


class RollupKey(NamedTuple):
    minute: int  # unix seconds, a multiple of 60
    endpoint: str
    key_id: str
    team: str
    user: str
    feature: str
    model: str
    provider: str
    status: int


ROLLUP_DIMENSIONS = RollupKey._fields
# Sums kept per rollup key, in this order.
MEASURES = (
    "requests", "errors", "cache_hits", "input_tokens", "cached_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "cost", "saved", "unpriced_requests", "unpriced_tokens",
    "latency_ms",
)  # fmt: skip


def rollup_key(row: UsageRow) -> RollupKey:
    """The rollup row a ledger row is summed into (the stores fold batches in SQL)."""
    return RollupKey(
        int(row.ts) // 60 * 60, row.endpoint, row.key_id or "", row.team or "",
        row.user or "", row.feature or "", row.model, row.provider, row.status,
    )  # fmt: skip
