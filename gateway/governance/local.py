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
    __slots__ = ("holds", "requests", "spent", "tokens")

    def __init__(self) -> None:
        self.requests: dict[int, int] = {}
        self.tokens: dict[int, int] = {}
        self.holds: dict[str, tuple[float, str, int, int, int]] = {}  # deadline, period, ...
        self.spent: dict[str, int] = {}  # period -> nano-dollars (held amounts included)


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
        for rule in rules:
            scope = self._scope(rule.scope)
            scope.requests[bucket] = scope.requests.get(bucket, 0) + 1
            scope.tokens[bucket] = scope.tokens.get(bucket, 0) + tokens
            period = period_id(rule.period, wall)
            scope.holds[rid] = (now_ms + lease_ms, period, bucket, tokens, cost)
            scope.spent[period] = scope.spent.get(period, 0) + cost
        return Lease(rid, tuple(rules), tokens, cost, tuple(windows), True)

    def _check(
        self, rule: Rule, tokens: int, cost: int, now_ms: float, wall: float
    ) -> Window | Refusal:
        scope = self._scope(rule.scope)
        bucket = int(now_ms // _BUCKET_MS)
        oldest = bucket - _BUCKETS + 1
        for hid, hold in list(scope.holds.items()):
            if hold[0] <= now_ms:
                del scope.holds[hid]
                scope.spent[hold[1]] = scope.spent.get(hold[1], 0) - hold[4]
        for series in (scope.requests, scope.tokens):
            for stale in [b for b in series if b < oldest]:
                del series[stale]
        reqs, toks = sum(scope.requests.values()), sum(scope.tokens.values())
        first_r = min((b for b, v in scope.requests.items() if v > 0), default=bucket)
        first_t = min((b for b, v in scope.tokens.items() if v > 0), default=bucket)
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
            if bucket >= oldest and bucket in scope.tokens:
                scope.tokens[bucket] += tokens - reserved

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
