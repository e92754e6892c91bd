"""What a request cost: the shipped price catalog (data/prices.json, exported from genai-prices
by `make prices`), the operator's overrides, and the arithmetic.

Money is an integer inside: rates are femto-dollars (1e-15 USD) per token, totals are rounded
to nano-dollars (1e-9 USD) once. Nothing is ever priced at a silent $0: a model the catalog
and the overrides do not know has cost None, and the caller records it as unpriced.

Lookups follow genai-prices: a model name is lower-cased and matched against each model's
clauses in the provider's list, then in its fallback providers' (Azure falls back to OpenAI's),
then again with a compact date suffix (-20251211) written the dashed way. Results, misses
included, are remembered per (vendor, name), so the request path pays a dict lookup.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from gateway.api.usage import Usage
from gateway.config.schema import PriceCfg

DATA = Path(__file__).resolve().parent / "data" / "prices.json"
FEMTO_PER_MTOK = Decimal(10) ** 9  # $1 per million tokens = 1e9 femto-dollars per token
FEMTO_PER_NANO = 1_000_000
_MEMO_LIMIT = 4096

# Gateway adapter vendors whose genai-prices provider id differs.
VENDOR_IDS = {"xai": "x-ai", "gemini": "google", "vertex": "google", "bedrock": "aws"}


class Tiered(NamedTuple):
    """A cliff tier: once the request's input passes `start`, every token pays `rate`."""

    base: int
    tiers: tuple[tuple[int, int], ...]

    def at(self, input_tokens: int) -> int:
        for start, rate in reversed(self.tiers):
            if input_tokens > start:
                return rate
        return self.base


Rate = int | Tiered | None


class Rates(NamedTuple):
    """Femto-dollars per token of each kind; None where the model has no separate price."""

    input: Rate
    output: Rate
    cache_read: Rate = None
    cache_write: Rate = None
    cache_write_1h: Rate = None
    reasoning: Rate = None
    input_audio: Rate = None
    output_audio: Rate = None


class _When(msgspec.Struct):
    start_date: str | None = None
    start_time: str | None = None
    end_time: str | None = None


class _TieredRate(msgspec.Struct):
    base: str
    tiers: list[tuple[int, str]]


class _Entry(msgspec.Struct):
    when: _When | None
    rates: dict[str, str | _TieredRate]


class _Model(msgspec.Struct):
    id: str
    match: Any
    context_window: int | None
    prices: list[_Entry]
    tiers: dict[str, list[_Entry]] = {}  # by service tier: priority, flex, ...


class _Provider(msgspec.Struct):
    api_pattern: str
    fallback: list[str]
    models: list[_Model]


class _Catalog(msgspec.Struct):
    source: str
    version: str
    license: str
    providers: dict[str, _Provider]


_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cache_read",
    "cache_write_mtok": "cache_write",
    "cache_write_1h_mtok": "cache_write_1h",
    "output_reasoning_mtok": "reasoning",
    "input_audio_mtok": "input_audio",
    "output_audio_mtok": "output_audio",
}


def _femto(text: str) -> int:
    return int((Decimal(text) * FEMTO_PER_MTOK).to_integral_value())


def _rate(value: str | _TieredRate) -> int | Tiered:
    if isinstance(value, str):
        return _femto(value)
    return Tiered(_femto(value.base), tuple((start, _femto(r)) for start, r in value.tiers))


class PriceEntry(NamedTuple):
    start_date: datetime.date | None
    window: tuple[datetime.time, datetime.time] | None  # a daily UTC window
    rates: Rates

    def active(self, at: datetime.datetime) -> bool:
        if self.start_date is not None:
            return at.date() >= self.start_date
        if self.window is not None:
            start, end, now = self.window[0], self.window[1], at.time()
            if end < start:
                return now >= start or now < end
            return start <= now < end
        return True


class ModelPrice:
    """One model's prices through time; `id` is the catalog's name for it (or the override's
    key), so a ledger row can say which price it was charged at. `fixed` holds the rates when
    they do not depend on the time (one entry, no constraint): most models, priced with no
    clock read."""

    __slots__ = ("context_window", "entries", "fixed", "id", "tiers")

    def __init__(
        self,
        id: str,
        entries: tuple[PriceEntry, ...],
        context_window: int | None = None,
        tiers: dict[str, tuple[PriceEntry, ...]] | None = None,
    ) -> None:
        self.id = id
        self.entries = entries
        self.context_window = context_window
        first = entries[0]
        plain = len(entries) == 1 and first.start_date is None and first.window is None
        self.fixed: Rates | None = first.rates if plain else None
        self.tiers = tiers or {}  # a service tier's own prices (OpenAI's priority, flex...)

    def tier_rates(self, tier: str, at: datetime.datetime) -> Rates | None:
        """The rates of a service tier the provider says it served at, when the catalog
        prices it apart and one of its entries holds at `at`; None: the model's own rates."""
        entries = self.tiers.get(tier)
        for entry in reversed(entries or ()):
            if entry.active(at):
                return entry.rates
        return None

    def rates_at(self, at: datetime.datetime) -> Rates:
        """genai-prices' rule: the last entry whose constraint holds, else the first."""
        for entry in reversed(self.entries):
            if entry.active(at):  # an entry without a constraint is always active
                return entry.rates
        return self.entries[0].rates


