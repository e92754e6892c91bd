"""From a finished call to its cost and its ledger row: what the Account stage asks of metering.

A call's cost is priced once (the non-stream answer's `x-gateway-cost` header, the stream's
usage chunk and the ledger all read the same number). When a provider reported no usage (a
stream cut before its usage chunk, a vendor that never sends one), the gateway counts what
was sent and what was relayed, and the row says `counted`.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.api.usage import CompletionTokensDetails, PromptTokensDetails, Usage
from gateway.metering.meter import Meter
from gateway.metering.prices import ModelPrice, Pricer, cost_femto, nanos, usd
from gateway.metering.row import UsageRow, latency_bucket
from gateway.metering.tokens import count_answer_output, count_request, count_stream_output
from gateway.observability.access import escape
from gateway.pipeline.call import Call
from gateway.providers.base import Endpoint, ProviderAdapter

_COUNTABLE = (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.MESSAGES)
_MAX_LABEL = 256


class Metering:
    """Prices calls and files their rows."""

    def __init__(
        self, pricer: Pricer, meter: Meter | None, providers: Mapping[str, ProviderAdapter]
    ) -> None:
        self.pricer = pricer
        self.meter = meter
        self._providers = providers
        self._memo: dict[tuple[str, str, str | None], ModelPrice | None] = {}
        self._warned: set[tuple[str, str]] = set()  # models already logged as unpriced

    def _price(
        self, provider: ProviderAdapter | None, name: str, model: str, served: str | None
    ) -> ModelPrice | None:
        vendor = None
        if provider is not None:
            vendor = self.pricer.catalog.vendor_of(
                provider.vendor or provider.kind, getattr(provider, "base_url", None)
            )
        return self.pricer.price(name, vendor, model, served)

    def known_models(self) -> list[tuple[str, str]]:
        """(provider name, model id) for every model the price catalog knows of each
        configured provider: what zero-config mode can call."""
        out: list[tuple[str, str]] = []
        for name, provider in self._providers.items():
            vendor = self.pricer.catalog.vendor_of(
                provider.vendor or provider.kind, getattr(provider, "base_url", None)
            )
            if vendor is not None:
                out.extend((name, model) for model in self.pricer.catalog.model_ids(vendor))
        return out

    def price_usage(
        self,
        provider: str,
        model: str,
        usage: Usage,
        served: str | None = None,
        tier: str | None = None,
    ) -> tuple[int | None, str | None]:
        """Nano-dollars for usage of provider/model, and the price's id; (0, None) for no
        tokens, (None, None) for tokens with no price. A service tier the provider says it
        served at (`priority`, `flex`) is priced at its own rates where the catalog has them,
        and named in the id (`openai/gpt-4o#priority`)."""
        if usage.prompt_tokens + usage.completion_tokens <= 0:
            return 0, None
        price = self.model_price(provider, model, served)
        if price is None:
            return None, None
        rates, price_id = None, price.id
        if tier is not None and tier in price.tiers:
            rates = price.tier_rates(tier, datetime.datetime.now(datetime.UTC))
            if rates is not None:
                price_id = f"{price.id}#{tier}"
        if rates is None:
            rates = price.fixed or price.rates_at(datetime.datetime.now(datetime.UTC))
        femto = cost_femto(rates, usage)
        return (None if femto is None else nanos(femto)), price_id

    def model_price(
        self, provider: str, model: str, served: str | None = None
    ) -> ModelPrice | None:
        """provider/model's price (and its catalog entry), remembered; a miss is logged once."""
        key = (provider, model, served)
        memo = self._memo
        if key in memo:
            price = memo[key]
        else:
            if len(memo) >= 4096:
                memo.clear()
            price = memo[key] = self._price(self._providers.get(provider), provider, model, served)
            if (
                price is None
                and len(self._warned) < _MAX_WARNED
                and (provider, model) not in self._warned
            ):
                self._warned.add((provider, model))
                LOG.warning(
                    "no price for %s/%s: its cost is recorded as null (add it under `pricing:`;"
                    " `gateway usage reprice` prices what was recorded meanwhile)",
                    provider, escape(model),
                )  # fmt: skip
        return price

    def cost(self, call: Call) -> int | None:
        """The call's cost in nano-dollars, computed once and kept on the call."""
        if call.cost_known:
            return call.cost
        call.cost_known = True
        usage = self.usage(call)
        target = call.target
        if usage is None or target is None or call.cache_result in ("HIT", "SEMANTIC_HIT"):
            call.cost = 0
            return 0
        call.cost, call.price_id = self.price_usage(
            target.provider.name, target.model, usage, call.served_model, call.service_tier
        )
        return call.cost

    def usage(self, call: Call) -> Usage | None:
        """What the provider reported, else what the gateway counts (a successful or cut
        request with a body to count)."""
        if call.usage is not None or call.usage_counted:
            return call.usage
        target = call.target
        if target is None or call.upstream_endpoint not in _COUNTABLE or not call.raw:
            return None
        if call.cache_result in ("HIT", "SEMANTIC_HIT") or call.attempts == 0:
            return None
        if not (200 <= call.status < 300 or call.status == 499 or call.stream_error is not None):
            return None
        prompt, _ = count_request(call.raw, target.model)
        if call.frames:
            output = count_stream_output(call.frames, target.model)
        elif call.unreported:
            output = count_answer_output(call.unreported, target.model)
        else:
            output = 0
        call.usage = Usage(
            prompt_tokens=prompt, completion_tokens=output, total_tokens=prompt + output
        )
        call.usage_counted = True
        return call.usage

    async def reprice(self, since: float, batch: int = 5000) -> int:
        """Prices ledger rows recorded unpriced since `since` (a price added to the config or
        the catalog since), moving their cost into the rollups; how many were priced."""
        meter = self.meter
        if meter is None:
            return 0
        await meter.flush(force=True)
        priced_total, after = 0, since
        while True:
            found = await meter.store.unpriced(after, batch)
            priced = []
            for row_id, row in found:
                usage = Usage(
                    prompt_tokens=row.input_tokens, completion_tokens=row.output_tokens,
                    prompt_tokens_details=PromptTokensDetails(
                        cached_tokens=row.cached_tokens, cache_write_tokens=row.cache_write_tokens,
                        cache_write_1h_tokens=row.cache_write_1h_tokens,
                    ),
                    completion_tokens_details=CompletionTokensDetails(
                        reasoning_tokens=row.reasoning_tokens
                    ),
                )  # fmt: skip
                model = row.served_model or row.model
                cost, price_id = self.price_usage(row.provider, model, usage)
                if cost is not None:
                    priced.append(
                        (row_id, msgspec.structs.replace(row, cost=cost, price_id=price_id))
                    )
            if priced:
                await meter.store.reprice(priced)
                priced_total += len(priced)
            if len(found) < batch or not priced:
                return priced_total

    def header(self, call: Call) -> str | None:
        cost = self.cost(call)
        return None if cost is None else usd(cost)

    def record(
        self,
        call: Call,
        label: str,
        latency: float,
        first_token: float | None,
        bodies: tuple[str | None, str | None] = (None, None),
    ) -> None:
        meter = self.meter
        if meter is None:
            return
        meter.record(self.row(call, latency, first_token, bodies), label)

    def row(
        self,
        call: Call,
        latency: float,
        first_token: float | None,
        bodies: tuple[str | None, str | None] = (None, None),
    ) -> UsageRow:
        cost = self.cost(call)
        usage = call.usage or _NO_USAGE
        details = usage.prompt_tokens_details or _NO_PROMPT_DETAILS
        out = usage.completion_tokens_details or _NO_OUTPUT_DETAILS
        view, target, metadata = call.view, call.target, call.metadata or {}
        key = call.principal.key if call.principal is not None else None
        saved = 0
        provider = target.provider.name if target is not None else (call.cached_provider or "")
        if call.saved_usage is not None and call.cached_provider is not None:
            saved = (
                self.price_usage(call.cached_provider, call.cached_model or "", call.saved_usage)[0]
                or 0
            )
        error, fault, status = call.error, call.error_fault, call.status
        if fault is None and status >= 400:  # an answer with an error status, not raised
            fault = "caller" if status < 500 and status != 429 else "provider"
        latency_ms = latency * 1000
        ttft_ms = None if first_token is None else first_token * 1000
        # Positional, in _FIELDS' order (checked below): 36 keywords cost msgspec ~1.4 µs a
        # row to match by name, positional values ~0.2 µs.
        return UsageRow(
            time.time() - latency,  # ts
            call.request_id,
            call.endpoint.value,
            (view.model if view is not None else "")[:_MAX_LABEL],  # model
            provider,
            call.served_model or (target.model if target is not None else call.cached_model),
            status,
            error,  # error_type
            usage.prompt_tokens,  # input_tokens
            details.cached_tokens,
            details.cache_write_tokens,
            usage.completion_tokens,  # output_tokens
            out.reasoning_tokens,
            call.usage_counted,  # counted
            cost,
            saved,
            latency_ms,
            ttft_ms,
            call.attempts,
            call.cache_result,  # cache
            call.price_id,
            key.id if key is not None else None,  # key_id
            _text((key.team if key is not None else None) or metadata.get("team")),  # team
            _text(
                (key.user if key is not None else None)
                or getattr(view, "user", None)
                or metadata.get("user")
            ),  # user
            _text(metadata.get("feature")) if metadata else None,  # feature
            _tags(metadata.get("tags")) if metadata else None,  # tags
            fault,
            call.fallback_path or None,  # fallback
            call.guardrails,
            latency_bucket(latency_ms),
            None if ttft_ms is None else latency_bucket(ttft_ms),  # ttft_bucket
            bodies[0],  # request_body
            bodies[1],  # response_body
            _text(call.route_choice),  # route
            call.route_reason,
            details.cache_write_1h_tokens,
        )


