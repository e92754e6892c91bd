"""Virtual keys, teams and limit rules: the config file's `governance:` section.

The same limit fields (LiteLLM's names) appear on a key, a team and a rule; the admin API's
bodies use them too (gateway/governance/records.py)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from msgspec import Meta, Struct

Count = Annotated[int, Meta(ge=0)]
Dollars = Annotated[float, Meta(ge=0)]
DURATION = re.compile(r"^(\d{1,4})(s|m|h|d|mo)$")


class _Cfg(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class LimitsCfg(_Cfg, frozen=True, kw_only=True):
    """What a key, a team or a rule may use. None: no limit of that kind."""

    rpm_limit: Count | None = None  # requests per minute
    tpm_limit: Count | None = None  # input + output tokens per minute
    max_parallel_requests: Count | None = None
    max_budget: Dollars | None = None  # US dollars per budget_duration (or ever)
    budget_duration: str | None = None  # 1d, 7d, 30d, 1mo...: calendar-aligned, UTC
    # Budgets when the limiter's Redis is unreachable: admit (spend replayed later) or refuse.
    on_store_error: Literal["open", "closed"] = "open"
    # Wait up to this long for a request or concurrency slot instead of a 429 at once.
    queue_ms: Annotated[int, Meta(ge=0, le=60_000)] = 0

    def __post_init__(self) -> None:
        if self.budget_duration is not None:
            check_duration(self.budget_duration)


def check_duration(text: str) -> int:
    """Seconds in a duration (`30s`, `5m`, `1h`, `7d`); -1 for calendar months (`1mo`)."""
    found = DURATION.match(text)
    if found is None:
        raise ValueError(f"expected a duration like 1d, 7d, 30d or 1mo, got {text!r}")
    count, unit = int(found.group(1)), found.group(2)
    if count == 0:
        raise ValueError("a duration must be longer than zero")
    if unit == "mo":
        if count != 1:
            raise ValueError("months are calendar months: use 1mo")
        return -1
    return count * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


class KeyCfg(LimitsCfg, frozen=True, kw_only=True):
    """A virtual key declared in the config file (GitOps): its secret (`env:VAR`) or only
    the secret's hash (`sha256:<hex>`, as `gateway keys hash` prints it)."""

    id: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    key: str | None = None
    key_hash: str | None = None
    name: str | None = None
    team: str | None = None
    user: str | None = None
    models: tuple[str, ...] | None = None  # names or globs; None: every model
    metadata: dict[str, str] = {}
    expires_at: str | None = None  # ISO 8601
    guardrails: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.key is None) == (self.key_hash is None):
            raise ValueError("give the key's secret (key: env:VAR) or its hash (key_hash)")


class TeamCfg(LimitsCfg, frozen=True, kw_only=True):
    models: tuple[str, ...] | None = None


Scope = Literal["key", "team", "user", "feature", "model", "provider"]


class RuleCfg(LimitsCfg, frozen=True, kw_only=True):
    """Limits on every value of a scope (`match` omitted or "*": each user gets its own) or
    on one (`match: search`). `model` is the name the client asked for; `provider` the
    provider that serves it."""

    scope: Scope
    match: str = "*"


class GovernanceCfg(_Cfg, frozen=True, kw_only=True):
    # Limits shared by instances live here; else the shared Redis (`redis:`). Without
    # Redis each process enforces its share (limit / workers). A reserve slower than
    # redis_timeout_ms counts as a failure but still waits for Redis's answer (up to 1 s);
    # three failures in a row open a breaker, which decides every waiting and later request
    # locally at once, until a background PING answers.
    redis_url: str | None = None
    redis_timeout_ms: Annotated[int, Meta(ge=1, le=1000)] = 100
    # The output part of a token or dollar estimate when a request sets no max_tokens.
    default_max_tokens: Annotated[int, Meta(ge=1)] = 4096
    # Refuse (400) requests under a token limit that set no max_tokens, instead.
    require_max_tokens: bool = False
    # A reservation is a lease of lease_ttl seconds, renewed (every third of it) while its
    # request lives: a killed instance's holds expire within lease_ttl. A request with a
    # shorter deadline holds until that deadline plus lease_grace.
    lease_ttl: Annotated[float, Meta(ge=1, le=3600)] = 15.0
    lease_grace: Annotated[float, Meta(gt=0)] = 30.0
    keys: list[KeyCfg] = []
    teams: dict[str, TeamCfg] = {}
    limits: list[RuleCfg] = []
    # How often keys are re-read from the store (a revocation is also published at once).
    reload_interval: Annotated[float, Meta(gt=0)] = 5.0
