"""Token usage as OpenAI reports it, and narrow views that read only usage out of a body."""

from typing import Any

import msgspec
from msgspec import Raw, Struct


class PromptTokensDetails(Struct, kw_only=True, omit_defaults=True):
    cached_tokens: int = 0
    cache_write_tokens: int = 0  # all cache writes, of which
    cache_write_1h_tokens: int = 0  # those kept for an hour (Anthropic prices them apart)
    audio_tokens: int = 0

    @property
    def hour_writes(self) -> int:
        """The hour-long cache writes, never more than the cache writes they are part of."""
        return min(self.cache_write_1h_tokens, self.cache_write_tokens)


class CompletionTokensDetails(Struct, kw_only=True, omit_defaults=True):
    reasoning_tokens: int = 0
    audio_tokens: int = 0


class Usage(Struct, kw_only=True):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cached_tokens(self) -> int:
        details = self.prompt_tokens_details
        return details.cached_tokens if details is not None else 0


class _VendorUsage(Struct):
    usage: Usage | None = None


class UsageView(Struct):
    """A response or chunk body seen only for its usage (Groq also nests it in `x_groq`)."""

    usage: Usage | None = None
    x_groq: _VendorUsage | None = None
    choices: list[Raw] | None = None
    model: str | None = None  # what the provider says served (a dated id), for pricing
    # and at which tier (OpenAI's priority, flex), likewise; any JSON value, so that a vendor's
    # odd one never costs the usage beside it (tier() keeps strings only)
    service_tier: Any = None

    def tier(self) -> str | None:
        tier = self.service_tier
        return tier if isinstance(tier, str) and len(tier) <= 32 else None

    def found(self) -> Usage | None:
        if self.usage is not None:
            return self.usage
        return self.x_groq.usage if self.x_groq is not None else None


USAGE_DECODER = msgspec.json.Decoder(UsageView)
