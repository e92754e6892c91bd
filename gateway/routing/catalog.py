"""Resolves the `model` a client sends to a Route: a configured alias, or `provider/model`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config.errors import ConfigError
from gateway.config.schema import GatewayCfg, ProviderCfg
from gateway.errors import ModelNotFound
from gateway.providers import build_provider, credentials_hint, zero_config_kinds
from gateway.providers.base import ProviderAdapter
from gateway.providers.presets import PRESETS
from gateway.routing.route import Route, Target


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
    ) -> None:
        self.providers = dict(providers)
        self._routes = dict(routes)
        self._default = default_provider

    def resolve(self, name: str) -> Route:
        route = self._routes.get(name)
        if route is not None:
            return route
        prefix, slash, rest = name.partition("/")
        if slash and rest:
            provider = self.providers.get(prefix)
            if provider is not None:
                return Route(name, [Target(provider, rest)], configured=False)
            hint = credentials_hint(prefix) if self._default is not None else None
            if hint is not None:
                raise _not_found(name, f" Provider {prefix!r} is not configured: set {hint}.")
        if self._default is not None:
            provider = self.providers.get(self._default)
            if provider is not None:
                return Route(name, [Target(provider, name)], configured=False)
            hint = PRESETS[self._default].key_env(self._default) if self._default in PRESETS else ""
            raise _not_found(
                name, f" No provider is configured for it: set {hint}." if hint else ""
            )
        raise _not_found(name, "")

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(id=name, owned_by="gateway") for name in self._routes]

    def lookup(self, name: str) -> ModelInfo | None:
        """A model for GET /v1/models/{id}: an alias, or a direct name of a configured provider."""
        if name in self._routes:
            return ModelInfo(id=name, owned_by="gateway")
        prefix, slash, rest = name.partition("/")
        if slash and rest and prefix in self.providers:
            return ModelInfo(id=name, owned_by=prefix)
        return None


def _not_found(name: str, hint: str) -> ModelNotFound:
    return ModelNotFound(
        f"The model `{name}` does not exist or you do not have access to it.{hint}",
        param="model",
    )


def build_catalog(cfg: GatewayCfg, env: Mapping[str, str]) -> Catalog:
    """Phase two of loading config: providers built, cross-references checked."""
    providers = {
        name: build_provider(name, pcfg, cfg.timeouts, env) for name, pcfg in cfg.providers.items()
    }
    routes: dict[str, Route] = {}
    for i, model in enumerate(cfg.models):
        targets = []
        for j, tcfg in enumerate(model.targets):
            provider = providers.get(tcfg.provider)
            if provider is None:
                provider = _implicit_provider(tcfg.provider, cfg, env, f"models[{i}].targets[{j}]")
                providers[tcfg.provider] = provider
            targets.append(Target(provider, tcfg.model))
        weights = [t.weight for t in model.targets]
        routes[model.name] = Route(model.name, targets, weights)
    default = cfg.default_provider
    if default is not None and default not in PRESETS and default not in providers:
        raise ConfigError(f"default_provider: {default!r} is not a declared provider")
    return Catalog(providers, routes, cfg.default_provider)


def _implicit_provider(
    name: str, cfg: GatewayCfg, env: Mapping[str, str], where: str
) -> ProviderAdapter:
    """A target may name a known provider ("groq", "anthropic") without declaring it, if its
    credentials are in the environment."""
    hint = credentials_hint(name)
    if hint is None:
        raise ConfigError(f"{where}.provider: {name!r} is not declared under providers")
    preset = PRESETS.get(name)
    enabled = (
        not preset.requires_key or bool(env.get(preset.key_env(name)))
        if preset is not None
        else name in zero_config_kinds(env)
    )
    if not enabled:
        raise ConfigError(
            f"{where}.provider: {name!r} is not declared under providers and {hint} is not set"
        )
    return build_provider(name, ProviderCfg(), cfg.timeouts, env)
