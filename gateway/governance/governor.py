"""Which rules a request falls under, what it is expected to use, and the decision.

The estimate before the call: the compiled counter's input tokens plus the request's
`max_tokens` / `max_completion_tokens` (else `default_max_tokens`); its cost at the dearest
price among the targets that may serve it. When the request ends its hold is settled to what
metering recorded (stream included); a call that failed before any usage releases it.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

from gateway.api.usage import Usage
from gateway.config.governance import GovernanceCfg
from gateway.errors import (
    BudgetExceeded,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    TargetsUnavailable,
)
from gateway.governance.limiter import RedisLimiter, Unavailable
from gateway.governance.local import LocalLimiter
from gateway.governance.pool import Pool
from gateway.governance.registry import Principal
from gateway.governance.rules import Lease, Refusal, Rule, period_bounds, rule, scope_id
from gateway.metering.tokens import count_view
from gateway.observability import metrics
from gateway.pipeline.call import Call
from gateway.providers.base import COUNTING, Endpoint
from gateway.redisbus import FAILURES
from gateway.routing.plan import Leaf, Route

LOG = logging.getLogger("gateway.governance")
Price = Callable[[str, str, Usage], "int | None"]


class _Template:
    """A config rule: its scope kind, the value it matches ("*": each) and its limits."""

    __slots__ = ("kind", "label", "limits", "match")

    def __init__(self, kind: str, match: str, limits: Any) -> None:
        self.kind = kind
        self.match = match
        self.label = f"{kind}:{match}"
        self.limits = limits

    def bind(self, value: str) -> Rule | None:
        return rule(scope_id(self.kind, value), self.label, self.limits)


class Governor:
    def __init__(
        self,
        cfg: GovernanceCfg,
        limiter: RedisLimiter | None,
        local: LocalLimiter,
        price: Price,
    ) -> None:
        self._cfg = cfg
        self.limiter = limiter
        self.local = local
        self._price = price
        self._hold_prefix = secrets.token_hex(4)  # this process's; a counter makes each unique
        self._holds = itertools.count()
        self._templates = [
            _Template(r.scope, r.match, r) for r in cfg.limits if r.scope != "provider"
        ]
        self._target_templates = [
            _Template(r.scope, r.match, r) for r in cfg.limits if r.scope == "provider"
        ]
        self._target_rules: dict[str, tuple[Rule, ...]] = {}
        self._bound: dict[tuple[int, str], Rule | None] = {}
        self.pool = Pool(limiter) if limiter is not None else None
        self._needs_memo: dict[tuple[Rule, ...], tuple[bool, bool]] = {}
        # Decisions and holds counted in plain ints on the request path, handed to
        # prometheus once a second (publish_metrics): a labelled inc costs more than a rule.
        self.tally: dict[tuple[str, str], int] = {}
        self._route_targets: dict[Route, tuple[tuple[str, str], ...]] = {}
        self.leases = 0

    def publish_metrics(self) -> None:
        tally, self.tally = self.tally, {}
        for (label, outcome), count in tally.items():
            metrics.labelled(metrics.RATELIMIT_DECISIONS, label, outcome).inc(count)
        metrics.LIMITER_LEASES.set(self.leases)

    @property
    def has_rules(self) -> bool:
        return bool(self._templates or self._target_templates)

    @property
    def has_target_rules(self) -> bool:
        return bool(self._target_templates)

    def target_rules(self, leaf: Leaf) -> tuple[Rule, ...]:
        """A target's own rules: `match` is its provider's name, `provider/model`, or "*"."""
        found = self._target_rules.get(leaf.key)
        if found is None:
            provider = leaf.target.provider.name
            bound = []
            for template in self._target_templates:
                if template.match in ("*", provider):
                    made = template.bind(provider)
                elif template.match == leaf.key:
                    made = rule(scope_id("target", leaf.key), template.label, template.limits)
                else:
                    continue
                if made is not None:
                    bound.append(made)
            if len(self._target_rules) > 10_000:
                self._target_rules.clear()
            found = self._target_rules[leaf.key] = tuple(bound)
        return found

    async def gate(self, call: Call, leaf: Leaf) -> None:
        """Reserves one attempt on the target's own limits (Failover's gate)."""
        rules = self.target_rules(leaf)
        if not rules:
            return
        lease = await self.admit(call, rules, target=leaf.key)
        if call.leases is None:
            call.leases = []
        call.leases.append(lease)

    def rules(self, call: Call, principal: Principal | None) -> tuple[Rule, ...]:
        own = principal.rules if principal is not None else ()
        if not self._templates:
            return own
        found = list(own)
        metadata = call.metadata or {}
        key = principal.key if principal is not None else None
        values = {
            "key": key.id if key is not None else None,
            "team": (key.team if key is not None else None) or _text(metadata.get("team")),
            "user": (key.user if key is not None else None)
            or _text(getattr(call.view, "user", None) or metadata.get("user")),
            "feature": _text(metadata.get("feature")),
            "model": call.route.name if call.route is not None else None,
        }
        for i, template in enumerate(self._templates):
            value = values.get(template.kind)
            if value is None or (template.match != "*" and template.match != value):
                continue
            cache_key = (i, value)
            bound = self._bound.get(cache_key, False)
            if bound is False:
                if len(self._bound) > 50_000:
                    self._bound.clear()
                bound = self._bound[cache_key] = template.bind(value)
            if bound is not None:
                found.append(bound)  # type: ignore[arg-type]
        return tuple(found)

    def _needs(self, rules: tuple[Rule, ...]) -> tuple[bool, bool]:
        """Whether a rule set needs a token estimate (TPM) and a cost estimate (budgets)."""
        found = self._needs_memo.get(rules)
        if found is None:
            if len(self._needs_memo) > 10_000:
                self._needs_memo.clear()
            found = self._needs_memo[rules] = (
                any(r.tpm >= 0 for r in rules),
                any(r.budget >= 0 for r in rules),
            )
        return found

    def estimate(self, call: Call, rules: tuple[Rule, ...]) -> tuple[int, int]:
        tpm, budget = self._needs(rules)
        if not (tpm or budget):
            return 0, 0
        if call.estimate is not None:
            return call.estimate
        view = call.view
        output = getattr(view, "max_completion_tokens", None) or getattr(view, "max_tokens", None)
        if call.endpoint is Endpoint.EMBEDDINGS or call.endpoint in COUNTING:
            output = 0
        elif output is None:
            if self._cfg.require_max_tokens and tpm:
                raise InvalidRequest(
                    "This key is under a token limit: set max_tokens (or max_completion_tokens)"
                    " so the gateway can reserve what the answer may use.",
                    param="max_tokens", code="max_tokens_required",
                )  # fmt: skip
            output = self._cfg.default_max_tokens
        prompt = count_view(view, call.raw, view.model) if view is not None else 0
        tokens = prompt + output
        cost = 0
        if budget and call.route is not None:
            usage = Usage(prompt_tokens=prompt, completion_tokens=output, total_tokens=tokens)
            for provider, model in self._targets_of(call.route):
                found = self._price(provider, model, usage)
                if found is not None and found > cost:
                    cost = found
        call.estimate = (tokens, cost)
        return tokens, cost

    def _targets_of(self, route: Route) -> tuple[tuple[str, str], ...]:
        found = self._route_targets.get(route)
        if found is None:
            if len(self._route_targets) > 1000:
                self._route_targets.clear()
            found = self._route_targets[route] = tuple(
                (leaf.target.provider.name, leaf.target.model) for leaf in route.leaves()
            )
        return found

    async def admit(self, call: Call, rules: tuple[Rule, ...], target: str | None = None) -> Lease:
        """A lease on every rule, or the refusal raised as the client's error (a target's
        refusal: TargetsUnavailable, so the router moves on)."""
        tokens, cost = self.estimate(call, rules)
        timeout = call.timeout or 600.0
        lease_ms = int(min(timeout + self._cfg.lease_grace, self._cfg.lease_ttl) * 1000)
        waited_until = None
        # A hold's id is this admission's own: a request id is the client's to choose and may
        # come again (a load balancer retrying the request on another instance, an SDK's
        # retry), and two holds under one id would settle as one, leaving the other's budget
        # held for good.
        rid = f"{call.request_id}.{self._hold_prefix}{next(self._holds)}"
        while True:
            decision = await self._reserve(rid, rules, tokens, cost, lease_ms)
            if isinstance(decision, Lease):
                tally = self.tally
                for r in rules:
                    key = (r.label, "admitted")
                    tally[key] = tally.get(key, 0) + 1
                self.leases += 1
                return decision._replace(target=True) if target else decision
            queue_ms = decision.rule.queue_ms
            if queue_ms and decision.reason in ("requests", "parallel"):
                now = time.monotonic()
                if waited_until is None:
                    waited_until = now + queue_ms / 1000
                # A slot frees when a request ends, which no window predicts: poll for it.
                hint = 50 if decision.reason == "parallel" else max(decision.retry_after_ms, 20)
                wait = min(hint / 1000, waited_until - now)
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
            key = (decision.rule.label, decision.reason)
            self.tally[key] = self.tally.get(key, 0) + 1
            if target is not None:
                seconds = max(1, math.ceil(max(decision.retry_after_ms, 0) / 1000))
                raise TargetsUnavailable(
                    f"Target {target} is at its configured limit.",
                    headers={"retry-after": str(seconds)},
                )
            raise self._refused(decision)

    async def _reserve(
        self, rid: str, rules: tuple[Rule, ...], tokens: int, cost: int, lease_ms: int
    ) -> Lease | Refusal:
        limiter = self.limiter
        if limiter is not None:
            try:
                if self.pool is not None:
                    pooled = await self.pool.take(rid, rules, tokens, cost, lease_ms)
                    if pooled is not None:
                        return pooled
                return await limiter.reserve(rid, rules, tokens, cost, lease_ms)
            except Unavailable:
                if not limiter.degraded:
                    limiter.degraded = True
                    metrics.LIMITER_DEGRADED.set(1)
                    LOG.warning(
                        "limiter: Redis unreachable; enforcing limits per instance (1/%d of"
                        " each) and budgets by their on_store_error", self.local.share,
                    )  # fmt: skip
                for r in rules:
                    if r.closed and r.budget >= 0:
                        return Refusal(r, "unavailable", 1000)
        return self.local.reserve(rid, rules, tokens, cost, lease_ms)

    def settle_all(self, call: Call, leases: list[Lease]) -> None:
        """The request's lease and its last attempt's on a target get what the call used;
        earlier attempts (failed over) used nothing billable but their request."""
        usage = call.usage
        tokens = usage.prompt_tokens + usage.completion_tokens if usage is not None else 0
        cost = call.cost or 0
        last_target = len(leases) - 1
        for i, lease in enumerate(leases):
            if lease.target and i != last_target:
                self.settle(lease, 0, 0)
            else:
                self.settle(lease, tokens, cost)

    def settle(self, lease: Lease, tokens: int, cost: int) -> None:
        self.leases -= 1
        if lease.chunk is not None and self.pool is not None:
            self.pool.settle(lease, tokens, cost)
            return
        if lease.local:
            self.local.settle(lease, tokens, cost)
        if self.limiter is not None:
            # Local leases are charged to Redis too, when it is back (queued till then).
            self.limiter.settle(lease, tokens, cost)

    async def usage(self, rules: tuple[Rule, ...] | list[Rule]) -> list[dict[str, Any]]:
        """Each rule's current use against its limits, for the admin API."""
        out = []
        now = time.time()
        for r in rules:
            source = "redis"
            try:
                if self.limiter is None:
                    raise Unavailable
                requests, tokens, live, spent, held, _ = await self.limiter.inspect(r)
            except (TimeoutError, Unavailable, *FAILURES):
                source = "local"
                requests, tokens, live, spent = self.local.spent(r)
                held = 0
            document: dict[str, Any] = {
                "scope": r.scope, "source": source,
                "requests_this_minute": requests, "tokens_this_minute": tokens,
                "in_flight": live,
                "rpm_limit": _limit(r.rpm), "tpm_limit": _limit(r.tpm),
                "max_parallel_requests": _limit(r.parallel),
            }  # fmt: skip
            if r.budget >= 0:
                start, end = period_bounds(r.period, now)
                document["budget"] = {
                    "max_budget": r.budget / 1e9,
                    "spent": spent / 1e9,
                    "held": held / 1e9,
                    "remaining": max(0, r.budget - spent - held) / 1e9,
                    "period_start": _iso(start),
                    "period_end": _iso(end),
                }
            out.append(document)
        return out

    def _refused(self, refusal: Refusal) -> Exception:
        rule_ = refusal.rule
        what = _describe(rule_)
        if refusal.reason == "unavailable":
            return ServiceUnavailable(
                f"The budget of {what} cannot be checked right now (its store is unreachable)"
                " and is set to refuse meanwhile; try again shortly.",
                code="budget_unavailable", headers={"retry-after": "1"},
            )  # fmt: skip
        if refusal.reason == "budget":
            _, end = period_bounds(rule_.period, time.time())
            headers = {"x-should-retry": "false"}
            if end is not None:
                seconds = max(1, math.ceil(end - time.time()))
                headers["retry-after"] = str(seconds)
                headers["retry-after-ms"] = str(seconds * 1000)
            until = " until its period ends" if end is not None else ""
            return BudgetExceeded(
                f"The budget of {what} (${rule_.budget / 1e9:g}) is spent{until}.",
                headers=headers,
            )
        if refusal.reason == "too_large":
            return RateLimited(
                f"This request may use more tokens than {what} allows per minute"
                f" ({rule_.tpm}); lower max_tokens or the input.",
                headers={"x-should-retry": "false"},
            )
        retry_ms = max(1, refusal.retry_after_ms)
        kinds = {"requests": "requests per minute", "tokens": "tokens per minute",
                 "parallel": "concurrent requests"}  # fmt: skip
        limit = {"requests": rule_.rpm, "tokens": rule_.tpm, "parallel": rule_.parallel}
        headers = {
            "retry-after": str(max(1, math.ceil(retry_ms / 1000))),
            "retry-after-ms": str(retry_ms),
        }
        if refusal.reason == "requests":
            headers.update(_window_headers("requests", rule_.rpm, 0, retry_ms))
        elif refusal.reason == "tokens":
            headers.update(_window_headers("tokens", rule_.tpm, 0, retry_ms))
        return RateLimited(
            f"Rate limit reached for {what}: {limit[refusal.reason]}"
            f" {kinds[refusal.reason]}. Try again in {retry_ms / 1000:.1f}s.",
            headers=headers,
        )


