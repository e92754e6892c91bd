"""Vendors that speak OpenAI's protocol, with where they live and how they deviate from it."""

from typing import Final

from msgspec import Struct


class Preset(Struct, frozen=True, kw_only=True):
    base_url: str
    # Local servers need no key; hosted vendors are only offered when their key is set.
    requires_key: bool = True
    # Whether the vendor accepts stream_options.include_usage (the gateway asks for usage
    # on every stream to account for it, and hides the extra chunk from clients that did not).
    stream_usage: bool = True
    # Whether /embeddings honours encoding_format=base64; if not, the gateway asks for floats
    # and encodes them itself, because the openai SDK asks for base64 by default.
    embeddings_base64: bool = True
    completions: bool = True
    # Whether /v1/responses is the vendor's own (passed through); if not, it is translated.
    responses: bool = False

    def key_env(self, name: str) -> str:
        return f"{name.upper().replace('-', '_')}_API_KEY"

    def base_url_env(self, name: str) -> str:
        return f"{name.upper().replace('-', '_')}_BASE_URL"


PRESETS: Final[dict[str, Preset]] = {
    "openai": Preset(base_url="https://api.openai.com/v1", responses=True),
    "mistral": Preset(
        base_url="https://api.mistral.ai/v1",
        stream_usage=False,
        embeddings_base64=False,
        completions=False,
    ),
    "groq": Preset(base_url="https://api.groq.com/openai/v1", embeddings_base64=False),
    "together": Preset(base_url="https://api.together.xyz/v1", stream_usage=False),
    "deepseek": Preset(base_url="https://api.deepseek.com/v1", embeddings_base64=False),
    "fireworks": Preset(base_url="https://api.fireworks.ai/inference/v1", stream_usage=False),
    "openrouter": Preset(base_url="https://openrouter.ai/api/v1", embeddings_base64=False),
    "xai": Preset(base_url="https://api.x.ai/v1", embeddings_base64=False, completions=False),
    "ollama": Preset(
        base_url="http://localhost:11434/v1", requires_key=False, embeddings_base64=False
    ),
    "vllm": Preset(base_url="http://localhost:8000/v1", requires_key=False),
}

# For a provider declared as plain `type: openai-compatible`: assume the conservative subset.
GENERIC: Final = Preset(base_url="", requires_key=False, embeddings_base64=False)
