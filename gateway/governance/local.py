"""The limiter in one process's memory, with the Redis scripts' semantics: used when no Redis
is configured (each of `workers` processes enforces its share) and while the configured one
is unreachable (each live instance enforces limit / instances, from the heartbeat count).

While Redis answers, the limiter tells this one what each scope had left (`learn`), so a
fallback never admits what Redis had already refused: until that window resets, a scope's
local share is at most its last known remainder / instances. Budgets likewise
(`learn_budget`): while Redis is away, an instance spends at most its share of what the budget
had left at Redis's last answer, within the same period."""

from __future__ import annotations

import time
from collections.abc import Sequence

from gateway.governance.rules import Lease, Refusal, Rule, Window, period_id

_BUCKET_MS = 5000
_BUCKETS = 12


class _Scope:
    """One scope's sliding minute (12 buckets of 5 s) and its holds. Kept so that a check
    costs the same whatever the traffic: the minute's totals are running sums, the stale
    buckets are dropped once per bucket, and the holds are swept only once the earliest of
    their deadlines has passed (a settled request removes its own)."""

    __slots__ = (
        "bucket", "holds", "next_expiry", "request_total", "requests", "spent", "token_total",
        "tokens",
    )  # fmt: skip

    def __init__(self) -> None:
        # bucket -> requests (never 0: counts only grow), oldest first
        self.requests: dict[int, int] = {}
        self.tokens: dict[int, int] = {}  # a settlement may bring a bucket to 0 or below
        self.request_total = 0  # the sums of the two, over the live buckets
        self.token_total = 0
        self.bucket = -1  # the bucket the totals were last brought up to
        self.holds: dict[str, tuple[float, str, int, int, int]] = {}  # deadline, period, ...
        self.next_expiry = float("inf")  # no hold's deadline is earlier
        self.spent: dict[str, int] = {}  # period -> nano-dollars (held amounts included)

    def advance(self, bucket: int, now_ms: float) -> None:
        """Drops what left the minute: expired holds, and buckets older than it."""
        if now_ms >= self.next_expiry:
            soonest = float("inf")
            for hid, hold in list(self.holds.items()):
                if hold[0] <= now_ms:
                    del self.holds[hid]
                    self.spent[hold[1]] = self.spent.get(hold[1], 0) - hold[4]
                elif hold[0] < soonest:
                    soonest = hold[0]
            self.next_expiry = soonest
        if bucket != self.bucket:
            self.bucket = bucket
            oldest = bucket - _BUCKETS + 1
            for series in (self.requests, self.tokens):
                for stale in [b for b in series if b < oldest]:
                    del series[stale]
            self.request_total = sum(self.requests.values())
            self.token_total = sum(self.tokens.values())

    def first(self, bucket: int) -> tuple[int, int]:
        """The oldest live buckets with requests and with tokens (`bucket` when none)."""
        first_tokens = next((b for b, v in self.tokens.items() if v > 0), bucket)
        return next(iter(self.requests), bucket), first_tokens

    def add(self, bucket: int, tokens: int) -> None:
        self.requests[bucket] = self.requests.get(bucket, 0) + 1
        self.tokens[bucket] = self.tokens.get(bucket, 0) + tokens
        self.request_total += 1
        self.token_total += tokens