def window_headers(lease: Lease) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the tightest request and token windows."""
    windows = lease.windows
    chunk = lease.chunk
    spare_requests = spare_tokens = 0
    if chunk is not None:  # a borrowed chunk's unused part is still free for others
        windows = chunk.lease.windows  # type: ignore[attr-defined]
        spare_requests, spare_tokens = chunk.requests, chunk.tokens  # type: ignore[attr-defined]
    headers: dict[str, str] = {}
    requests = tokens = None
    for w in windows:
        if w.rule.rpm >= 0 and (requests is None or w.requests_left < requests.requests_left):
            requests = w
        if w.rule.tpm >= 0 and (tokens is None or w.tokens_left < tokens.tokens_left):
            tokens = w
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests.rule.rpm)
        headers["x-ratelimit-remaining-requests"] = str(
            max(0, requests.requests_left + spare_requests)
        )
        headers["x-ratelimit-reset-requests"] = _reset(requests.requests_reset_ms)
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens.rule.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tokens.tokens_left + spare_tokens))
        headers["x-ratelimit-reset-tokens"] = _reset(tokens.tokens_reset_ms)
    return headers


def _window_headers(kind: str, limit: int, remaining: int, reset_ms: int) -> dict[str, str]:
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": _reset(reset_ms),
    }


def _reset(ms: int) -> str:
    """OpenAI's form: `20ms`, `1.5s`, `6m0s` (to a tenth of a second, memoised)."""
    tenths = ms // 100
    found = _RESETS.get(tenths)
    if found is None:
        if ms < 1000:
            found = f"{max(tenths, 0) * 100}ms"
        elif ms < 60_000:
            found = f"{tenths / 10}s"
        else:
            found = f"{ms // 60_000}m{ms % 60_000 // 1000}s"
        if len(_RESETS) < 100_000:
            _RESETS[tenths] = found
    return found


_RESETS: dict[int, str] = {}


def _describe(rule_: Rule) -> str:
    kind, _, value = rule_.scope.partition(":")
    if value.startswith("~"):
        return f"this {kind}"
    return f"{kind} {value}"


def _limit(value: int) -> int | None:
    return None if value < 0 else value


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).isoformat()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value))[:256]
