"""Prices from config: provider-specific entries, cached-input rates, and no price at all."""

from __future__ import annotations

import pytest

from gateway.api.usage import PromptTokensDetails, Usage
from gateway.config.schema import PriceCfg
from gateway.pricing import PriceBook

BOOK = PriceBook(
    {
        "openai/gpt-4o-mini": PriceCfg(input=0.15, output=0.6, cached_input=0.075),
        "gpt-4o-mini": PriceCfg(input=1, output=1),
        "claude-x": PriceCfg(input=3, output=15),
    }
)


def test_provider_entry_wins_and_cached_tokens_are_cheaper() -> None:
    usage = Usage(
        prompt_tokens=1000,
        completion_tokens=200,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=400),
    )
    expected = (600 * 0.15 + 400 * 0.075 + 200 * 0.6) / 1e6
    assert BOOK.cost("openai", "gpt-4o-mini", usage) == pytest.approx(expected)
    # Another provider serving the same model name falls back to the bare entry.
    assert BOOK.cost("azure", "gpt-4o-mini", usage) == pytest.approx(1200 / 1e6)


def test_cached_rate_defaults_to_input_and_unknown_models_cost_nothing_known() -> None:
    usage = Usage(
        prompt_tokens=100, prompt_tokens_details=PromptTokensDetails(cached_tokens=100)
    )
    assert BOOK.cost("anthropic", "claude-x", usage) == pytest.approx(300 / 1e6)
    assert BOOK.cost("openai", "gpt-unknown", usage) is None
    assert not PriceBook({})
