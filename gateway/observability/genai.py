"""OpenTelemetry's GenAI metric conventions on /metrics, beside the gateway's own series:
`gen_ai_client_operation_duration_seconds`, `gen_ai_client_token_usage` (by
`gen_ai_token_type`), `gen_ai_server_time_to_first_token_seconds` and
`gen_ai_server_time_per_output_token_seconds` (streams), labelled `gen_ai_operation_name`,
`gen_ai_provider_name` and `gen_ai_request_model` (the same bounded labels as the rest).

One process: plain tallies exposed as a collector (ledger.py explains why); several workers:
prometheus_client's histograms, which share their files.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import HistogramMetricFamily

from gateway.api.usage import Usage
from gateway.observability.ledger import _go_float, _Tally

LABELS = ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model"]
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
DURATION = ("gen_ai_client_operation_duration_seconds", "GenAI operation duration")
TOKENS = ("gen_ai_client_token_usage", "Tokens used per GenAI operation, by token type")
TTFT = ("gen_ai_server_time_to_first_token_seconds", "Time to the first streamed token")
TPOT = ("gen_ai_server_time_per_output_token_seconds", "Time per output token after the first")


class _Series:
    __slots__ = ("bounds", "tallies")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.tallies: dict[tuple[str, ...], _Tally] = {}

    def add(self, key: tuple[str, ...], value: float) -> None:
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = _Tally(len(self.bounds) + 1)
        tally.counts[bisect_left(self.bounds, value)] += 1
        tally.total += value

    def family(self, names: tuple[str, str], labels: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(*names, labels=labels)
        edges = [_go_float(b) for b in self.bounds] + ["+Inf"]
        for key, tally in list(self.tallies.items()):
            cumulative, buckets = 0, []
            for edge, count in zip(edges, list(tally.counts), strict=True):
                cumulative += count
                buckets.append((edge, cumulative))
            family.add_metric(list(key), buckets, tally.total)
        return family


class GenAILedger:
    """One process's GenAI series, as a prometheus_client collector."""

    def __init__(self, latency_buckets: Sequence[float]) -> None:
        self._duration = _Series(latency_buckets)
        self._ttft = _Series(latency_buckets)
        self._tpot = _Series(TPOT_BUCKETS)
        self._tokens = _Series(TOKEN_BUCKETS)

    def observe(  # noqa: PLR0913 - one value per label and measurement
        self,
        operation: str,
        provider: str,
        model: str,
        seconds: float,
        first_token: float | None,
        usage: Usage | None,
    ) -> None:
        key = (operation, provider, model)
        self._duration.add(key, seconds)
        if first_token is not None:
            self._ttft.add(key, first_token)
        if usage is not None:
            self._tokens.add((*key, "input"), usage.prompt_tokens)
            if usage.completion_tokens:
                self._tokens.add((*key, "output"), usage.completion_tokens)
                if first_token is not None and usage.completion_tokens > 1:
                    self._tpot.add(key, (seconds - first_token) / (usage.completion_tokens - 1))

    def collect(self) -> Iterator[Any]:
        yield self._duration.family(DURATION, LABELS)
        yield self._tokens.family(TOKENS, [*LABELS, "gen_ai_token_type"])
        yield self._ttft.family(TTFT, LABELS)
        yield self._tpot.family(TPOT, LABELS)


class SharedGenAI:
    """Several workers: the same series through prometheus_client's shared files."""

    def __init__(self, latency_buckets: Sequence[float]) -> None:
        self._duration = Histogram(*DURATION, LABELS, buckets=latency_buckets)
        self._tokens = Histogram(*TOKENS, [*LABELS, "gen_ai_token_type"], buckets=TOKEN_BUCKETS)
        self._ttft = Histogram(*TTFT, LABELS, buckets=latency_buckets)
        self._tpot = Histogram(*TPOT, LABELS, buckets=TPOT_BUCKETS)

    def observe(  # noqa: PLR0913 - one value per label and measurement
        self,
        operation: str,
        provider: str,
        model: str,
        seconds: float,
        first_token: float | None,
        usage: Usage | None,
    ) -> None:
        self._duration.labels(operation, provider, model).observe(seconds)
        if first_token is not None:
            self._ttft.labels(operation, provider, model).observe(first_token)
        if usage is not None:
            self._tokens.labels(operation, provider, model, "input").observe(usage.prompt_tokens)
            if usage.completion_tokens:
                self._tokens.labels(operation, provider, model, "output").observe(
                    usage.completion_tokens
                )
                if first_token is not None and usage.completion_tokens > 1:
                    per = (seconds - first_token) / (usage.completion_tokens - 1)
                    self._tpot.labels(operation, provider, model).observe(per)
