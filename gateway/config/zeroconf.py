"""Zero-config mode: a GatewayCfg built from <PROVIDER>_API_KEY / <PROVIDER>_BASE_URL variables."""

from collections.abc import Mapping

from gateway.config.schema import GatewayCfg, ProviderCfg
from gateway.providers.presets import PRESETS


def zero_config(env: Mapping[str, str]) -> GatewayCfg:
    providers: dict[str, ProviderCfg] = {}
    for name, preset in PRESETS.items():
        key = env.get(preset.key_env(name))
        if preset.requires_key and not key:
            continue
        providers[name] = ProviderCfg(api_key=key, base_url=env.get(preset.base_url_env(name)))
    from gateway.providers import zero_config_kinds  # config must not import providers eagerly

    for kind in zero_config_kinds(env):
        providers[kind] = ProviderCfg()
    return GatewayCfg(providers=providers, default_provider="openai")


def missing_keys_hint(env: Mapping[str, str]) -> str:
    """Every provider's variable, the OpenAI-compatible family's and the translated ones'
    (with what they need beside: AWS_REGION for Bedrock, the endpoint for Azure)."""
    from gateway.providers import REGISTRY  # config must not import providers eagerly

    names = [p.key_env(n) for n, p in PRESETS.items() if p.requires_key]
    unset = [n for n in names if not env.get(n)]
    for kind in REGISTRY.values():
        if kind.credentials:
            hint = " or ".join(kind.credentials)
            if kind.also:
                hint += f" (with {' or '.join(kind.also)})"
            unset.append(hint)
    return "set one of: " + ", ".join(unset)
