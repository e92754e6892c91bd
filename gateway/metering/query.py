"""The usage API, answered from the minute rollups (never a scan of raw rows, except the audit
listing of /v1/usage/requests): the gateway's own `/v1/usage`, and OpenAI's organization usage
and costs endpoints in OpenAI's shape, so existing admin tooling works by changing the base URL
(team = project_id, virtual key = api_key_id, user = user_id)."""

from __future__ import annotations

import asyncio
import datetime
import math
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from gateway.errors import InvalidRequest
from gateway.metering.meter import Meter
from gateway.metering.prices import usd
from gateway.metering.row import BUCKETS as HISTOGRAM_BUCKETS
from gateway.metering.row import FAULTS, MEASURES, UsageRow, percentile
from gateway.store.base import RowQuery, Totals

RANGES = {
    "last_hour": 3600, "last_24_hours": 86400, "last_7_days": 7 * 86400,
    "last_30_days": 30 * 86400, "last_90_days": 90 * 86400,
}  # fmt: skip
BUCKETS = {"1m": 60, "1h": 3600, "1d": 86400}
# /v1/usage's names -> rollup dimensions.
GROUPS = {
    "model": "model", "user": "user", "feature": "feature", "key": "key_id", "team": "team",
    "provider": "provider", "tag": "tag", "status": "status", "endpoint": "endpoint",
    "route": "route",
}  # fmt: skip
# OpenAI's group_by names (and the gateway's extras) -> rollup dimensions.
OPENAI_GROUPS = {
    "project_id": "team", "user_id": "user", "api_key_id": "key_id", "model": "model",
    "provider": "provider", "tag": "tag", "status": "status",
}  # fmt: skip
OPENAI_FILTERS = {
    "project_ids": "team",
    "user_ids": "user",
    "api_key_ids": "key_id",
    "models": "model",
}
OPENAI_LIMITS = {60: (60, 1440), 3600: (24, 168), 86400: (7, 31)}  # default, max
COMPLETION_ENDPOINTS = ("chat/completions", "completions", "messages")


_EMPTY = dict.fromkeys(MEASURES, 0)


def _nano_usd(nanos: float) -> Decimal:
    return Decimal(usd(int(nanos)))


