"""Provider adapters, looked up by kind in one registry; nothing else names a provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

from gateway.config.errors import ConfigError
from gateway.config.routing import TimeoutsCfg
from gateway.config.schema import ProviderCfg
from gateway.providers.base import Endpoint, ProviderAdapter, Timeouts
from gateway.providers.openai import OpenAICompatible
from gateway.providers.presets import GENERIC, PRESETS, Preset

Factory = Callable[[str, ProviderCfg, Timeouts, Mapping[str, str]], ProviderAdapter]


class Kind(NamedTuple):
    """An adapter kind with its own protocol (not a preset of the OpenAI dialect)."""

    factory: Factory
    # The variables that, when set, enable this kind in zero-config mode (any one suffices).
    credentials: tuple[str, ...]
    # Further variables of which one must also be set (an endpoint, a region...).
    also: tuple[str, ...] = ()


def _openai_compatible(  # noqa: PLR0913
    name: str,
    cfg: ProviderCfg,
    preset: Preset,
    timeouts: Timeouts,
    env: Mapping[str, str],
    vendor: str = "",
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
        vendor=vendor,
    )


def _generic(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    return _openai_compatible(name, cfg, GENERIC, timeouts, env)


def _anthropic(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    from gateway.providers.anthropic import DEFAULT_BASE_URL, Anthropic

    api_key = cfg.api_key if cfg.api_key is not None else env.get("ANTHROPIC_API_KEY")
    if not api_key:
        raise ConfigError(f"providers.{name}.api_key: required (or set ANTHROPIC_API_KEY)")
    return Anthropic(
        name,
        base_url=cfg.base_url or env.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL,
        api_key=api_key,
        timeouts=timeouts,
        headers=cfg.headers,
    )


def _gemini(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    from gateway.providers.gemini import DEFAULT_BASE_URL, Gemini

    # google-genai reads GEMINI_API_KEY, then GOOGLE_API_KEY.
    api_key = cfg.api_key or env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY")
    if not api_key:
        raise ConfigError(f"providers.{name}.api_key: required (or set GEMINI_API_KEY)")
    return Gemini(
        name,
        base_url=cfg.base_url or env.get("GEMINI_BASE_URL") or DEFAULT_BASE_URL,
        api_key=api_key,
        timeouts=timeouts,
        headers=cfg.headers,
    )


def _azure(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    from gateway.providers.azure import AzureOpenAI

    # The names openai's AzureOpenAI client reads, and the gateway's own AZURE_* pair.
    api_key = cfg.api_key or env.get("AZURE_OPENAI_API_KEY") or env.get("AZURE_API_KEY")
    endpoint = cfg.base_url or env.get("AZURE_OPENAI_ENDPOINT") or env.get("AZURE_BASE_URL")
    if not endpoint:
        raise ConfigError(
            f"providers.{name}.base_url: required for Azure (or set AZURE_OPENAI_ENDPOINT)"
        )
    if not api_key:
        raise ConfigError(f"providers.{name}.api_key: required (or set AZURE_OPENAI_API_KEY)")
    return AzureOpenAI(
        name,
        endpoint=endpoint,
        api_key=api_key,
        api_version=(
            cfg.api_version or env.get("OPENAI_API_VERSION") or env.get("AZURE_API_VERSION")
        ),
        timeouts=timeouts,
        headers=cfg.headers,
    )


def _cohere(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    from gateway.providers.cohere import DEFAULT_BASE_URL, Cohere

    # The cohere SDK reads CO_API_KEY and CO_API_URL; COHERE_* are accepted too.
    api_key = cfg.api_key or env.get("COHERE_API_KEY") or env.get("CO_API_KEY")
    if not api_key:
        raise ConfigError(f"providers.{name}.api_key: required (or set COHERE_API_KEY)")
    base_url = cfg.base_url or env.get("COHERE_BASE_URL") or env.get("CO_API_URL")
    return Cohere(
        name,
        base_url=base_url or DEFAULT_BASE_URL,
        api_key=api_key,
        timeouts=timeouts,
        headers=cfg.headers,
    )


def _bedrock(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    from gateway.providers.bedrock import Bedrock, SigV4Signer

    region = cfg.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    base_url = (
        cfg.base_url
        or env.get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")  # boto3's per-service endpoint variable
        or env.get("BEDROCK_BASE_URL")
        or (f"https://bedrock-runtime.{region}.amazonaws.com" if region else None)
    )
    if not base_url or not region:
        raise ConfigError(f"providers.{name}.region: required for Bedrock (or set AWS_REGION)")
    token = cfg.api_key or env.get("AWS_BEARER_TOKEN_BEDROCK")
    if token:
        return Bedrock(
            name, base_url=base_url, timeouts=timeouts, api_key=token, headers=cfg.headers
        )
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not (access and secret):
        raise ConfigError(
            f"providers.{name}: Bedrock needs AWS_BEARER_TOKEN_BEDROCK, or AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY"
        )
    signer = SigV4Signer(access, secret, env.get("AWS_SESSION_TOKEN"), region)
    return Bedrock(name, base_url=base_url, timeouts=timeouts, signer=signer, headers=cfg.headers)


def _vertex(
    name: str, cfg: ProviderCfg, timeouts: Timeouts, env: Mapping[str, str]
) -> ProviderAdapter:
    from gateway.providers.vertex import ServiceAccountToken, VertexAI

    path = cfg.credentials_file or env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        raise ConfigError(
            f"providers.{name}.credentials_file: required for Vertex AI"
            " (or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file)"
        )
    token = ServiceAccountToken(path)
    project = (
        cfg.project
        or env.get("GOOGLE_CLOUD_PROJECT")
        or env.get("VERTEXAI_PROJECT")
        or token.project_id
    )
    if not project:
        raise ConfigError(f"providers.{name}.project: required (or set GOOGLE_CLOUD_PROJECT)")
    location = (
        cfg.region
        or env.get("GOOGLE_CLOUD_LOCATION")
        or env.get("VERTEXAI_LOCATION")
        or "us-central1"
    )
    return VertexAI(
        name,
        project=project,
        location=location,
        credentials=token,
        timeouts=timeouts,
        base_url=cfg.base_url or env.get("VERTEX_BASE_URL"),
    )


REGISTRY: dict[str, Kind] = {
    "openai-compatible": Kind(_generic, ()),
    "anthropic": Kind(_anthropic, ("ANTHROPIC_API_KEY",)),
    "gemini": Kind(_gemini, ("GEMINI_API_KEY", "GOOGLE_API_KEY")),
    "bedrock": Kind(
        _bedrock,
        ("AWS_BEARER_TOKEN_BEDROCK", "AWS_ACCESS_KEY_ID"),
        also=("AWS_REGION", "AWS_DEFAULT_REGION"),
    ),
    "vertex": Kind(_vertex, ("GOOGLE_APPLICATION_CREDENTIALS",)),
    "cohere": Kind(_cohere, ("COHERE_API_KEY", "CO_API_KEY")),
    "azure": Kind(
        _azure,
        ("AZURE_OPENAI_API_KEY", "AZURE_API_KEY"),
        also=("AZURE_OPENAI_ENDPOINT", "AZURE_BASE_URL"),
    ),
}


def credentials_hint(kind: str) -> str | None:
    """What to set to enable a provider kind by name, for error messages."""
    if kind in PRESETS:
        return PRESETS[kind].key_env(kind)
    native = REGISTRY.get(kind)
    if native is None or not native.credentials:
        return None
    return " or ".join(native.credentials)


def zero_config_kinds(env: Mapping[str, str]) -> list[str]:
    """Native kinds whose credentials are in the environment."""
    return [
        kind
        for kind, native in REGISTRY.items()
        if native.credentials
        and any(env.get(var) for var in native.credentials)
        and (not native.also or any(env.get(var) for var in native.also))
    ]


def build_provider(
    name: str, cfg: ProviderCfg, defaults: TimeoutsCfg, env: Mapping[str, str]
) -> ProviderAdapter:
    kind = cfg.type or name
    t = cfg.timeouts or defaults
    timeouts = Timeouts(connect=t.connect, first_byte=t.first_byte, idle=t.idle, total=t.total)
    if kind in PRESETS:
        preset = PRESETS[kind]
        if preset.requires_key and not (cfg.api_key or env.get(preset.key_env(name))):
            raise ConfigError(f"providers.{name}.api_key: required (or set {preset.key_env(name)})")
        return _openai_compatible(name, cfg, preset, timeouts, env, vendor=kind)
    native = REGISTRY.get(kind)
    if native is None:
        known = ", ".join(sorted({*REGISTRY, *PRESETS}))
        where = f"providers.{name}.type" if cfg.type else f"providers.{name}"
        raise ConfigError(f"{where}: unknown provider type {kind!r} (known: {known})")
    return native.factory(name, cfg, timeouts, env)


__all__ = ["REGISTRY", "Endpoint", "ProviderAdapter", "build_provider", "credentials_hint"]
