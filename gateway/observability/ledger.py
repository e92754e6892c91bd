"""The metrics every request records: requests, latencies, tokens, requests in flight.

Recorded through prometheus_client, one request costs about 5 µs of locks, label lookups and
bucket scans, a sizeable part of what the gateway spends on it. In one process, a `Ledger`
sums into plain tallies instead (about 1 µs) and turns them into samples when /metrics is
scraped, through prometheus_client's collector interface, so the exposition is the same. With
several workers, each process's samples must reach prometheus_client's shared files, so
metrics.py's `SharedLedger` records through its metric objects as before.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

from prometheus_client import REGISTRY, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from gateway.api.usage import Usage

REQUESTS = ("gateway_requests", "Requests answered, by model, provider and HTTP status")
REQUEST_SECONDS = (
    "gateway_request_duration_seconds",
    "Time from request to the end of the response",
)
UPSTREAM_SECONDS = (
    "gateway_upstream_duration_seconds",
    "Provider latency: to the full body, or to the response head for streams",
)
FIRST_TOKEN_SECONDS = (
    "gateway_time_to_first_token_seconds",
    "Time from request to the first streamed chunk",
)
TOKENS = ("gateway_tokens", "Tokens reported by providers")
IN_FLIGHT = ("gateway_in_flight_requests", "Requests being served")
STATUS = {code: str(code) for code in range(100, 600)}


def _go_float(bound: float) -> str:
    """A bucket bound as prometheus_client writes it ("1.0", "2.5"), so `le` labels match."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


class RequestLedger(Protocol):
    def started(self) -> None: ...

    def ended(self) -> None: ...

    def request(  # noqa: PLR0913 - one value per label and measurement
        self,
        model: str,
        provider: str,
        status: int,
        seconds: float,
        first_token_seconds: float | None,
        upstream_seconds: float | None,
    ) -> None: ...

    def usage(self, model: str, provider: str, usage: Usage) -> None: ...


class _Tally:
    """One histogram's label set: observations per bucket (the last is +Inf) and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size
        self.total = 0.0


class Ledger:
    """Single-process tallies, exposed as a prometheus_client collector."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self._bounds = tuple(buckets)
        self._size = len(self._bounds) + 1
        self._requests: dict[tuple[str, str, str], _Tally] = {}
        self._upstream: dict[str, _Tally] = {}
        self._first_token: dict[tuple[str, str], _Tally] = {}
        self._tokens: dict[tuple[str, str, str], int] = {}
        self._in_flight = 0

    def started(self) -> None:
        self._in_flight += 1

    def ended(self) -> None:
        self._in_flight -= 1

    def request(  # noqa: PLR0913 - one value per label and measurement
        self,
        model: str,
        provider: str,
        status: int,
        seconds: float,
        first_token_seconds: float | None,
        upstream_seconds: float | None,
    ) -> None:
        key = (model, provider, STATUS.get(status) or str(status))
        self._add(self._requests, key, seconds)
        if first_token_seconds is not None:
            self._add(self._first_token, (model, provider), first_token_seconds)
        if upstream_seconds is not None:
            self._add(self._upstream, provider, upstream_seconds)

    def usage(self, model: str, provider: str, usage: Usage) -> None:
        tokens = self._tokens
        for kind, count in (
            ("prompt", usage.prompt_tokens),
            ("completion", usage.completion_tokens),
            ("cached", usage.cached_tokens),
        ):
            if count or kind != "cached":
                key = (model, provider, kind)
                tokens[key] = tokens.get(key, 0) + count

    def _add(self, tallies: dict[Any, _Tally], key: object, seconds: float) -> None:
        observe(tallies, self._bounds, key, seconds)

    # prometheus_client's collector interface; called from the scrape's thread. Copying a
    # dict is one step under the GIL, and a tally read mid-update is off by one request at
    # most, with its count taken from its buckets so the two always agree.

    def collect(self) -> Iterator[Any]:
        requests = list(self._requests.items())
        counter = CounterMetricFamily(*REQUESTS, labels=["model", "provider", "status"])
        for labels, tally in requests:
            counter.add_metric(list(labels), sum(tally.counts))
        yield counter
        yield self._histogram(REQUEST_SECONDS, ["model", "provider", "status"], requests)
        upstream = [((provider,), tally) for provider, tally in list(self._upstream.items())]
        yield self._histogram(UPSTREAM_SECONDS, ["provider"], upstream)
        first_token = list(self._first_token.items())
        yield self._histogram(FIRST_TOKEN_SECONDS, ["model", "provider"], first_token)
        tokens = CounterMetricFamily(*TOKENS, labels=["model", "provider", "type"])
        for labels, count in list(self._tokens.items()):
            tokens.add_metric(list(labels), count)
        yield tokens
        yield GaugeMetricFamily(*IN_FLIGHT, value=self._in_flight)

    def _histogram(
        self, names: tuple[str, str], labels: list[str], tallies: list[tuple[Any, _Tally]]
    ) -> HistogramMetricFamily:
        return family(names, labels, self._bounds, tallies)


def observe(
    tallies: dict[Any, _Tally], bounds: tuple[float, ...], key: object, value: float
) -> None:
    """One observation into the tally of its label values (made on first use)."""
    tally = tallies.get(key)
    if tally is None:
        tally = tallies[key] = _Tally(len(bounds) + 1)
    tally.counts[bisect_left(bounds, value)] += 1  # le: the first bound >= value
    tally.total += value


def family(
    names: tuple[str, str],
    labels: list[str],
    bounds: tuple[float, ...],
    tallies: Iterable[tuple[Any, _Tally]],
) -> HistogramMetricFamily:
    """Tallies as prometheus_client's histogram samples (cumulative buckets, sum)."""
    out = HistogramMetricFamily(*names, labels=labels)
    edges = [_go_float(bound) for bound in bounds] + ["+Inf"]
    for key, tally in tallies:
        cumulative, buckets = 0, []
        for edge, count in zip(edges, list(tally.counts), strict=True):
            cumulative += count
            buckets.append((edge, cumulative))
        out.add_metric(list(key), buckets, tally.total)
    return out


class Histograms:
    """One histogram by label values in plain tallies (one process): an observation costs a
    dict lookup, a bisect and two additions instead of prometheus_client's locks."""

    __slots__ = ("_bounds", "_labels", "_names", "_tallies")

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self._names = (name, documentation)
        self._labels = list(labels)
        self._bounds = tuple(buckets)
        self._tallies: dict[tuple[str, ...], _Tally] = {}

    def observe(self, key: tuple[str, ...], value: float) -> None:
        observe(self._tallies, self._bounds, key, value)

    def collect(self) -> Iterator[Any]:
        yield family(self._names, self._labels, self._bounds, list(self._tallies.items()))


class SharedHistograms:
    """The same through prometheus_client (several workers: its files are shared)."""

    __slots__ = ("_histogram",)

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self._histogram = Histogram(name, documentation, list(labels), buckets=tuple(buckets))

    def observe(self, key: tuple[str, ...], value: float) -> None:
        (self._histogram.labels(*key) if key else self._histogram).observe(value)


def histograms(
    name: str, documentation: str, labels: Sequence[str], buckets: Sequence[float]
) -> Histograms | SharedHistograms:
    """Plain tallies registered as a collector in one process; prometheus_client's shared
    histograms with several workers (PROMETHEUS_MULTIPROC_DIR)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return SharedHistograms(name, documentation, labels, buckets)
    tallies = Histograms(name, documentation, labels, buckets)
    REGISTRY.register(tallies)
    return tallies
