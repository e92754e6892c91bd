"""Builds route trees from config: the YAML models and the x-gateway-config header alike.

Checks what the Structs cannot (exactly one kind of target, names that conditions refer to,
alias cycles) and resolves inheritance: retry, timeouts and breaker settings flow down the tree
until a node gives its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import msgspec

from gateway.config.errors import ConfigError
from gateway.config.routing import (
    DEFAULT_FALLBACK_STATUSES,
    AdmissionCfg,
    BreakerCfg,
    PartialTimeoutsCfg,
    RetryCfg,
    RouteCfg,
    StrategyCfg,
    TargetCfg,
)
from gateway.providers.base import ProviderAdapter, Timeouts
from gateway.routing.admission import Admission
from gateway.routing.conditions import compile_query
from gateway.routing.health import HealthRegistry
from gateway.routing.plan import Group, Leaf, Node, Route, Semantic, Target

ProviderLookup = Callable[[str, str], ProviderAdapter]  # (provider name, where) -> adapter
AliasLookup = Callable[[str, str], Node]  # (alias, where) -> that route's root


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where names in this tree resolve: providers, and other models' routes (aliases)."""

    providers: ProviderLookup
    aliases: AliasLookup


@dataclass(frozen=True, slots=True)
class _Inherited:
    retry: RetryCfg
    timeouts: PartialTimeoutsCfg
    breaker: BreakerCfg
    admission: AdmissionCfg | None = None


def _merge(base: PartialTimeoutsCfg, given: PartialTimeoutsCfg | None) -> PartialTimeoutsCfg:
    if given is None:
        return base
    changes = {
        f: getattr(given, f) for f in given.__struct_fields__ if getattr(given, f) is not None
    }
    return msgspec.structs.replace(base, **changes) if changes else base


def _apply(timeouts: Timeouts, partial: PartialTimeoutsCfg) -> Timeouts:
    return Timeouts(
        connect=partial.connect or timeouts.connect,
        first_byte=partial.first_byte or timeouts.first_byte,
        idle=partial.idle or timeouts.idle,
        total=partial.total or timeouts.total,
    )


