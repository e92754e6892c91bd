"""Prometheus metrics, defined once; the pipeline records through the functions below.

With several workers, PROMETHEUS_MULTIPROC_DIR is set before this module is first imported and
/metrics aggregates every worker's samples.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

from gateway.api.usage import Usage
from gateway.observability.genai import GenAIMetrics
from gateway.observability.ledger import (
    FIRST_TOKEN_SECONDS,
    IN_FLIGHT,
    REQUEST_SECONDS,
    REQUESTS,
    STATUS,
    TOKENS,
    UPSTREAM_SECONDS,
    Ledger,
    RequestLedger,
    histograms,
)

_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300,
)  # fmt: skip

STREAM_ERRORS = Counter(
    "gateway_stream_errors", "Streams that ended with an error after their first byte",
    ["model", "provider"],
)  # fmt: skip
RETRIES = Counter(
    "gateway_retries", "Upstream attempts repeated on the same target", ["provider"],
)  # fmt: skip
FALLBACKS = Counter(
    "gateway_fallbacks", "Requests moved on from a failed target to the next", ["model"],
)  # fmt: skip
SHADOW_SKIPPED = Counter(
    "gateway_shadow_skipped",
    "Shadow samples not compared: the model's shadow calls were at their limit, or the"
    " comparison could not be kept", ["model"],
)  # fmt: skip
BREAKER_STATE = Gauge(
    "gateway_breaker_state", "Circuit breaker per target: 0 closed, 1 half-open, 2 open",
    ["target"], multiprocess_mode="max",
)  # fmt: skip
BREAKER_TRIPS = Counter(
    "gateway_breaker_trips", "Times a target's breaker opened", ["target"],
)  # fmt: skip
QUEUE_WAIT_SECONDS = Histogram(
    "gateway_queue_wait_seconds", "Time requests waited for a target's concurrency slot",
    ["provider"], buckets=_LATENCY_BUCKETS,
)  # fmt: skip
ERRORS = Counter(
    "gateway_errors", "Failed requests by whose fault: caller, policy, provider or gateway",
    ["fault"],
)  # fmt: skip
CACHE_LOOKUPS = Counter(
    "gateway_cache_lookups", "Cache outcomes: hit, semantic_hit, miss, bypass, refresh",
    ["model", "result"],
)  # fmt: skip
CACHE_LOOKUP_SECONDS = Histogram(
    "gateway_cache_lookup_seconds", "Time to look a request up in the cache",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)  # fmt: skip
CACHE_ENTRIES = Gauge(
    "gateway_cache_entries", "Entries in this instance's memory tier", multiprocess_mode="sum",
)  # fmt: skip
CACHE_INDEX_SIZE = Gauge(
    "gateway_cache_index_entries", "Entries in this instance's semantic (HNSW) index",
    multiprocess_mode="sum",
)  # fmt: skip
CACHE_SHADOW = Counter(
    "gateway_cache_shadow",
    "Shadow-mode semantic lookups: would_hit_same, would_hit_different, miss",
    ["model", "outcome"],
)  # fmt: skip
CACHE_SHADOW_SIMILARITY = Histogram(
    "gateway_cache_shadow_similarity", "Similarity of the nearest entry in shadow mode",
    buckets=(0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99, 1.0),
)  # fmt: skip
CACHE_TOKENS_SAVED = Counter(
    "gateway_cache_tokens_saved", "Tokens not sent to a provider thanks to cache hits",
    ["model", "type"],
)  # fmt: skip
CACHE_COST_SAVED = Counter(
    "gateway_cache_cost_saved_usd",
    "US dollars not spent thanks to cache hits, at catalog or configured prices",
    ["model"],
)  # fmt: skip
CACHE_DEGRADED = Counter(
    "gateway_cache_degraded",
    "Cache work skipped or failed: Redis down or slow, writes dropped, index busy, embedder failed",
    ["reason"],
)  # fmt: skip


# Labelled children cached per label set: prometheus' labels() lookup is the costly part of
# recording. Label sets are bounded where they are made (see Call.model_label).
_CHILDREN: dict[tuple[object, ...], Any] = {}


COST = Counter(
    "gateway_cost_usd", "US dollars spent at providers, at catalog or configured prices",
    ["model", "provider"],
)  # fmt: skip
UNPRICED = Counter(
    "gateway_unpriced_requests",
    "Requests with tokens but no price for their model (cost recorded as null, never 0)",
    ["provider", "model"],
)  # fmt: skip
ALERTS = Counter(
    "gateway_alerts",
    "Alerts, by kind and outcome (sent, failed, deduplicated, dropped)",
    ["kind", "result"],
)
TRACES = Counter("gateway_traces", "Traces, by outcome (exported, failed, dropped)", ["result"])
CONFIG_RELOADS = Counter(
    "gateway_config_reloads", "Config reloads, by result (applied, unchanged, failed)", ["result"]
)
CONFIG_GENERATION = Gauge(
    "gateway_config_generation",
    "How many reloads the config in service is past start-up",
    multiprocess_mode="max",
)
USAGE_DROPPED = Counter(
    "gateway_usage_rows_dropped", "Ledger rows dropped because the queue was full",
)  # fmt: skip
USAGE_QUEUED = Gauge(
    "gateway_usage_rows_queued", "Ledger rows waiting to be written", multiprocess_mode="sum",
)  # fmt: skip
USAGE_STORE_UP = Gauge(
    "gateway_usage_store_up", "1 when the usage store takes writes, 0 while it does not",
    multiprocess_mode="min",
)  # fmt: skip


RATELIMIT_DECISIONS = Counter(
    "gateway_ratelimit_decisions",
    "Limiter decisions by rule (scope:match, from the config) and outcome",
    ["rule", "outcome"],
)  # fmt: skip
LIMITER_REDIS_SECONDS = Histogram(
    "gateway_limiter_redis_seconds", "One pipeline of reserves to the limiter's Redis",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)  # fmt: skip
LIMITER_RESERVES = Counter("gateway_limiter_reserves", "Reserves sent to the limiter's Redis")
LIMITER_ROUND_TRIPS = Counter(
    "gateway_limiter_round_trips", "Pipelines sent to the limiter's Redis (reserves and settles)"
)
LIMITER_SETTLES = Counter("gateway_limiter_settles", "Settles written to the limiter's Redis")
LIMITER_SETTLES_DROPPED = Counter(
    "gateway_limiter_settles_dropped", "Settles dropped while Redis was away past the queue bound"
)
LIMITER_DEGRADED = Gauge(
    "gateway_limiter_degraded",
    "1 while the limiter's Redis is unreachable and limits are enforced per instance",
    multiprocess_mode="max",
)  # fmt: skip
LIMITER_LEASES = Gauge(
    "gateway_limiter_leases", "Reservations held by requests in flight", multiprocess_mode="livesum"
)

GUARDRAIL_DECISIONS = Counter(
    "gateway_guardrail_decisions",
    "Guardrail findings by guardrail, kind, direction and action (mask, block, flag, shadow)",
    ["guardrail", "kind", "direction", "action"],
)  # fmt: skip
# Plain tallies in one process, shared histograms with several workers (ledger.py).
_GUARDRAIL_TIMING = histograms(
    "gateway_guardrail_seconds",
    "Time the guardrails took on one request (input and answer)",
    (),
    (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.025),
)


def observe_guardrail(guardrail: str, kind: str, direction: str, action: str) -> None:
    labelled(GUARDRAIL_DECISIONS, guardrail, kind, direction, action).inc()


def observe_guardrail_seconds(seconds: float) -> None:
    _GUARDRAIL_TIMING.observe((), seconds)


def observe_limiter_redis(seconds: float, reserves: int) -> None:
    LIMITER_REDIS_SECONDS.observe(seconds)
    LIMITER_RESERVES.inc(reserves)
    LIMITER_ROUND_TRIPS.inc()


def labelled(metric: Any, *labels: str) -> Any:
    key = (metric, *labels)
    child = _CHILDREN.get(key)
    if child is None:
        child = _CHILDREN[key] = metric.labels(*labels)
    return child


class SharedLedger:
    """Several workers: records through prometheus_client's objects and its shared files."""

    def __init__(self, buckets: Sequence[float]) -> None:
        by_status = ["model", "provider", "status"]
        self._requests = Counter(*REQUESTS, by_status)
        self._request_seconds = Histogram(*REQUEST_SECONDS, by_status, buckets=buckets)
        self._upstream_seconds = Histogram(*UPSTREAM_SECONDS, ["provider"], buckets=buckets)
        self._first_token_seconds = Histogram(
            *FIRST_TOKEN_SECONDS, ["model", "provider"], buckets=buckets
        )
        self._tokens = Counter(*TOKENS, ["model", "provider", "type"])
        self._in_flight = Gauge(*IN_FLIGHT, multiprocess_mode="livesum")

    def started(self) -> None:
        self._in_flight.inc()

    def ended(self) -> None:
        self._in_flight.dec()

    def request(  # noqa: PLR0913 - one value per label and measurement
        self,
        model: str,
        provider: str,
        status: int,
        seconds: float,
        first_token_seconds: float | None,
        upstream_seconds: float | None,
    ) -> None:
        code = STATUS.get(status) or str(status)
        labelled(self._requests, model, provider, code).inc()
        labelled(self._request_seconds, model, provider, code).observe(seconds)
        if first_token_seconds is not None:
            labelled(self._first_token_seconds, model, provider).observe(first_token_seconds)
        if upstream_seconds is not None:
            labelled(self._upstream_seconds, provider).observe(upstream_seconds)

    def usage(self, model: str, provider: str, usage: Usage) -> None:
        labelled(self._tokens, model, provider, "prompt").inc(usage.prompt_tokens)
        labelled(self._tokens, model, provider, "completion").inc(usage.completion_tokens)
        if usage.cached_tokens:
            labelled(self._tokens, model, provider, "cached").inc(usage.cached_tokens)


# The metrics every request records live in a ledger (see ledger.py for why there are two).
LEDGER: RequestLedger
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    LEDGER = SharedLedger(_LATENCY_BUCKETS)
else:
    LEDGER = Ledger(_LATENCY_BUCKETS)
    REGISTRY.register(LEDGER)
observe_request = LEDGER.request
observe_usage = LEDGER.usage
GENAI = GenAIMetrics(_LATENCY_BUCKETS)
observe_genai = GENAI.observe


def observe_stream_error(model: str, provider: str) -> None:
    labelled(STREAM_ERRORS, model, provider).inc()


def observe_error(fault: str) -> None:
    labelled(ERRORS, fault).inc()


def observe_breaker(target: str, state: int, tripped: bool) -> None:
    BREAKER_STATE.labels(target).set(state)
    if tripped:
        BREAKER_TRIPS.labels(target).inc()


def exposition() -> tuple[bytes, str]:
    """The text exposition of every worker's metrics (blocking; call it off the loop)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
