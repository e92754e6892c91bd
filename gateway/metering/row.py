"""One ledger row per request, and the minute rollups the usage API is served from.

The stores add each written batch into the rollups in the same transaction: SQLite from sums
made in Python before the write (metering/fold.py, ~0.6 µs a row, where SQL that read the
rows back cost ~6), PostgreSQL in the database (store/sql.py), on the database's host."""

from __future__ import annotations

import math
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
    fault: str | None = None  # an error's: caller | policy | provider | gateway
    fallback: str | None = None  # the child taken at each routing level, e.g. "1.0"
    guardrails: str | None = None  # the guardrails' verdicts, as x-gateway-guardrails says
    latency_bucket: int = 0  # latency_ms's histogram bucket (latency_bucket() below)
    ttft_bucket: int | None = None  # ttft_ms's, when there was a first token
    request_body: str | None = None  # kept only when logging asks (PII masked, capped)
    response_body: str | None = None
    route: str | None = None  # the routing decision: the child taken (x-gateway-route)
    route_reason: str | None = None  # and why ("complexity=0.22<0.35", "cheapest: ...")
    cache_write_1h_tokens: int = 0  # of cache_write_tokens, those written for an hour


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
    route: str  # the routing decision's target (x-gateway-route); "" before schema 3


ROLLUP_DIMENSIONS = RollupKey._fields
# Sums kept per rollup key, in this order.
FAULTS = ("caller", "policy", "provider", "gateway")
# Latency histograms: bucket 0 is under 10 ms, bucket k covers [10·2^((k-1)/2), 10·2^(k/2)) ms,
# the last one everything from about 29 s up. Summed per rollup row, they give percentiles
# over any range from the rollups alone (within a bucket's width, 41%; interpolated).
BUCKETS = 25
EDGES_MS = tuple(10 * 2 ** (k / 2) for k in range(BUCKETS - 1))
LATENCY_MEASURES = tuple(f"lat_{k}" for k in range(BUCKETS))
TTFT_MEASURES = tuple(f"ttft_{k}" for k in range(BUCKETS))
MEASURES = (
    "requests", "errors", "cache_hits", "input_tokens", "cached_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "cost", "saved", "unpriced_requests", "unpriced_tokens",
    "latency_ms",
    *(f"errors_{fault}" for fault in FAULTS), "ttft_count", "ttft_ms",
    *LATENCY_MEASURES, *TTFT_MEASURES,
)  # fmt: skip
_LOG2 = math.log2


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a latency in milliseconds."""
    if ms < 10.0:
        return 0
    return min(BUCKETS - 1, int(2 * _LOG2(ms / 10.0)) + 1)


def percentile(counts: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of a histogram of BUCKETS counts, in milliseconds: interpolated
    geometrically inside its bucket (linearly in the first). None for an empty histogram."""
    total = sum(counts)
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for k, count in enumerate(counts):
        if count and seen + count >= rank:
            share = (rank - seen) / count
            if k == 0:
                return EDGES_MS[0] * share
            low = EDGES_MS[k - 1]
            high = EDGES_MS[k] if k < len(EDGES_MS) else low * 2**0.5
            return float(low * (high / low) ** share)
        seen += count
    return EDGES_MS[-1]


def rollup_key(row: UsageRow) -> RollupKey:
    """The rollup row a ledger row is summed into."""
    return RollupKey(
        int(row.ts) // 60 * 60, row.endpoint, row.key_id or "", row.team or "",
        row.user or "", row.feature or "", row.model, row.provider, row.status, row.route or "",
    )  # fmt: skip
