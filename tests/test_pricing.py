"""Prices: the shipped catalog against genai-prices' own calc_price (a golden table of models x
plain, cached, cache-write, tier-crossing and dated/time-of-day prices, within 1e-9 USD), the
operator's overrides, and never a silent $0."""

from __future__ import annotations

import datetime
from decimal import Decimal

import genai_prices
import pytest

from gateway.api.usage import CompletionTokensDetails, PromptTokensDetails, Usage
from gateway.config.schema import PriceCfg
from gateway.metering.prices import Catalog, Pricer, cost_femto, nanos, usd

CATALOG = Catalog()
MODELS = [
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "gpt-4.1"), ("openai", "o3"),
    ("openai", "o4-mini"), ("openai", "gpt-4o-2024-08-06"), ("anthropic", "claude-sonnet-4-20250514"),
    ("anthropic", "claude-opus-4-1"), ("anthropic", "claude-3-5-haiku"),
    ("google", "gemini-2.0-flash"), ("google", "gemini-2.5-pro"), ("google", "claude-sonnet-4@20250514"),
    ("cohere", "command-r-plus"), ("mistral", "mistral-large-latest"),
    ("groq", "llama-3.1-8b-instant"), ("deepseek", "deepseek-chat"), ("azure", "gpt-4o"),
    ("aws", "us.anthropic.claude-sonnet-4-20250514-v1:0"), ("x-ai", "grok-3"),
]  # fmt: skip
CASES = {  # input (all of it), cache read, cache write, output, reasoning
    "plain": (1000, 0, 0, 500, 0),
    "cached": (10_000, 4000, 0, 800, 0),
    "cache-write": (12_000, 2000, 3000, 100, 0),
    "tier-crossing": (250_000, 10_000, 0, 2000, 0),
    "reasoning": (3000, 0, 0, 5000, 3000),
}
TIMES = [
    datetime.datetime(2026, 12, 2, 10, 0, tzinfo=datetime.UTC),  # DeepSeek's peak window
    datetime.datetime(2026, 12, 2, 20, 0, tzinfo=datetime.UTC),  # off-peak
    datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC),  # before later price changes
]


def usage_of(case: tuple[int, int, int, int, int]) -> Usage:
    inp, read, write, out, reasoning = case
    return Usage(
        prompt_tokens=inp, completion_tokens=out,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=read, cache_write_tokens=write),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=reasoning),
    )  # fmt: skip


@pytest.mark.parametrize(("vendor", "model"), MODELS)
def test_catalog_prices_agree_with_genai_prices(vendor: str, model: str) -> None:
    price = CATALOG.lookup(vendor, model)
    assert price is not None, f"{vendor}/{model} not in the shipped catalog"
    for name, case in CASES.items():
        inp, read, write, out, reasoning = case
        extra = {"output_reasoning_tokens": reasoning} if reasoning else {}
        for at in TIMES:
            reference = genai_prices.calc_price(
                genai_prices.Usage(input_tokens=inp, cache_read_tokens=read,
                                   cache_write_tokens=write, output_tokens=out, **extra),
                model_ref=model, provider_id=vendor, genai_request_timestamp=at,
            )  # fmt: skip
            femto = cost_femto(price.rates_at(at), usage_of(case))
            assert femto is not None
            mine = Decimal(nanos(femto)) / 10**9
            assert abs(mine - reference.total_price) <= Decimal("1e-9"), (name, at, mine)


def test_tiers_are_cliffs_and_time_of_day_applies() -> None:
    gemini = CATALOG.lookup("google", "gemini-2.5-pro")
    assert gemini is not None
    at = TIMES[0]
    small = cost_femto(gemini.rates_at(at), Usage(prompt_tokens=200_000, completion_tokens=0))
    big = cost_femto(gemini.rates_at(at), Usage(prompt_tokens=200_001, completion_tokens=0))
    assert small is not None and big is not None and big > 1.9 * small  # every token repriced
    deepseek = CATALOG.lookup("deepseek", "deepseek-chat")
    assert deepseek is not None
    one = Usage(prompt_tokens=1_000_000, completion_tokens=0)
    assert cost_femto(deepseek.rates_at(TIMES[0]), one) == 2 * cost_femto(deepseek.rates_at(TIMES[1]), one)  # type: ignore[operator]


def test_unknown_models_have_no_price_never_zero() -> None:
    pricer = Pricer(CATALOG, {})
    assert pricer.price("openai", "openai", "gpt-ok") is None
    assert pricer.price("local", None, "llama-3") is None
    assert CATALOG.vendor_of("openai-compatible", "https://api.groq.com/openai/v1") == "groq"
    assert CATALOG.vendor_of("openai-compatible", "http://127.0.0.1:8000/v1") is None