class RouteBuilder:
    def __init__(
        self,
        providers: ProviderLookup,
        health: HealthRegistry,
        provider_admission: Mapping[str, AdmissionCfg | None],
    ) -> None:
        self._providers = providers
        self._health = health
        self._provider_admission = provider_admission
        self._admissions: dict[str, Admission] = {}

    def route(  # noqa: PLR0913 - the route, and where its names resolve
        self,
        name: str,
        cfg: RouteCfg,
        where: str,
        aliases: AliasLookup,
        *,
        providers: ProviderLookup | None = None,
        configured: bool = True,
    ) -> Route:
        scope = _Scope(providers or self._providers, aliases)
        inherited = _Inherited(
            retry=cfg.retry or RetryCfg(),
            timeouts=_merge(PartialTimeoutsCfg(), cfg.timeouts),
            breaker=cfg.breaker or BreakerCfg(),
        )
        root = self._group(cfg.strategy, cfg.targets, None, inherited, where, scope)
        if isinstance(root, Group) and root.mode == "single":
            root = root.children[0]  # one target needs no strategy node of its own
        overflow = None
        if cfg.on_context_overflow == "fallback":
            if cfg.context_fallback is None:
                raise ConfigError(
                    f"{where}.context_fallback: on_context_overflow: fallback needs a model"
                )
            overflow = scope.aliases(cfg.context_fallback, f"{where}.context_fallback")
        elif cfg.context_fallback is not None:
            raise ConfigError(
                f"{where}.context_fallback: only with on_context_overflow: fallback"
            )
        if cfg.shadow is not None and not configured:
            raise ConfigError(f"{where}.shadow: only in the config file")
        return Route(
            name, root, configured=configured, cache=cfg.cache, overflow=overflow,
            shadow=cfg.shadow,
        )  # fmt: skip

    def direct(self, name: str, provider: ProviderAdapter, model: str) -> Route:
        """A client-chosen `provider/model`: one leaf, no breaker (the names are unbounded)."""
        leaf = Leaf(
            Target(provider, model),
            name=None,
            override={},
            retry=RetryCfg(),
            timeouts=provider.timeouts,
            breaker=None,
            admission=self._admission(provider.name, self._provider_admission.get(provider.name)),
        )
        return Route(name, leaf, configured=False)

    def _admission(self, key: str, cfg: AdmissionCfg | None) -> Admission | None:
        if cfg is None:
            return None
        admission = self._admissions.get(key)
        if admission is None:
            admission = self._admissions[key] = Admission(cfg)
        return admission

    def _node(self, t: TargetCfg, inherited: _Inherited, where: str, scope: _Scope) -> Node:
        inherited = _Inherited(
            retry=t.retry or inherited.retry,
            timeouts=_merge(inherited.timeouts, t.timeouts),
            breaker=t.breaker or inherited.breaker,
            admission=t.admission,
        )
        kinds = [
            k
            for k, v in (("provider", t.provider), ("alias", t.alias), ("targets", t.targets))
            if v
        ]
        if len(kinds) != 1:
            raise ConfigError(
                f"{where}: a target needs exactly one of provider (with model), alias, or"
                f" strategy with targets; got {', '.join(kinds) or 'none'}"
            )
        if t.alias is not None:
            return scope.aliases(t.alias, f"{where}.alias")
        if t.targets is not None:
            return self._group(
                t.strategy or StrategyCfg(), t.targets, t.name, inherited, where, scope
            )
        if t.strategy is not None:
            raise ConfigError(f"{where}.strategy: only a target with targets has a strategy")
        if not t.model:
            raise ConfigError(f"{where}.model: required with provider")
        assert t.provider is not None
        provider = scope.providers(t.provider, f"{where}.provider")
        key = f"{provider.name}/{t.model}"
        admission_cfg = inherited.admission or self._provider_admission.get(provider.name)
        admission_key = key if inherited.admission else provider.name
        return Leaf(
            Target(provider, t.model),
            name=t.name,
            override=dict(t.override_params),
            retry=inherited.retry,
            timeouts=_apply(provider.timeouts, inherited.timeouts),
            breaker=self._health.breaker(key, inherited.breaker)
            if inherited.breaker.enabled
            else None,
            admission=self._admission(admission_key, admission_cfg),
            context_window=t.context_window,
            supports=frozenset(t.supports) if t.supports is not None else None,
        )

    def _group(  # noqa: PLR0913 - the pieces of one strategy node
        self,
        strategy: StrategyCfg,
        targets: list[TargetCfg],
        name: str | None,
        inherited: _Inherited,
        where: str,
        scope: _Scope,
    ) -> Node:
        if not targets:
            raise ConfigError(f"{where}.targets: at least one target is required")
        if len(targets) > 64:
            raise ConfigError(f"{where}.targets: at most 64 targets per node")
        if strategy.mode == "single" and len(targets) > 1:
            raise ConfigError(
                f"{where}.strategy.mode: 'single' takes one target, got {len(targets)}"
                " (use loadbalance, fallback, least-latency, least-busy or conditional)"
            )
        if all(t.weight == 0 for t in targets):
            raise ConfigError(f"{where}.targets: every weight is 0")
        children = [
            self._node(t, inherited, f"{where}.targets[{i}]", scope) for i, t in enumerate(targets)
        ]
        names = {t.name: i for i, t in enumerate(targets) if t.name}
        conditions = []
        for i, condition in enumerate(strategy.conditions):
            spot = f"{where}.strategy.conditions[{i}]"
            if condition.then not in names:
                raise ConfigError(f"{spot}.then: no target named {condition.then!r}")
            conditions.append(
                (compile_query(condition.query, f"{spot}.query"), names[condition.then])
            )
        default = None
        if strategy.default is not None:
            if strategy.default not in names:
                raise ConfigError(f"{where}.strategy.default: no target named {strategy.default!r}")
            default = names[strategy.default]
        if strategy.mode == "conditional" and not conditions and default is None:
            raise ConfigError(f"{where}.strategy: conditional mode needs conditions or a default")
        statuses = strategy.on_status_codes or DEFAULT_FALLBACK_STATUSES
        return Group(
            strategy.mode,
            children,
            [t.weight for t in targets],
            name=name,
            moves_on=frozenset(statuses),
            conditions=conditions,
            default=default,
            tiers=_tiers(strategy, names, where),
            semantic=_semantic(strategy, names, default, where),
            expected_output=strategy.expected_output_tokens,
        )


def _named(names: Mapping[str, int], target: str, spot: str) -> int:
    if target not in names:
        raise ConfigError(f"{spot}: no target named {target!r}")
    return names[target]


def _tiers(
    strategy: StrategyCfg, names: Mapping[str, int], where: str
) -> tuple[tuple[float | None, int], ...]:
    """complexity mode's tiers, lowest first; the last one takes every score left."""
    tiers = strategy.tiers
    if strategy.mode != "complexity":
        if tiers:
            raise ConfigError(f"{where}.strategy.tiers: only in complexity mode")
        return ()
    if len(tiers) < 2:
        raise ConfigError(f"{where}.strategy.tiers: complexity mode needs at least two tiers")
    bounds = [t.below for t in tiers[:-1] if t.below is not None]
    if len(bounds) < len(tiers) - 1 or tiers[-1].below is not None:
        raise ConfigError(
            f"{where}.strategy.tiers: every tier but the last needs `below`; the last has none"
        )
    if bounds != sorted(bounds):
        raise ConfigError(f"{where}.strategy.tiers: `below` must rise from tier to tier")
    return tuple(
        (t.below, _named(names, t.target, f"{where}.strategy.tiers[{i}].target"))
        for i, t in enumerate(tiers)
    )


def _semantic(
    strategy: StrategyCfg, names: Mapping[str, int], default: int | None, where: str
) -> Semantic | None:
    if strategy.mode != "semantic":
        if strategy.routes:
            raise ConfigError(f"{where}.strategy.routes: only in semantic mode")
        return None
    if not strategy.routes or default is None:
        raise ConfigError(f"{where}.strategy: semantic mode needs routes and a default target")
    routes = tuple(
        (r.name, tuple(r.examples), _named(names, r.target, f"{where}.strategy.routes[{i}].target"))
        for i, r in enumerate(strategy.routes)
    )
    return Semantic(routes, strategy.embedder, strategy.threshold)
