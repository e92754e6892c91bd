"""Provider adapters, looked up by kind in one registry; nothing else names a provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.config.errors import ConfigError
from gateway.config.schema import ProviderCfg, TimeoutsCfg
from gateway.providers.base import Endpoint, ProviderAdapter, Timeouts
from gateway.providers.openai import OpenAICompatible
from gateway.providers.presets import GENERIC, PRESETS, Preset

Factory = Callable[[str, ProviderCfg, Preset, Timeouts, Mapping[str, str]], ProviderAdapter]


def _openai_compatible(
    name: str, cfg: ProviderCfg, preset: Preset, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    api_key = cfg.api_key if cfg.api_key is not None else env.get(preset.key_env(name))
    base_url = cfg.base_url or env.get(preset.base_url_env(name)) or preset.base_url
    if not base_url:
        raise ConfigError(f"providers.{name}.base_url: required for type openai-compatible")
    return OpenAICompatible(
        name,
        base_url=base_url,
        api_key=api_key,
        preset=preset,
        timeouts=timeouts,
        headers=cfg.headers,
    )


# Adapter kinds; a preset name is also accepted as a kind (`type: groq`).
REGISTRY: dict[str, Factory] = {
    "openai-compatible": _openai_compatible,
}


def build_provider(
    name: str, cfg: ProviderCfg, defaults: TimeoutsCfg, env: Mapping[str, str]
) -> ProviderAdapter:
    kind = cfg.type or name
    t = cfg.timeouts or defaults
    timeouts = Timeouts(connect=t.connect, first_byte=t.first_byte, total=t.total)
    if kind in PRESETS:
        preset = PRESETS[kind]
        if preset.requires_key and not (cfg.api_key or env.get(preset.key_env(name))):
            raise ConfigError(f"providers.{name}.api_key: required (or set {preset.key_env(name)})")
        return _openai_compatible(name, cfg, preset, timeouts, env)
    factory = REGISTRY.get(kind)
    if factory is None:
        known = ", ".join(sorted({*REGISTRY, *PRESETS}))
        where = f"providers.{name}.type" if cfg.type else f"providers.{name}"
        raise ConfigError(f"{where}: unknown provider type {kind!r} (known: {known})")
    return factory(name, cfg, GENERIC, timeouts, env)


__all__ = ["REGISTRY", "Endpoint", "ProviderAdapter", "build_provider"]