def parse_time(value: str, param: str) -> float:
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(
            f"Invalid {param}: {value[:64]!r} is neither unix seconds nor an ISO 8601 time.",
            param=param,
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def time_window(params: dict[str, str], default: str = "last_24_hours") -> tuple[float, float]:
    now = time.time()
    if "start" in params or "end" in params:
        start = parse_time(params["start"], "start") if "start" in params else now - RANGES[default]
        end = parse_time(params["end"], "end") if "end" in params else now
    else:
        name = params.get("time_range", default)
        if name not in RANGES:
            raise InvalidRequest(
                f"Invalid time_range {name[:64]!r}: use one of {', '.join(RANGES)}, or start/end.",
                param="time_range",
            )
        start, end = now - RANGES[name], now
    if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
        raise InvalidRequest("The time range is empty: end must be after start.", param="end")
    return start, end


def _list(pairs: Sequence[tuple[str, str]], *names: str) -> list[str]:
    values: list[str] = []
    for key, value in pairs:
        if key in names or key.removesuffix("[]") in names:
            values.extend(v for v in value.split(",") if v)
    return values


def _filters(pairs: Sequence[tuple[str, str]], names: dict[str, str]) -> dict[str, list[Any]]:
    """Parameter name -> store column, for each parameter given; status codes as numbers."""
    filters: dict[str, list[Any]] = {}
    for name, column in names.items():
        values = _list(pairs, name)
        if values:
            filters[column] = [_status(v) for v in values] if column == "status" else values
    return filters


def _minutes(start: float, end: float) -> tuple[int, int]:
    return int(start) // 60 * 60, (int(math.ceil(end)) + 59) // 60 * 60


def _measures(row: dict[str, Any]) -> dict[str, Any]:
    if not row:
        row = _EMPTY
    input_tokens, output_tokens = int(row["input_tokens"] or 0), int(row["output_tokens"] or 0)
    requests = int(row["requests"] or 0)
    return {
        "requests": requests,
        "errors": int(row["errors"] or 0),
        "tokens": input_tokens + output_tokens,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": int(row["cached_tokens"] or 0),
        "cache_write_tokens": int(row["cache_write_tokens"] or 0),
        "reasoning_tokens": int(row["reasoning_tokens"] or 0),
        "cost": _nano_usd(row["cost"] or 0),
        "cost_saved": _nano_usd(row["saved"] or 0),
        "cache_hits": int(row["cache_hits"] or 0),
        "unpriced_requests": int(row["unpriced_requests"] or 0),
        "unpriced_tokens": int(row["unpriced_tokens"] or 0),
        "errors_by_fault": {fault: int(row[f"errors_{fault}"] or 0) for fault in FAULTS},
        "latency_ms": _latency(row, "lat", float(row["latency_ms"] or 0), requests),
        "ttft_ms": _latency(row, "ttft", float(row["ttft_ms"] or 0), int(row["ttft_count"] or 0)),
    }


async def _nothing(value: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return value


def _summed(vectors: list[list[Any]]) -> dict[str, Any]:
    """Rollup rows' measures (each row's as a list in MEASURES' order) added up: one C-level
    sum per measure."""
    if not vectors:
        return dict(_EMPTY)
    return dict(zip(MEASURES, map(sum, zip(*vectors, strict=True)), strict=True))


def _latency(row: dict[str, Any], prefix: str, total: float, count: int) -> dict[str, Any]:
    """Mean and percentiles from a rollup's histogram (None where nothing was measured)."""
    counts = [int(row[f"{prefix}_{k}"] or 0) for k in range(HISTOGRAM_BUCKETS)]
    return {
        "avg": round(total / count, 1) if count else None,
        **{
            name: None if (value := percentile(counts, q)) is None else round(value, 1)
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
        },
    }


class UsageQueries:
    """Parses the usage API's parameters and shapes its answers; the store does the sums."""

    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    async def _fresh(self) -> None:
        """Rows still queued are written first, so an answer includes every finished request
        (as far as the store is up)."""
        await self._meter.flush(force=True)

    async def usage(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        params = dict(pairs)
        start, end = time_window(params)
        groups = _list(pairs, "group_by")
        for name in groups:
            if name not in GROUPS:
                raise InvalidRequest(
                    f"Invalid group_by {name[:64]!r}: use {', '.join(GROUPS)}.", param="group_by"
                )
        bucket = None
        if "bucket" in params:
            bucket = BUCKETS.get(params["bucket"])
            if bucket is None:
                raise InvalidRequest("Invalid bucket: use 1m, 1h or 1d.", param="bucket")
        filters = _filters(pairs, GROUPS)
        if "tag" in filters and len(filters) > 1:
            raise InvalidRequest("A tag filter cannot be combined with other filters.", param="tag")
        await self._fresh()
        first, last = _minutes(start, end)
        store = self._meter.store
        answer: dict[str, Any] = {"object": "usage", "start": int(start), "end": int(end)}
        dims = tuple(dict.fromkeys(GROUPS[name] for name in groups if name != "tag"))
        if "tag" in groups and any(d != "tag" for d in filters):
            raise InvalidRequest("group_by=tag cannot be combined with filters.", param="group_by")
        # One grouped read for the total and every breakdown (rollup rows by every dimension
        # asked for, summed here per dimension; tags have a rollup of their own), and one for
        # the series: all at once (the stores answer reads side by side).
        empty: list[dict[str, Any]] = []
        reads = await asyncio.gather(
            store.totals(Totals(first, last, dims or (), filters)),
            store.totals(Totals(first, last, ("tag",), filters))
            if "tag" in groups
            else _nothing(empty),
            store.totals(Totals(first, last, (), filters, bucket)) if bucket else _nothing(empty),
        )
        rows, tag_rows, series = reads if dims else (empty, reads[1], reads[2])
        vectors = [[row[m] or 0 for m in MEASURES] for row in rows]
        total = [_summed(vectors)] if dims else reads[0]
        summary = _measures(total[0]) if total else _measures({})
        answer.update({
            "total_cost": summary["cost"], "total_tokens": summary["tokens"],
            **{k: v for k, v in summary.items() if k not in ("cost", "tokens")},
        })  # fmt: skip
        for name in groups:
            dim = GROUPS[name]
            source = tag_rows if dim == "tag" else rows
            values = [[r[m] or 0 for m in MEASURES] for r in tag_rows] if dim == "tag" else vectors
            by: dict[str, list[list[Any]]] = {}
            for row, vector in zip(source, values, strict=True):
                value = row[dim]
                label = str(value) if value not in (None, "") else "unknown"
                by.setdefault(label, []).append(vector)
            sums = {label: _summed(group) for label, group in by.items()}
            answer[f"by_{name}"] = {
                label: _measures(row)
                for label, row in sorted(sums.items(), key=lambda item: -(item[1]["cost"] or 0))
            }
        if bucket:
            answer["bucket"] = params["bucket"]
            answer["series"] = [
                {"start": int(row["bucket"]), **_measures(row)}
                for row in sorted(series, key=lambda r: r["bucket"])
            ]
        return answer

    async def requests(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        params = dict(pairs)
        start, end = time_window(params)
        limit = _int(params.get("limit", "100"), "limit", 1, 1000)
        after = _int(params["after"], "after", 0, 2**62) if params.get("after") else None
        names = {
            "request_id": "request_id", "key": "key_id", "user": "user", "team": "team",
            "feature": "feature", "model": "model", "provider": "provider", "status": "status",
            "route": "route",
        }  # fmt: skip
        filters = _filters(pairs, names)
        order = params.get("order", "asc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("Invalid order: use asc or desc.", param="order")
        await self._fresh()
        query = RowQuery(start, end, filters, limit + 1, after, newest_first=order == "desc")
        found = await self._meter.store.rows(query)
        more = len(found) > limit
        found = found[:limit]
        return {
            "object": "list",
            "data": [_row_json(row_id, row) for row_id, row in found],
            "has_more": more,
            "next_page": str(found[-1][0]) if more and found else None,
        }

    async def openai_usage(self, pairs: list[tuple[str, str]], kind: str) -> dict[str, Any]:
        """GET /v1/organization/usage/{completions,embeddings}."""
        params = dict(pairs)
        width, first, last, groups, filters, page_start = self._openai_page(pairs, params, "1d")
        filters["endpoint"] = (
            list(COMPLETION_ENDPOINTS) if kind == "completions" else ["embeddings"]
        )
        limit = _int(params["limit"], "limit", 1, 1440) if params.get("limit") else None
        await self._fresh()
        buckets = await self._buckets(width, first, last, groups, filters, page_start, limit)
        data = []
        for start, rows in buckets["buckets"]:
            results = []
            for row in rows:
                measures = _measures(row)
                result: dict[str, Any] = {
                    "object": f"organization.usage.{kind}.result",
                    "input_tokens": measures["input_tokens"],
                    "num_model_requests": measures["requests"],
                }
                if kind == "completions":
                    result.update({
                        "input_cached_tokens": measures["cached_tokens"],
                        "output_tokens": measures["output_tokens"],
                        "input_audio_tokens": 0, "output_audio_tokens": 0,
                        "batch": None,
                        "input_cache_write_tokens": measures["cache_write_tokens"],
                        "reasoning_tokens": measures["reasoning_tokens"],
                    })  # fmt: skip
                for name, dim in (("project_id", "team"), ("user_id", "user"),
                                  ("api_key_id", "key_id"), ("model", "model")):  # fmt: skip
                    result[name] = (row.get(dim) or None) if dim in groups else None
                for extra in ("provider", "tag", "status"):
                    if extra in groups:
                        result[extra] = row.get(extra)
                result.update({
                    "cost": {"value": measures["cost"], "currency": "usd"},
                    "num_errors": measures["errors"], "num_cache_hits": measures["cache_hits"],
                    "unpriced_requests": measures["unpriced_requests"],
                })  # fmt: skip
                results.append(result)
            data.append({"object": "bucket", "start_time": start, "end_time": start + width,
                         "results": results})  # fmt: skip
        return {
            "object": "page",
            "data": data,
            "has_more": buckets["more"],
            "next_page": buckets["next"],
        }

    async def openai_costs(self, pairs: list[tuple[str, str]]) -> dict[str, Any]:
        """GET /v1/organization/costs: daily buckets; group_by project_id and line_item (one
        line item per model)."""
        params = dict(pairs)
        if params.get("bucket_width", "1d") != "1d":
            raise InvalidRequest(
                "Invalid bucket_width: costs are reported per day (1d).", param="bucket_width"
            )
        requested = _list(pairs, "group_by")
        for name in requested:
            if name not in ("project_id", "line_item"):
                raise InvalidRequest(
                    f"Invalid group_by {name[:64]!r}: use project_id or line_item.",
                    param="group_by",
                )
        groups = tuple(
            d for n, d in (("project_id", "team"), ("line_item", "model")) if n in requested
        )
        start = parse_time(_required(params, "start_time"), "start_time")
        end = parse_time(params["end_time"], "end_time") if "end_time" in params else time.time()
        if end <= start:
            raise InvalidRequest("end_time must be after start_time.", param="end_time")
        limit = _int(params.get("limit", "7"), "limit", 1, 180)
        page_start = _int(params["page"], "page", 0, 2**40) if params.get("page") else None
        filters = _filters(pairs, {"project_ids": "team"})
        first = int(start) // 86400 * 86400
        await self._fresh()
        buckets = await self._buckets(
            86400, first, int(math.ceil(end)), groups, filters, page_start, limit
        )
        data = []
        for bucket_start, rows in buckets["buckets"]:
            results = [{
                "object": "organization.costs.result",
                "amount": {"value": _nano_usd(row["cost"] or 0), "currency": "usd"},
                "line_item": (row.get("model") or None) if "model" in groups else None,
                "project_id": (row.get("team") or None) if "team" in groups else None,
            } for row in rows]  # fmt: skip
            data.append({"object": "bucket", "start_time": bucket_start,
                         "end_time": bucket_start + 86400, "results": results})  # fmt: skip
        return {
            "object": "page",
            "data": data,
            "has_more": buckets["more"],
            "next_page": buckets["next"],
        }

    def _openai_page(
        self, pairs: list[tuple[str, str]], params: dict[str, str], default_width: str
    ) -> tuple[int, int, int, tuple[str, ...], dict[str, list[Any]], int | None]:
        width = BUCKETS.get(params.get("bucket_width", default_width))
        if width is None:
            raise InvalidRequest("Invalid bucket_width: use 1m, 1h or 1d.", param="bucket_width")
        start = parse_time(_required(params, "start_time"), "start_time")
        end = parse_time(params["end_time"], "end_time") if "end_time" in params else time.time()
        if end <= start:
            raise InvalidRequest("end_time must be after start_time.", param="end_time")
        groups: list[str] = []
        for name in _list(pairs, "group_by"):
            if name == "batch":
                continue  # the gateway sends no batch requests: always null
            if name not in OPENAI_GROUPS:
                raise InvalidRequest(
                    f"Invalid group_by {name[:64]!r}: use {', '.join(OPENAI_GROUPS)}.",
                    param="group_by",
                )
            groups.append(OPENAI_GROUPS[name])
        filters = _filters(pairs, OPENAI_FILTERS)
        page = _int(params["page"], "page", 0, 2**40) if params.get("page") else None
        return width, int(start) // width * width, int(math.ceil(end)), tuple(groups), filters, page

    async def _buckets(  # noqa: PLR0913 - one OpenAI page's parameters
        self,
        width: int,
        first: int,
        end: int,
        groups: tuple[str, ...],
        filters: dict[str, list[Any]],
        page_start: int | None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        default, most = OPENAI_LIMITS[width]
        count = limit if limit is not None else default
        count = min(count, most)
        start = max(first, page_start) if page_start is not None else first
        stop = min(end, start + count * width)
        rows = await self._meter.store.totals(
            Totals(start, stop, groups, filters, width)
        ) if stop > start else []  # fmt: skip
        by_bucket: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            by_bucket.setdefault(int(row["bucket"]), []).append(row)
        buckets = [(b, by_bucket.get(b, [])) for b in range(start, stop, width)]
        more = stop < end
        return {"buckets": buckets, "more": more, "next": str(stop) if more else None}


def _required(params: dict[str, str], name: str) -> str:
    if name not in params:
        raise InvalidRequest(f"Missing required parameter: {name} (unix seconds).", param=name)
    return params[name]


def _int(value: str, param: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidRequest(f"Invalid {param}: expected an integer.", param=param) from None
    if not low <= number <= high:
        raise InvalidRequest(f"Invalid {param}: expected {low} to {high}.", param=param)
    return number


def _status(value: str) -> int:
    return _int(value, "status", 100, 599)


def _row_json(row_id: int, row: UsageRow) -> dict[str, Any]:
    fields = {name: getattr(row, name) for name in row.__struct_fields__}
    fields["id"] = row_id
    fields["cost"] = None if row.cost is None else _nano_usd(row.cost)
    fields["saved"] = _nano_usd(row.saved)
    fields["tags"] = msgspec.json.decode(row.tags) if row.tags else None
    return fields
