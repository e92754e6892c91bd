"""Exports the price catalog the gateway ships (gateway/metering/data/prices.json) from the
PyPI package genai-prices (MIT, Pydantic Services Inc.), for the providers the gateway routes
to. Run by `make prices`, at build time only: the gateway never imports genai-prices (130 ms,
32 MB, pydantic and an HTTP client) and never fetches prices. Refreshing prices is a
dependency bump plus a re-export, reviewed like code.

Kept per model: its match clauses (as genai-prices matches model names), context window, and
every price entry with its constraint (a start date, or a daily UTC window), each rate as an
exact decimal string in US dollars per million units, tiers as [threshold, rate] pairs; and
the prices of each service tier (priority, flex...) the same way.
"""

from __future__ import annotations

import datetime
import json
import sys
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "gateway" / "metering" / "data" / "prices.json"
# The genai-prices providers behind the gateway's adapters and presets.
PROVIDERS = (
    "openai", "azure", "anthropic", "google", "aws", "cohere", "mistral", "groq", "together",
    "deepseek", "fireworks", "openrouter", "x-ai",
)  # fmt: skip
RATES = (
    "input_mtok", "cache_read_mtok", "cache_write_mtok", "cache_write_1h_mtok", "output_mtok",
    "output_reasoning_mtok", "input_audio_mtok", "output_audio_mtok", "cache_audio_read_mtok",
)  # fmt: skip


def clause(node: Any) -> Any:
    kind = type(node).__name__
    if kind == "ClauseOr":
        return {"or": [clause(each) for each in node.or_]}
    if kind == "ClauseAnd":
        return {"and": [clause(each) for each in node.and_]}
    for field in ("equals", "starts_with", "ends_with", "contains", "regex"):
        if kind == "Clause" + "".join(part.title() for part in field.split("_")):
            return {field: getattr(node, field)}
    sys.exit(f"unknown clause {kind}")


def rate(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return {"base": str(value.base), "tiers": [[t.start, str(t.price)] for t in value.tiers]}


def rates(prices: Any) -> dict[str, Any]:
    return {k: rate(v) for k, v in prices.__dict__.items() if k in RATES and v is not None}


def constraint(node: Any) -> dict[str, str] | None:
    if node is None:
        return None
    if hasattr(node, "start_date"):
        return {"start_date": node.start_date.isoformat()}
    start, end = node.start_time, node.end_time
    for each in (start, end):
        if each.tzinfo not in (None, datetime.UTC) and each.utcoffset():
            sys.exit(f"a daily window not in UTC: {node}")
    return {"start_time": start.strftime("%H:%M:%S"), "end_time": end.strftime("%H:%M:%S")}


def entries(prices: Any) -> list[dict[str, Any]]:
    if isinstance(prices, list):
        return [{"when": constraint(c.constraint), "rates": rates(c.prices)} for c in prices]
    return [{"when": None, "rates": rates(prices)}]


def tiers(model: Any) -> dict[str, list[dict[str, Any]]]:
    """The model's prices per service tier (OpenAI's and Google's `service_tier`: priority,
    flex, ...), each as entries like the base prices'. Batch prices are left out: the gateway
    sends no batch requests."""
    out: dict[str, list[dict[str, Any]]] = {}
    for variant in model.price_variants or ():
        if set(variant.when) != {"service_tier"}:
            continue
        out.setdefault(variant.when["service_tier"], []).append(
            {"when": constraint(variant.constraint), "rates": rates(variant.prices)}
        )
    return out


def main() -> None:
    from genai_prices import data

    providers: dict[str, Any] = {}
    for provider in data.providers:
        if provider.id not in PROVIDERS:
            continue
        providers[provider.id] = {
            "api_pattern": provider.api_pattern,
            "fallback": [p for p in provider.fallback_model_providers or () if p in PROVIDERS],
            "models": [
                {
                    "id": model.id,
                    "match": clause(model.match),
                    "context_window": model.context_window,
                    "prices": entries(model.prices),
                    **({"tiers": t} if (t := tiers(model)) else {}),
                }
                for model in provider.models
            ],
        }
    missing = set(PROVIDERS) - set(providers)
    if missing:
        sys.exit(f"genai-prices has no {sorted(missing)}")
    catalog = {
        "source": "genai-prices",
        "version": version("genai-prices"),
        "license": "MIT License. Copyright (c) Pydantic Services Inc. 2025 to present.",
        "providers": providers,
    }
    OUT.write_text(json.dumps(catalog, separators=(",", ":"), sort_keys=True) + "\n")
    models = sum(len(p["models"]) for p in providers.values())
    print(f"{OUT.name}: {len(providers)} providers, {models} models, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
