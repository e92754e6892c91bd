"""The in-process limiter (governance/local.py) keeps running totals, sweeps holds only once
the earliest deadline has passed and drops stale buckets once per bucket, so a check costs the
same whatever the traffic. Its decisions must be exactly those of the plain algorithm, which
recounts everything on every check: kept here as the specification, and both driven through
the same random sequence of reservations, settlements, lost settlements and clock moves."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.governance import local
from gateway.governance.rules import Lease, Refusal, Rule, Window, period_id


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000.0

    def monotonic(self) -> float:
        return self.ms / 1000

    def time(self) -> float:
        return 1_765_000_000 + self.ms / 1000


class Reference:
    """What each check computes, recounted from scratch (the limiter before it kept sums)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.scopes: dict[str, dict[str, Any]] = {}

    def _scope(self, name: str) -> dict[str, Any]:
        return self.scopes.setdefault(name, {"requests": {}, "tokens": {}, "holds": {}, "spent": {}})

    def reserve(self, rid: str, rules: list[Rule], tokens: int, cost: int, lease_ms: int) -> Any:
        now_ms, wall = self.clock.monotonic() * 1000, self.clock.time()
        bucket = int(now_ms // local._BUCKET_MS)
        windows = []
        for rule in rules:
            decided = self._check(rule, tokens, cost, now_ms, wall)
            if isinstance(decided, Refusal):
                return decided
            windows.append(decided)
        for rule in rules:
            scope = self._scope(rule.scope)
            scope["requests"][bucket] = scope["requests"].get(bucket, 0) + 1
            scope["tokens"][bucket] = scope["tokens"].get(bucket, 0) + tokens
            period = period_id(rule.period, wall)
            scope["holds"][rid] = (now_ms + lease_ms, period, bucket, tokens, cost)
            scope["spent"][period] = scope["spent"].get(period, 0) + cost
        return Lease(rid, tuple(rules), tokens, cost, tuple(windows), True)

    def _check(self, rule: Rule, tokens: int, cost: int, now_ms: float, wall: float) -> Any:
        scope = self._scope(rule.scope)
        bucket = int(now_ms // local._BUCKET_MS)
        oldest = bucket - local._BUCKETS + 1
        for hid, hold in list(scope["holds"].items()):
            if hold[0] <= now_ms:
                del scope["holds"][hid]
                scope["spent"][hold[1]] = scope["spent"].get(hold[1], 0) - hold[4]
        for series in (scope["requests"], scope["tokens"]):
            for stale in [b for b in series if b < oldest]:
                del series[stale]
        reqs, toks = sum(scope["requests"].values()), sum(scope["tokens"].values())
        first_r = min((b for b, v in scope["requests"].items() if v > 0), default=bucket)
        first_t = min((b for b, v in scope["tokens"].items() if v > 0), default=bucket)
        reset_r = int((first_r + local._BUCKETS) * local._BUCKET_MS - now_ms)
        reset_t = int((first_t + local._BUCKETS) * local._BUCKET_MS - now_ms)
        rpm, tpm, parallel = rule.rpm, rule.tpm, rule.parallel
        if rpm >= 0 and reqs + 1 > rpm:
            return Refusal(rule, "requests", reset_r)
        if tpm >= 0 and tokens > rule.tpm:
            return Refusal(rule, "too_large", -1)
        if tpm >= 0 and toks + tokens > tpm:
            return Refusal(rule, "tokens", reset_t)
        if parallel >= 0 and len(scope["holds"]) + 1 > parallel:
            return Refusal(rule, "parallel", 1000)
        if rule.budget >= 0:
            used = scope["spent"].get(period_id(rule.period, wall), 0)
            if used >= rule.budget or used + cost > rule.budget:
                return Refusal(rule, "budget", 0)
        return Window(rule, rpm - reqs - 1 if rpm >= 0 else -1, reset_r,
                      tpm - toks - tokens if tpm >= 0 else -1, reset_t)  # fmt: skip

    def settle(self, lease: Lease, tokens: int, cost: int) -> None:
        oldest = int(self.clock.monotonic() * 1000 // local._BUCKET_MS) - local._BUCKETS + 1
        for rule in lease.rules:
            scope = self.scopes.get(rule.scope)
            hold = scope["holds"].pop(lease.id, None) if scope else None
            if scope is None or hold is None:
                continue
            _, period, bucket, reserved, held = hold
            scope["spent"][period] = scope["spent"].get(period, 0) + cost - held
            if bucket >= oldest and bucket in scope["tokens"]:
                scope["tokens"][bucket] += tokens - reserved


def _rules(rng: random.Random) -> list[Rule]:
    def one(scope: str) -> Rule:
        return Rule(scope, scope, rng.choice([-1, 60, 400]), rng.choice([-1, 20_000, 200_000]),
                    rng.choice([-1, 8, 40]), rng.choice([-1, 2 * 10**6, 10**9]), 86400, False, 0)  # fmt: skip

    rules = [one(s) for s in rng.sample(["key:a", "team:t", "user:u"], rng.randint(1, 3))]
    return [rules[0]._replace(rpm=60, parallel=8), *rules[1:]]  # one always refuses some


@pytest.mark.parametrize("seed", range(12))
def test_the_limiter_decides_as_recounting_everything_would(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    clock = Clock()
    monkeypatch.setattr(local, "time", clock)
    limiter, reference = local.LocalLimiter(), Reference(clock)
    rules = _rules(rng)
    live: list[tuple[Lease, Lease]] = []
    decided = refused = 0
    for step in range(3000):
        action = rng.random()
        if action < 0.5:
            tokens, cost = rng.choice([0, 5, 60, 400]), rng.choice([0, 100, 5000])
            lease_ms = rng.choice([200, 2000, 30_000])
            rid = f"r{step}"
            got = limiter.reserve(rid, rules, tokens, cost, lease_ms)
            want = reference.reserve(rid, rules, tokens, cost, lease_ms)
            assert got == want, f"step {step}"
            if isinstance(got, Lease):
                live.append((got, want))
                decided += 1
            else:
                refused += 1
        elif action < 0.8 and live:
            ours, theirs = live.pop(rng.randrange(len(live)))
            if rng.random() < 0.9:  # else the settlement is lost: the hold expires
                used, spent = rng.choice([0, 3, 80, 900]), rng.choice([0, 50, 9000])
                limiter.settle(ours, used, spent)
                reference.settle(theirs, used, spent)
        else:
            clock.ms += rng.choice([1, 40, 700, 4_999, 5_000, 13_000, 61_000])
    assert decided > 100 and refused > 20, (decided, refused)  # both, plenty of each


def test_a_remembered_period_id_is_the_one_computed_afresh() -> None:
    """period_id remembers each period's current id until the period ends: the answers, at
    and around the boundaries too, are what computing it every time gives."""
    import datetime

    from gateway.governance import rules

    def fresh(period: int, now: float) -> str:
        if period == 0:
            return "all"
        if period > 0:
            return str(int((now - rules._week_offset(period)) // period))
        day = datetime.datetime.fromtimestamp(now, datetime.UTC)
        return f"{day.year:04d}-{day.month:02d}"

    rng = random.Random(5)
    new_year = 1767225600.0  # 2026-01-01T00:00:00Z: a month's, a day's and an hour's end
    for _ in range(50_000):
        period = rng.choice([-1, 0, 3600, 86400, 7 * 86400, 30 * 86400])
        now = rng.choice([rng.uniform(1.7e9, 1.8e9), new_year + rng.choice([-1.0, -1e-6, 0.0, 0.5])])
        assert rules.period_id(period, now) == fresh(period, now), (period, now)
