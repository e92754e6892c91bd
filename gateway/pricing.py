"""What tokens cost, from the operator's config: `pricing: {"openai/gpt-4o-mini": {input: 0.15,
output: 0.6}}`, in US dollars per million tokens. There is no built-in price list: prices change
and a stale one is worse than none, and nothing is fetched at run time."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.api.usage import Usage
from gateway.config.schema import PriceCfg

_PER_TOKEN = 1e-6


class PriceBook:
    def __init__(self, prices: Mapping[str, PriceCfg]) -> None:
        self._prices = dict(prices)

    def __bool__(self) -> bool:
        return bool(self._prices)

    def price(self, provider: str, model: str) -> PriceCfg | None:
        """A "provider/model" entry wins over a bare model name (the same model can cost
        differently at two providers)."""
        return self._prices.get(f"{provider}/{model}") or self._prices.get(model)

    def cost(self, provider: str, model: str, usage: Usage) -> float | None:
        price = self.price(provider, model)
        if price is None:
            return None
        cached = usage.cached_tokens
        cached_rate = price.cached_input if price.cached_input is not None else price.input
        fresh = max(usage.prompt_tokens - cached, 0)
        output = usage.completion_tokens * price.output
        return (fresh * price.input + cached * cached_rate + output) * _PER_TOKEN