def _share(limit: int, share: int) -> int:
    return limit if limit < 0 else max(1, limit // share) if limit else 0


class LocalLimiter:
    def __init__(self) -> None:
        self.share = 1  # live instances (or workers) the limits are divided among
        self._scopes: dict[str, _Scope] = {}
        # scope -> (until ms, requests left, until ms, tokens left), as Redis last said
        self._known: dict[str, tuple[float, int, float, int]] = {}
        # scope -> (when, nano-dollars left), as Redis last said: its period is worked out
        # only when a fallback needs it, never on the request path while Redis answers
        self._budget_left: dict[str, tuple[float, int]] = {}

    def learn_budget(self, rule: Rule, left: int) -> None:
        """What a budget had left after Redis's last answer for its scope."""
        if len(self._budget_left) > 100_000:
            self._budget_left.clear()
        self._budget_left[rule.scope] = (time.time(), max(left, 0))

    def learn(self, scope: str, requests_left: int, requests_reset_ms: int,
              tokens_left: int, tokens_reset_ms: int) -> None:  # fmt: skip
        """What Redis said a scope had left (-1: no such limit) and when its window frees."""
        if len(self._known) > 100_000:
            self._known.clear()
        now_ms = time.monotonic() * 1000
        self._known[scope] = (
            now_ms + max(requests_reset_ms, 0), requests_left,
            now_ms + max(tokens_reset_ms, 0), tokens_left,
        )  # fmt: skip

    def _scope(self, name: str) -> _Scope:
        scope = self._scopes.get(name)
        if scope is None:
            if len(self._scopes) > 100_000:  # client-chosen scopes (users) are unbounded
                self._scopes.clear()
            scope = self._scopes[name] = _Scope()
        return scope

    def reserve(
        self, rid: str, rules: Sequence[Rule], tokens: int, cost: int, lease_ms: int
    ) -> Lease | Refusal:
        now_ms = time.monotonic() * 1000
        wall = time.time()
        bucket = int(now_ms // _BUCKET_MS)
        windows = []
        for rule in rules:
            decided = self._check(rule, tokens, cost, now_ms, wall)
            if isinstance(decided, Refusal):
                return decided
            windows.append(decided)
        deadline = now_ms + lease_ms
        for rule in rules:
            scope = self._scope(rule.scope)
            scope.add(bucket, tokens)
            period = period_id(rule.period, wall)
            scope.holds[rid] = (deadline, period, bucket, tokens, cost)
            scope.next_expiry = min(scope.next_expiry, deadline)
            scope.spent[period] = scope.spent.get(period, 0) + cost
        return Lease(rid, tuple(rules), tokens, cost, tuple(windows), True)

    def _check(
        self, rule: Rule, tokens: int, cost: int, now_ms: float, wall: float
    ) -> Window | Refusal:
        scope = self._scope(rule.scope)
        bucket = int(now_ms // _BUCKET_MS)
        scope.advance(bucket, now_ms)
        reqs, toks = scope.request_total, scope.token_total
        first_r, first_t = scope.first(bucket)
        reset_r = int((first_r + _BUCKETS) * _BUCKET_MS - now_ms)
        reset_t = int((first_t + _BUCKETS) * _BUCKET_MS - now_ms)
        rpm, tpm = self._limits(rule, now_ms)
        parallel = _share(rule.parallel, self.share)
        if rpm >= 0 and reqs + 1 > rpm:
            return Refusal(rule, "requests", reset_r)
        if tpm >= 0 and tokens > rule.tpm:
            return Refusal(rule, "too_large", -1)
        if tpm >= 0 and toks + tokens > tpm:
            return Refusal(rule, "tokens", reset_t)
        if parallel >= 0 and len(scope.holds) + 1 > parallel:
            return Refusal(rule, "parallel", 1000)
        if rule.budget >= 0:
            period = period_id(rule.period, wall)
            used = scope.spent.get(period, 0)
            allowed = rule.budget
            known = self._budget_left.get(rule.scope)
            if known is not None and period_id(rule.period, known[0]) == period:
                allowed = min(allowed, known[1] // self.share)  # its share of what is left
            if used >= allowed or used + cost > allowed:
                return Refusal(rule, "budget", 0)
        return Window(
            rule, rpm - reqs - 1 if rpm >= 0 else -1, reset_r,
            tpm - toks - tokens if tpm >= 0 else -1, reset_t,
        )  # fmt: skip

    def _limits(self, rule: Rule, now_ms: float) -> tuple[int, int]:
        """This instance's share of the rule's rpm and tpm, within what Redis said was left."""
        rpm, tpm = _share(rule.rpm, self.share), _share(rule.tpm, self.share)
        known = self._known.get(rule.scope)
        if known is not None:
            if rpm >= 0 and known[1] >= 0 and now_ms < known[0]:
                rpm = min(rpm, known[1] // self.share)
            if tpm >= 0 and known[3] >= 0 and now_ms < known[2]:
                tpm = min(tpm, known[3] // self.share)
        return rpm, tpm

    def settle(self, lease: Lease, tokens: int, cost: int) -> None:
        oldest = int(time.monotonic() * 1000 // _BUCKET_MS) - _BUCKETS + 1
        for rule in lease.rules:
            scope = self._scopes.get(rule.scope)
            if scope is None:
                continue
            hold = scope.holds.pop(lease.id, None)
            if hold is None:
                continue
            _, period, bucket, reserved, held = hold
            scope.spent[period] = scope.spent.get(period, 0) + cost - held
            if bucket >= oldest and bucket in scope.tokens:  # a live bucket: in the total
                scope.tokens[bucket] += tokens - reserved
                scope.token_total += tokens - reserved

    def spent(self, rule: Rule) -> tuple[int, int, int, int]:
        """Requests and tokens in the minute, live holds, spend this period (held included)."""
        scope = self._scopes.get(rule.scope)
        if scope is None:
            return 0, 0, 0, 0
        now_ms = time.monotonic() * 1000
        oldest = int(now_ms // _BUCKET_MS) - _BUCKETS + 1
        live = sum(1 for hold in scope.holds.values() if hold[0] > now_ms)
        return (
            sum(v for b, v in scope.requests.items() if b >= oldest),
            sum(v for b, v in scope.tokens.items() if b >= oldest),
            live,
            scope.spent.get(period_id(rule.period, time.time()), 0),
        )
