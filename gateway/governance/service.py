"""Governance as serve builds it: the key registry, the limiter, and the governor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any

from gateway.config.schema import GatewayCfg, shared_redis_url
from gateway.governance.governor import Governor, Price
from gateway.governance.limiter import RedisLimiter
from gateway.governance.local import LocalLimiter
from gateway.governance.registry import KeyRegistry, team_rule
from gateway.governance.rules import Rule
from gateway.store import store_url
from gateway.store.keys import open_key_store


class Governance:
    """What serve builds for governance, started and stopped with the gateway."""

    def __init__(self, registry: KeyRegistry | None, governor: Governor) -> None:
        self.registry = registry
        self.governor = governor
        self._publisher: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether any request can fall under a key or a rule (else the stage is left out)."""
        return self.registry is not None or self.governor.has_rules

    async def limits_of(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        """For /v1/usage?key=…&team=…: each named key's and team's limits and their use."""
        registry = self.registry
        if registry is None:
            return []
        rules: list[Rule] = []
        for name, value in pairs:
            if name == "key":
                principal = registry.principal(value)
                if principal is not None:
                    rules += [r for r in principal.rules if r.scope.startswith("key:")]
            elif name == "team" and value in registry.teams:
                own = team_rule(registry.teams[value])
                if own is not None:
                    rules.append(own)
        return await self.governor.usage(rules) if rules else []

    async def budgets(self, limit: int = 50) -> list[dict[str, Any]]:
        """Budget use of every live key and every team with a budget (the dashboard's), the
        most spent first, at most `limit` of each."""
        registry = self.registry
        if registry is None:
            return []
        now = time.time()
        rules: list[Rule] = []
        names: dict[str, str] = {}
        for key in registry.keys.values():
            if key.max_budget is not None and key.live(now):
                principal = registry.principal(key.id)
                if principal is not None:
                    for r in principal.rules:
                        if r.scope.startswith("key:") and r.budget >= 0:
                            rules.append(r)
                            names[r.scope] = key.name or key.id
        for team in registry.teams.values():
            own = team_rule(team) if team.max_budget is not None else None
            if own is not None and own.budget >= 0:
                rules.append(own)
                names[own.scope] = team.name
        found = await self.governor.usage(rules) if rules else []
        out = []
        for document in found:
            if "budget" not in document:
                continue
            kind = "team" if document["scope"].startswith("team:") else "key"
            out.append({"kind": kind, "name": names.get(document["scope"], ""), **document})
        out.sort(key=lambda d: -float(d["budget"]["spent"]))
        keys = [d for d in out if d["kind"] == "key"][:limit]
        teams = [d for d in out if d["kind"] == "team"][:limit]
        return keys + teams

    async def start(self) -> None:
        self._publisher = asyncio.create_task(self._publish(), name="governance-metrics")
        if self.registry is not None:
            await self.registry.start()
        if self.governor.limiter is not None:
            await self.governor.limiter.start()

    async def _publish(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.governor.publish_metrics()

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
        self.governor.publish_metrics()
        if self.governor.pool is not None:
            self.governor.pool.stop()
        if self.governor.limiter is not None:
            await self.governor.limiter.stop()
        if self.registry is not None:
            await self.registry.stop()


def build_governance(cfg: GatewayCfg, env: Mapping[str, str], price: Price) -> Governance:
    gov = cfg.governance
    redis_url = gov.redis_url or shared_redis_url(cfg, env)
    local = LocalLimiter()
    local.share = cfg.server.workers if not redis_url else 1
    limiter = (
        RedisLimiter(redis_url, timeout_ms=gov.redis_timeout_ms, local=local) if redis_url else None
    )
    registry = None
    # Keys come from the file, or from the admin API (which needs the master key).
    if cfg.server.master_key or gov.keys:
        url = store_url(cfg.usage.store, env)
        store = open_key_store(url, env) if cfg.server.master_key else None
        registry = KeyRegistry(store, gov, redis_url)
    return Governance(registry, Governor(gov, limiter, local, price))


__all__ = ["Governance", "build_governance"]
