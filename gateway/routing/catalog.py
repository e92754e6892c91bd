"""Resolves the `model` a client sends to a Route: a configured alias, a route sent in the
x-gateway-config header, or `provider/model`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.errors import ConfigError
from gateway.config.routing import RouteCfg
from gateway.config.schema import GatewayCfg, ProviderCfg
from gateway.errors import ModelNotFound
from gateway.providers import build_provider, credentials_hint, zero_config_kinds
from gateway.providers.base import ProviderAdapter
from gateway.providers.presets import PRESETS
from gateway.routing.build import RouteBuilder
from gateway.routing.health import HealthRegistry
from gateway.routing.plan import Group, Node, Route

_MAX_DIRECT = 1024


@dataclass(frozen=True, slots=True)
class ModelInfo:
    id: str
    owned_by: str


class Catalog:
    def __init__(
        self,
        providers: Mapping[str, ProviderAdapter],
        routes: Mapping[str, Route],
        default_provider: str | None,
        builder: RouteBuilder,
        health: HealthRegistry,
    ) -> None:
        self.providers = dict(providers)
        self._routes = dict(routes)
        self._default = default_provider
        self._builder = builder
        self.health = health
        # Routes for client-chosen names (`provider/model`, or any name on the default
        # provider) are built once per name, not once per request; the names are unbounded, so
        # the memo is too, by clearing it when full.
        self._direct: dict[str, Route] = {}

    def resolve(self, name: str) -> Route:
        route = self._routes.get(name) or self._direct.get(name)
        if route is not None:
            return route
        route = self._resolve_direct(name)
        if len(self._direct) >= _MAX_DIRECT:
            self._direct.clear()
        self._direct[name] = route
        return route

    def _resolve_direct(self, name: str) -> Route:
        prefix, slash, rest = name.partition("/")
        if slash and rest:
            provider = self.providers.get(prefix)
            if provider is not None:
                return self._builder.direct(name, provider, rest)
            hint = credentials_hint(prefix) if self._default is not None else None
            if hint is not None:
                raise _not_found(name, f" Provider {prefix!r} is not configured: set {hint}.")
        if self._default is not None:
            provider = self.providers.get(self._default)
            if provider is not None:
                return self._builder.direct(name, provider, name)
            hint = PRESETS[self._default].key_env(self._default) if self._default in PRESETS else ""
            raise _not_found(
                name, f" No provider is configured for it: set {hint}." if hint else ""
            )
        raise _not_found(name, "")

    def build(self, name: str, cfg: RouteCfg, where: str) -> Route:
        """A route sent by a client: it may use configured providers and aliases only."""

        def provider(provider_name: str, spot: str) -> ProviderAdapter:
            adapter = self.providers.get(provider_name)
            if adapter is None:
                raise ConfigError(f"{spot}: {provider_name!r} is not a configured provider")
            return adapter

        def alias(alias_name: str, spot: str) -> Node:
            route = self._routes.get(alias_name)
            if route is None:
                raise ConfigError(f"{spot}: no model named {alias_name!r}")
            return route.root

        return self._builder.route(name, cfg, where, alias, providers=provider, configured=False)

    def semantic_embedders(self) -> set[str]:
        """The embedders that configured semantic routes name."""
        names = set()
        for route in self._routes.values():
            stack: list[Node] = [route.root]
            while stack:
                node = stack.pop()
                if isinstance(node, Group):
                    if node.semantic is not None:
                        names.add(node.semantic.embedder)
                    stack.extend(node.children)
        return names

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=name, owned_by="gateway") for name in self._routes]

    def lookup(self, name: str) -> ModelInfo | None:
        """A model for GET /v1/models/{id}: whatever `resolve` serves, by the same decision, so
        the models route never disagrees with chat completions."""
        if name in self._routes:
            return ModelInfo(id=name, owned_by="gateway")
        try:
            route = self.resolve(name)
        except ModelNotFound:
            return None
        providers = {leaf.target.provider.name for leaf in route.leaves()}
        return ModelInfo(id=name, owned_by=providers.pop() if len(providers) == 1 else "gateway")


def _not_found(name: str, hint: str) -> ModelNotFound:
    return ModelNotFound(
        f"The model `{name}` does not exist or you do not have access to it.{hint}",
        param="model",
    )


def build_catalog(cfg: GatewayCfg, env: Mapping[str, str], health: HealthRegistry) -> Catalog:
    """Phase two of loading config: providers built, routes built, cross-references checked."""
    providers = {
        name: build_provider(name, pcfg, cfg.timeouts, env) for name, pcfg in cfg.providers.items()
    }

    def provider(name: str, where: str) -> ProviderAdapter:
        adapter = providers.get(name)
        if adapter is None:
            adapter = providers[name] = _implicit_provider(name, cfg, env, where)
        return adapter

    admission = {name: pcfg.admission for name, pcfg in cfg.providers.items()}
    builder = RouteBuilder(provider, health, admission)
    models = {model.name: i for i, model in enumerate(cfg.models)}
    routes: dict[str, Route] = {}
    building: set[str] = set()

    def build(name: str) -> Route:
        i = models[name]
        building.add(name)
        routes[name] = builder.route(name, cfg.models[i], f"models[{i}]", alias)
        building.discard(name)
        return routes[name]

    def alias(name: str, where: str) -> Node:
        if name in routes:
            return routes[name].root
        if name not in models:
            raise ConfigError(f"{where}: no model named {name!r}")
        if name in building:
            raise ConfigError(f"{where}: {name!r} refers back to itself through aliases")
        return build(name).root

    for name in models:
        if name not in routes:
            build(name)
    default = cfg.default_provider
    if default is not None and default not in PRESETS and default not in providers:
        raise ConfigError(f"default_provider: {default!r} is not a declared provider")
    return Catalog(providers, routes, cfg.default_provider, builder, health)


def _implicit_provider(
    name: str, cfg: GatewayCfg, env: Mapping[str, str], where: str
) -> ProviderAdapter:
    """A target may name a known provider ("groq", "anthropic") without declaring it, if its
    credentials are in the environment."""
    hint = credentials_hint(name)
    if hint is None:
        raise ConfigError(f"{where}: {name!r} is not declared under providers")
    preset = PRESETS.get(name)
    enabled = (
        not preset.requires_key or bool(env.get(preset.key_env(name)))
        if preset is not None
        else name in zero_config_kinds(env)
    )
    if not enabled:
        raise ConfigError(
            f"{where}: {name!r} is not declared under providers and {hint} is not set"
        )
    return build_provider(name, ProviderCfg(), cfg.timeouts, env)