def test_overrides_win_and_base_model_prices_deployments() -> None:
    pricer = Pricer(CATALOG, {
        "openai/gpt-4o-mini": PriceCfg(input=0.15, output=0.6, cached_input=0.075),
        "gpt-4o-mini": PriceCfg(input=1, output=1),
        "azure-east/my-deployment": PriceCfg(base_model="gpt-4o"),
        "claude-x": PriceCfg(input=3, output=15),
    })  # fmt: skip
    usage = Usage(
        prompt_tokens=1000, completion_tokens=200,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=400),
    )  # fmt: skip
    mine = pricer.price("openai", "openai", "gpt-4o-mini")
    assert mine is not None and mine.id == "override/openai/gpt-4o-mini"
    femto = cost_femto(mine.rates_at(TIMES[0]), usage)
    assert femto is not None and nanos(femto) == round((600 * 0.15 + 400 * 0.075 + 200 * 0.6) * 1000)
    other = pricer.price("groq", "groq", "gpt-4o-mini")  # another provider: the bare entry
    assert other is not None and other.id == "override/gpt-4o-mini"
    deployment = pricer.price("azure-east", "azure", "my-deployment")
    assert deployment is not None and deployment.id == "openai/gpt-4o"  # azure falls back to openai
    served = pricer.price("openai", "openai", "gpt-4o", served="gpt-4o-2024-08-06")
    assert served is not None and served.id == "openai/gpt-4o"


def test_money_is_decimal_text() -> None:
    assert usd(5625) == "0.000005625"
    assert usd(1_500_000_000) == "1.5"
    assert usd(0) == "0.0"
    with pytest.raises(ValueError):
        PriceCfg(input=1)


def test_hour_long_cache_writes_are_priced_at_their_own_rate() -> None:
    """Anthropic's `cache_creation` split: an hour's cache write costs 2x input where five
    minutes cost 1.25x; the gateway prices each part at its rate (genai-prices' Usage has
    one cache-write count, priced at the 5-minute rate, so the reference adds the difference)."""
    from gateway.api import anthropic as wire
    from gateway.providers.anthropic.response import to_openai_usage

    at = TIMES[0]
    rates = CATALOG.lookup("anthropic", "claude-sonnet-4-20250514").rates_at(at)  # type: ignore[union-attr]
    assert rates.cache_write_1h is not None and rates.cache_write_1h > rates.cache_write  # type: ignore[operator]
    usage = to_openai_usage(wire.Usage(
        input_tokens=7000, output_tokens=100, cache_read_input_tokens=2000,
        cache_creation_input_tokens=3000,
        cache_creation=wire.CacheCreation(ephemeral_5m_input_tokens=2000, ephemeral_1h_input_tokens=1000),
    ))  # fmt: skip
    assert usage.prompt_tokens == 12_000 and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cache_write_1h_tokens == 1000
    reference = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=12_000, cache_read_tokens=2000, cache_write_tokens=3000, output_tokens=100),
        model_ref="claude-sonnet-4-20250514", provider_id="anthropic", genai_request_timestamp=at,
    ).total_price  # fmt: skip
    extra = Decimal(1000 * (rates.cache_write_1h - rates.cache_write)) / 10**15  # type: ignore[operator]
    femto = cost_femto(rates, usage)
    assert femto is not None
    assert abs(Decimal(nanos(femto)) / 10**9 - (reference + extra)) <= Decimal("1e-9")
    # A price with no hour rate pays the 5-minute rate, as before.
    no_hour = Pricer(CATALOG, {"m": PriceCfg(input=3, output=15, cache_write=3.75)}).price("x", None, "m")
    assert no_hour is not None
    plain = cost_femto(no_hour.rates_at(at), usage)
    assert plain == (7000 * 3 + 2000 * 3 + 3000 * 3.75 + 100 * 15) * 10**9  # femto-dollars a token per $1/M


def test_service_tiers_are_priced_as_genai_prices_prices_them() -> None:
    """OpenAI's priority and flex tiers cost other rates (priority about twice): the catalog
    keeps each tier's prices, and a usage served at a tier costs what genai-prices says, at
    every time (a tier whose prices start later costs the model's own before)."""
    checked = 0
    for model in ("gpt-4o", "gpt-4.1", "o3", "gpt-5", "o4-mini"):
        price = CATALOG.lookup("openai", model)
        assert price is not None
        for tier in ("priority", "flex"):
            if tier not in price.tiers:
                continue
            for at in TIMES:
                reference = genai_prices.calc_price(
                    genai_prices.Usage(input_tokens=10_000, cache_read_tokens=4000, output_tokens=800),
                    model_ref=model, provider_id="openai", genai_request_timestamp=at,
                    price_context={"service_tier": tier},
                ).total_price  # fmt: skip
                rates = price.tier_rates(tier, at) or price.rates_at(at)
                femto = cost_femto(rates, usage_of(CASES["cached"]))
                assert femto is not None
                assert abs(Decimal(nanos(femto)) / 10**9 - reference) <= Decimal("1e-9"), (model, tier, at)
                checked += 1
    assert checked >= 6


def test_an_odd_service_tier_never_costs_the_usage_beside_it() -> None:
    from gateway.api.usage import USAGE_DECODER

    for tier in (b"5", b'{"x": 1}', b"null", b'"' + b"t" * 40 + b'"'):
        view = USAGE_DECODER.decode(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}, "service_tier": ' + tier + b"}")
        assert view.found() is not None and view.tier() is None
    assert USAGE_DECODER.decode(b'{"service_tier": "priority"}').tier() == "priority"
