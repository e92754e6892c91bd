"""Limit rules as the limiter applies them, and what a reservation decides.

A rule is one scope's limits: `key:<id>`, `team:<name>`, `user:<name>`, `feature:<name>`,
`model:<name>`, `provider:<name>`. Limits of -1 are absent. Money is integer nano-dollars;
a budget's period is 0 (forever), seconds (aligned in UTC: `1d` resets at midnight, `7d` on
Mondays) or -1 (calendar months).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import NamedTuple

from gateway.config.governance import LimitsCfg, check_duration
from gateway.governance.records import Limits

NONE = -1
WINDOW_MS = 60_000  # requests and tokens are per minute, over a sliding window
_SAFE = re.compile(r"^[A-Za-z0-9_.@:-]{1,64}$")


class Rule(NamedTuple):
    scope: str  # also the Redis hash tag: every key of one scope shares a cluster slot
    label: str  # for metrics: "key", "team", "user:*", "model:gpt-4o" (bounded by config)
    rpm: int
    tpm: int
    parallel: int
    budget: int  # nano-dollars
    period: int
    closed: bool  # refuse, rather than admit, when the limiter's Redis is unreachable
    queue_ms: int

    @property
    def needs_tokens(self) -> bool:
        return self.tpm >= 0

    @property
    def needs_cost(self) -> bool:
        return self.budget >= 0


def scope_id(kind: str, value: str) -> str:
    """A scope's id, safe inside a Redis key and a hash tag whatever the client sent."""
    if _SAFE.match(value) and "}" not in value:
        return f"{kind}:{value}"
    return f"{kind}:~{hashlib.blake2b(value.encode(), digest_size=12).hexdigest()}"


def rule(scope: str, label: str, limits: Limits | LimitsCfg) -> Rule | None:
    budget = NONE if limits.max_budget is None else round(limits.max_budget * 1e9)
    period = check_duration(limits.budget_duration) if limits.budget_duration else 0
    found = Rule(
        scope, label,
        NONE if limits.rpm_limit is None else limits.rpm_limit,
        NONE if limits.tpm_limit is None else limits.tpm_limit,
        NONE if limits.max_parallel_requests is None else limits.max_parallel_requests,
        budget, period, limits.on_store_error == "closed", limits.queue_ms,
    )  # fmt: skip
    if found.rpm < 0 and found.tpm < 0 and found.parallel < 0 and found.budget < 0:
        return None
    return found


class Refusal(NamedTuple):
    rule: Rule
    reason: str  # requests | tokens | parallel | budget | too_large | unavailable
    retry_after_ms: int  # -1: never, at this size (an estimate above the limit itself)


class Window(NamedTuple):
    """A rule's remaining requests and tokens after this request, for the response headers."""

    rule: Rule
    requests_left: int
    requests_reset_ms: int
    tokens_left: int
    tokens_reset_ms: int


class Lease(NamedTuple):
    """An admitted request's hold: settled to the actual usage when it ends."""

    id: str
    rules: tuple[Rule, ...]
    tokens: int
    cost: int
    windows: tuple[Window, ...]
    local: bool  # admitted by the local limiter while Redis was unreachable
    chunk: object | None = None  # admitted from a borrowed chunk (pool.py)
    target: bool = False  # one attempt's, on a provider target's own limits


def period_bounds(period: int, now: float) -> tuple[float | None, float | None]:
    """The start and end (unix seconds) of the budget period holding `now`."""
    if period == 0:
        return None, None
    if period > 0:
        offset = _week_offset(period)
        start = (now - offset) // period * period + offset
        return start, start + period
    day = datetime.datetime.fromtimestamp(now, datetime.UTC)
    first = datetime.datetime(day.year, day.month, 1, tzinfo=datetime.UTC)
    following = datetime.datetime(
        day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=datetime.UTC
    )
    return first.timestamp(), following.timestamp()


def _week_offset(period: int) -> int:
    """Whole weeks start on Mondays (the epoch was a Thursday); other lengths at the epoch."""
    return 4 * 86400 if period % (7 * 86400) == 0 else 0


# period -> (start, end, id) of the period last asked for: an id changes only at a period's
# end, and every check of a budget asks (a calendar month's id cost a datetime each time).
_PERIODS: dict[int, tuple[float, float, str]] = {}


def period_id(period: int, now: float) -> str:
    """The same id the Redis script computes from its own clock."""
    if period == 0:
        return "all"
    known = _PERIODS.get(period)
    if known is not None and known[0] <= now < known[1]:
        return known[2]
    if period > 0:
        found = str(int((now - _week_offset(period)) // period))
    else:
        day = datetime.datetime.fromtimestamp(now, datetime.UTC)
        found = f"{day.year:04d}-{day.month:02d}"
    start, end = period_bounds(period, now)
    assert start is not None and end is not None
    if len(_PERIODS) > 1000:  # periods come from configs and keys: a handful
        _PERIODS.clear()
    _PERIODS[period] = (start, end, found)
    return found