def _entry(raw: _Entry) -> PriceEntry:
    values = {_KEYS[k]: _rate(v) for k, v in raw.rates.items() if k in _KEYS}
    rates = Rates(**{"input": None, "output": None, **values})
    when = raw.when
    if when is None:
        return PriceEntry(None, None, rates)
    if when.start_date is not None:
        return PriceEntry(datetime.date.fromisoformat(when.start_date), None, rates)
    assert when.start_time is not None and when.end_time is not None
    window = (
        datetime.time.fromisoformat(when.start_time),
        datetime.time.fromisoformat(when.end_time),
    )
    return PriceEntry(None, window, rates)


def _matches(clause: Any, name: str) -> bool:
    if "or" in clause:
        return any(_matches(each, name) for each in clause["or"])
    if "and" in clause:
        return all(_matches(each, name) for each in clause["and"])
    if "equals" in clause:
        return bool(name == clause["equals"].lower())
    if "starts_with" in clause:
        return name.startswith(clause["starts_with"].lower())
    if "ends_with" in clause:
        return name.endswith(clause["ends_with"].lower())
    if "contains" in clause:
        return bool(clause["contains"].lower() in name)
    return re.search(clause["regex"], name) is not None


_COMPACT_DATE = re.compile(r"(-)(20\d{2})(\d{2})(\d{2})(?=$|[^0-9])")


def _dashed_date(name: str) -> str:
    def replace(match: re.Match[str]) -> str:
        year, month, day = (int(match.group(i)) for i in range(2, 5))
        try:
            datetime.date(year, month, day)
        except ValueError:
            return match.group(0)
        return f"{match.group(1)}{year:04d}-{month:02d}-{day:02d}"

    return _COMPACT_DATE.sub(replace, name)


class Catalog:
    """The shipped price list, loaded once (msgspec; a few milliseconds, no network)."""

    def __init__(self, path: Path = DATA) -> None:
        raw = msgspec.json.decode(path.read_bytes(), type=_Catalog)
        self.source = f"{raw.source} {raw.version}"
        self._providers = raw.providers
        self._patterns = [(vid, re.compile(p.api_pattern)) for vid, p in raw.providers.items()]
        self._memo: dict[tuple[str, str], ModelPrice | None] = {}
        self._prices: dict[tuple[str, str], ModelPrice] = {}

    def vendor_of(self, vendor: str, base_url: str | None = None) -> str | None:
        """The catalog's provider id for an adapter's vendor, or, for a plain OpenAI-compatible
        server, the provider whose API address its base URL is."""
        vid = VENDOR_IDS.get(vendor, vendor)
        if vid in self._providers:
            return vid
        if base_url:
            for candidate, pattern in self._patterns:
                if pattern.match(base_url):
                    return candidate
        return None

    def model_ids(self, vendor: str) -> list[str]:
        """The models the catalog knows for a provider id (for GET /v1/models)."""
        provider = self._providers.get(vendor)
        return [m.id for m in provider.models] if provider is not None else []

    def lookup(self, vendor: str, model: str) -> ModelPrice | None:
        key = (vendor, model)
        memo = self._memo
        if key in memo:
            return memo[key]
        name = model.lower()
        found = self._find(vendor, name, fallback=True)
        if found is None and _dashed_date(name) != name:
            found = self._find(vendor, _dashed_date(name), fallback=True)
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = found
        return found

    def _find(self, vendor: str, name: str, *, fallback: bool) -> ModelPrice | None:
        provider = self._providers.get(vendor)
        if provider is None:
            return None
        for model in provider.models:
            if _matches(model.match, name):
                key = (vendor, model.id)
                price = self._prices.get(key)
                if price is None:
                    entries = tuple(map(_entry, model.prices))
                    tiers = {
                        tier: tuple(map(_entry, found))
                        for tier, found in model.tiers.items()
                        if any(e.rates for e in found)  # an empty entry: the model's own rates
                    }
                    price = self._prices[key] = ModelPrice(
                        f"{vendor}/{model.id}", entries, model.context_window, tiers
                    )
                return price
        if fallback:
            for other in provider.fallback:  # one step, as genai-prices does
                found = self._find(other, name, fallback=False)
                if found is not None:
                    return found
        return None