# The order Metering.row passes a row's values in: UsageRow's fields, or this module fails to
# import (a field added or moved there must be placed here too).
_FIELDS = (
    "ts", "request_id", "endpoint", "model", "provider", "served_model", "status", "error_type",
    "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
    "counted", "cost", "saved", "latency_ms", "ttft_ms", "attempts", "cache", "price_id",
    "key_id", "team", "user", "feature", "tags", "fault", "fallback", "guardrails",
    "latency_bucket", "ttft_bucket", "request_body", "response_body", "route", "route_reason",
    "cache_write_1h_tokens",
)  # fmt: skip
if UsageRow.__struct_fields__ != _FIELDS:  # pragma: no cover - a developer's mistake
    raise ImportError("metering/record.py builds UsageRow positionally: update _FIELDS and row()")


LOG = logging.getLogger("gateway.metering")
_MAX_WARNED = 1000  # client-chosen names are unbounded: past this, the metric still counts
_NO_USAGE = Usage()
_NO_PROMPT_DETAILS = PromptTokensDetails()
_NO_OUTPUT_DETAILS = CompletionTokensDetails()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else str(value))[:_MAX_LABEL]


def _tags(value: Any) -> str | None:
    """Tags as the JSON array the stores keep (and unnest for the tag rollup)."""
    if isinstance(value, str):
        return _JSON.encode([value[:_MAX_LABEL]]).decode()
    if isinstance(value, list) and value:
        return _JSON.encode([_text(tag) or "" for tag in value[:32]]).decode()
    return None


_JSON = msgspec.json.Encoder()
