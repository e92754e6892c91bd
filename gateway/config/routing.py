"""How a model name is served: the strategy tree, retries, deadlines, breakers and admission.

The same Structs validate the YAML file and the per-request `x-gateway-config` header. Settings
given on a node (retry, timeouts, breaker) are inherited by every node below it that does not
give its own.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from msgspec import Meta, Struct

from gateway.config.cache import CachePolicyCfg

PositiveSeconds = Annotated[float, Meta(gt=0)]
DEFAULT_FALLBACK_STATUSES = (429, 500, 502, 503, 504)

Mode = Literal[
    "single", "loadbalance", "fallback", "least-latency", "least-busy", "conditional",
    "cheapest", "complexity", "semantic",
]  # fmt: skip
Capability = Literal["tools", "vision", "json_schema"]
Unit = Annotated[float, Meta(ge=0, le=1)]


class _Cfg(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class TimeoutsCfg(_Cfg, frozen=True, kw_only=True):
    connect: PositiveSeconds = 10.0
    # Until the response head (non-stream) or the first content chunk (stream).
    first_byte: PositiveSeconds = 120.0
    # Longest silence between two chunks of a stream.
    idle: PositiveSeconds | None = None
    total: PositiveSeconds = 600.0


class PartialTimeoutsCfg(_Cfg, frozen=True, kw_only=True):
    """Timeouts on a route node: only what is given overrides what the node inherits."""

    connect: PositiveSeconds | None = None
    first_byte: PositiveSeconds | None = None
    idle: PositiveSeconds | None = None
    total: PositiveSeconds | None = None


class BackoffCfg(_Cfg, frozen=True, kw_only=True):
    initial_ms: Annotated[int, Meta(ge=0)] = 200
    max_ms: Annotated[int, Meta(ge=0)] = 5000


class RetryCfg(_Cfg, frozen=True, kw_only=True):
    # Further tries of the same target after its first (0: no retries).
    attempts: Annotated[int, Meta(ge=0, le=10)] = 0
    on_status_codes: tuple[Annotated[int, Meta(ge=400, le=599)], ...] = DEFAULT_FALLBACK_STATUSES
    backoff: BackoffCfg = BackoffCfg()
    # A Retry-After longer than this is not waited for: the next target is tried instead.
    max_retry_after_ms: Annotated[int, Meta(ge=0)] = 10_000


class BreakerCfg(_Cfg, frozen=True, kw_only=True):
    enabled: bool = True
    window: Annotated[int, Meta(ge=1, le=1000)] = 20  # recent outcomes considered
    min_requests: Annotated[int, Meta(ge=1)] = 5
    failure_ratio: Annotated[float, Meta(gt=0, le=1)] = 0.5
    cooldown_ms: Annotated[int, Meta(ge=1)] = 5_000  # first trip; doubles on each repeat
    max_cooldown_ms: Annotated[int, Meta(ge=1)] = 300_000


class AdmissionCfg(_Cfg, frozen=True, kw_only=True):
    max_concurrent: Annotated[int, Meta(ge=1)]
    queue: Annotated[int, Meta(ge=0)] = 100
    max_wait_ms: Annotated[int, Meta(ge=0)] = 1_000


class ConditionCfg(_Cfg, frozen=True, kw_only=True):
    query: dict[str, Any]
    then: Annotated[str, Meta(min_length=1)]  # the `name` of a target of this node


class TierCfg(_Cfg, frozen=True, kw_only=True):
    """complexity mode: requests scoring below `below` go to `target` (the last tier has none)."""

    below: Unit | None = None
    target: Annotated[str, Meta(min_length=1)]  # the `name` of a target of this node


class SemanticRouteCfg(_Cfg, frozen=True, kw_only=True):
    """semantic mode: requests whose last user turn is nearest these examples go to `target`."""

    name: Annotated[str, Meta(min_length=1, max_length=64)]
    examples: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)]
    target: Annotated[str, Meta(min_length=1)]


class StrategyCfg(_Cfg, frozen=True, kw_only=True):
    mode: Mode = "single"
    # Which failures move on to the next target (fallback and the balancing modes);
    # connection errors and deadlines always do.
    on_status_codes: tuple[Annotated[int, Meta(ge=400, le=599)], ...] | None = None
    conditions: list[ConditionCfg] = []
    # conditional and semantic: the target used when no condition (or route) matches
    default: str | None = None
    tiers: list[TierCfg] = []  # complexity
    routes: list[SemanticRouteCfg] = []  # semantic
    embedder: str = "local"  # semantic: local | minilm | a provider's embedding model
    threshold: Unit | None = None  # semantic: the similarity a route needs (per embedder)
    # cheapest: the reply length a request is priced at (never above its max_tokens)
    expected_output_tokens: Annotated[int, Meta(ge=0)] = 256


class TargetCfg(_Cfg, frozen=True, kw_only=True):
    """One of: a provider's model (`provider` + `model`), another alias (`alias`), or a nested
    strategy (`strategy` + `targets`)."""

    name: str | None = None
    provider: str | None = None
    model: str | None = None
    alias: str | None = None
    strategy: StrategyCfg | None = None
    targets: list[TargetCfg] | None = None
    weight: Annotated[float, Meta(ge=0)] = 1.0
    override_params: dict[str, Any] = {}
    retry: RetryCfg | None = None
    timeouts: PartialTimeoutsCfg | None = None
    breaker: BreakerCfg | None = None
    admission: AdmissionCfg | None = None
    # What the target can take: its context window in tokens (else the price catalog's), and
    # what it supports (None: everything a request may ask for).
    context_window: Annotated[int, Meta(ge=1)] | None = None
    supports: list[Capability] | None = None


class ShadowCfg(_Cfg, frozen=True, kw_only=True):
    """A sample of this model's answered chat requests (a stream once it has ended) also sent,
    in the background, to `target` (a model name or provider/model), to compare the answers."""

    target: Annotated[str, Meta(min_length=1)]
    ratio: Unit = 0.1
    max_concurrent: Annotated[int, Meta(ge=1, le=256)] = 4  # past it, samples are skipped


class RouteCfg(_Cfg, frozen=True, kw_only=True):
    """A route as a request may send it in `x-gateway-config` (a model entry without a name)."""

    strategy: StrategyCfg = StrategyCfg()
    targets: Annotated[list[TargetCfg], Meta(min_length=1, max_length=64)]
    retry: RetryCfg | None = None
    timeouts: PartialTimeoutsCfg | None = None
    breaker: BreakerCfg | None = None
    cache: CachePolicyCfg | None = None
    # A target whose context window the request does not fit is always skipped; when none
    # fits, `fail` answers context_length_exceeded and `fallback` sends the request on to
    # the model `context_fallback` (one with a larger window).
    on_context_overflow: Literal["fail", "fallback"] = "fail"
    context_fallback: str | None = None
    shadow: ShadowCfg | None = None  # config only, never from x-gateway-config


class RoutingCfg(_Cfg, frozen=True, kw_only=True):
    # Shares breaker state and cooldowns between gateway instances (else per process).
    redis_url: str | None = None
    # Whether clients may send a route in the x-gateway-config header.
    config_header: bool = True
    # Upstream attempts one request may make in all, retries and fallbacks together.
    max_attempts: Annotated[int, Meta(ge=1, le=50)] = 8
    # Lets clients simulate upstream failures with the x-gateway-fault header (drills only).
    fault_injection: bool = False