def override_price(key: str, cfg: PriceCfg) -> ModelPrice | None:
    """An operator's `pricing:` entry as a price (None when it only names a base_model)."""
    if cfg.input is None or cfg.output is None:
        return None

    def femto(value: float | None) -> int | None:
        return None if value is None else _femto(repr(value))

    rates = Rates(
        input=femto(cfg.input),
        output=femto(cfg.output),
        cache_read=femto(cfg.cached_input),
        cache_write=femto(cfg.cache_write),
        cache_write_1h=femto(cfg.cache_write_1h),
        reasoning=femto(cfg.reasoning),
        input_audio=femto(cfg.input_audio),
        output_audio=femto(cfg.output_audio),
    )
    return ModelPrice(f"override/{key}", (PriceEntry(None, None, rates),))


def _at(rate: Rate, input_tokens: int) -> int | None:
    if rate is None or isinstance(rate, int):
        return rate
    return rate.at(input_tokens)


def cost_femto(rates: Rates, usage: Usage) -> int | None:
    """Femto-dollars for `usage` at `rates`, or None when a kind of token it used has no
    price. Input tokens include cached and cache-write tokens (OpenAI's convention, which
    the gateway's Usage follows for every provider); a kind without its own price is paid at
    its parent's rate (cached input at the input rate, reasoning at the output rate)."""
    prompt = usage.prompt_tokens
    details = usage.prompt_tokens_details
    if details is None and usage.completion_tokens_details is None:  # the common case
        rate_in, rate_out = rates.input, rates.output
        if type(rate_in) is int and type(rate_out) is int:
            return prompt * rate_in + usage.completion_tokens * rate_out
    cached = details.cached_tokens if details is not None else 0
    written = details.cache_write_tokens if details is not None else 0
    hour = details.hour_writes if details is not None else 0
    audio_in = details.audio_tokens if details is not None else 0
    out_details = usage.completion_tokens_details
    reasoning = out_details.reasoning_tokens if out_details is not None else 0
    audio_out = out_details.audio_tokens if out_details is not None else 0
    total = 0
    plain_in = prompt
    for count, rate in (
        (cached, rates.cache_read),
        (hour, rates.cache_write if rates.cache_write_1h is None else rates.cache_write_1h),
        (written - hour, rates.cache_write),
        (audio_in, rates.input_audio),
    ):
        per = _at(rate, prompt)
        if count and per is not None:
            total += count * per
            plain_in -= count
    plain_out = usage.completion_tokens
    for count, rate in ((reasoning, rates.reasoning), (audio_out, rates.output_audio)):
        per = _at(rate, prompt)
        if count and per is not None:
            total += count * per
            plain_out -= count
    for count, rate in ((plain_in, rates.input), (plain_out, rates.output)):
        if count > 0:
            per = _at(rate, prompt)
            if per is None:
                return None
            total += count * per
    return total


def nanos(femto: int) -> int:
    """Femto-dollars rounded half up to whole nano-dollars."""
    return (femto + FEMTO_PER_NANO // 2) // FEMTO_PER_NANO


def usd(nano_dollars: int) -> str:
    """Nano-dollars as a decimal string of US dollars, without float rounding: "0.000105"."""
    sign = "-" if nano_dollars < 0 else ""
    whole, frac = divmod(abs(nano_dollars), 1_000_000_000)
    text = f"{whole}.{frac:09d}".rstrip("0")
    return sign + (text + "0" if text.endswith(".") else text)


class Pricer:
    """Prices requests: overrides from config first, then the catalog.

    The name tried first is the one the provider says it served (a dated id), then the one
    the gateway asked for, then the override's `base_model` (Azure deployments, fine-tunes).
    Resolving is not memoised here: its caller (metering/record.py) keeps one memo per
    (provider, model, served), and the catalog its own per (vendor, name).
    """

    def __init__(self, catalog: Catalog, overrides: Mapping[str, PriceCfg]) -> None:
        self.catalog = catalog
        self._overrides = dict(overrides)
        self._own = {k: p for k, cfg in overrides.items() if (p := override_price(k, cfg))}

    def price(
        self, provider: str, vendor: str | None, model: str, served: str | None = None
    ) -> ModelPrice | None:
        names = [served, model] if served and served != model else [model]
        for name in names:
            for key in (f"{provider}/{name}", name):
                if key in self._own:
                    return self._own[key]
        bases = [cfg.base_model for key, cfg in self._overrides.items()
                 if cfg.base_model and key in (f"{provider}/{model}", model)]  # fmt: skip
        if vendor is None:
            return None
        for name in [*names, *bases]:
            if name:
                found = self.catalog.lookup(vendor, name)
                if found is not None:
                    return found
        return None
