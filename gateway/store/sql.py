"""The ledger's SQL, shared by SQLite and PostgreSQL: the tables, the rollup upsert, and the
grouped query. Identifiers come only from the fixed lists here, never from a request; every
value is a bound parameter, written `?` for SQLite and `$n` for PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.metering.row import MEASURES, ROLLUP_DIMENSIONS, UsageRow
from gateway.store.base import RowQuery, Totals

ROW_COLUMNS = tuple(f for f in UsageRow.__struct_fields__)
DIMENSION_TYPES = {"minute": "BIGINT", "status": "INTEGER"}
MEASURE_TYPES = {"latency_ms": "DOUBLE PRECISION"}
ROW_TYPES = {
    "ts": "DOUBLE PRECISION", "status": "INTEGER", "input_tokens": "BIGINT",
    "cached_tokens": "BIGINT", "cache_write_tokens": "BIGINT", "output_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT", "counted": "BOOLEAN", "cost": "BIGINT", "saved": "BIGINT",
    "latency_ms": "DOUBLE PRECISION", "ttft_ms": "DOUBLE PRECISION", "attempts": "INTEGER",
}  # fmt: skip
# Which raw-row columns a /v1/usage/requests filter may name.
ROW_FILTERS = ("request_id", "key_id", "user", "team", "feature", "model", "provider", "status")

Placeholder = Callable[[int], str]


def qmark(_: int) -> str:
    return "?"


def dollar(n: int) -> str:
    return f"${n}"


def quoted(name: str) -> str:
    return f'"{name}"'  # "user" is reserved in PostgreSQL


def rollup_table(name: str, dimensions: Sequence[str]) -> str:
    cols = [f"{quoted(d)} {DIMENSION_TYPES.get(d, 'TEXT')} NOT NULL" for d in dimensions]
    cols += [f"{quoted(m)} {MEASURE_TYPES.get(m, 'BIGINT')} NOT NULL DEFAULT 0" for m in MEASURES]
    key = ", ".join(map(quoted, dimensions))
    return f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)}, PRIMARY KEY ({key}))"


def row_columns() -> str:
    return ", ".join(f"{quoted(c)} {ROW_TYPES.get(c, 'TEXT')}" for c in ROW_COLUMNS)


def upsert(table: str, dimensions: Sequence[str], mark: Placeholder) -> str:
    cols = [*dimensions, *MEASURES]
    values = ", ".join(mark(i + 1) for i in range(len(cols)))
    updates = ", ".join(
        f"{quoted(m)} = {table}.{quoted(m)} + excluded.{quoted(m)}" for m in MEASURES
    )
    names = ", ".join(map(quoted, cols))
    key = ", ".join(map(quoted, dimensions))
    return (
        f"INSERT INTO {table} ({names}) VALUES ({values})"
        f" ON CONFLICT ({key}) DO UPDATE SET {updates}"
    )


ROLLUP = "usage_minute"
TAG_ROLLUP = "usage_tag_minute"
ROLLUP_DIMS = ROLLUP_DIMENSIONS
TAG_DIMS = ("minute", "tag")


def totals(query: Totals, mark: Placeholder) -> tuple[str, list[Any]]:
    """The grouped sum over one rollup table (by tag when the query groups or filters by
    tag; tags have their own rollup, so tag totals carry no other dimension). Parameters are
    bound in the order they appear, as `?` needs."""
    by_tag = "tag" in query.group_by or "tag" in query.filters
    table = TAG_ROLLUP if by_tag else ROLLUP
    allowed = TAG_DIMS if by_tag else ROLLUP_DIMS
    params: list[Any] = []

    def bind(value: Any) -> str:
        params.append(value)
        return mark(len(params))

    groups = [quoted(d) for d in query.group_by if d in allowed]
    select = list(groups)
    if query.bucket:
        select.append(f"(minute / {bind(query.bucket)}) * {bind(query.bucket)} AS bucket")
        groups.append("bucket")
    select += [f"SUM({quoted(m)}) AS {quoted(m)}" for m in MEASURES]
    where = [f"minute >= {bind(query.start)}", f"minute < {bind(query.end)}"]
    for dim, values in query.filters.items():
        if dim not in allowed:
            raise ValueError(dim)
        where.append(f"{quoted(dim)} IN ({', '.join(bind(v) for v in values)})")
    sql = f"SELECT {', '.join(select)} FROM {table} WHERE {' AND '.join(where)}"
    if groups:
        sql += f" GROUP BY {', '.join(groups)}"
    return sql, params


def rows(query: RowQuery, mark: Placeholder) -> tuple[str, list[Any]]:
    params: list[Any] = [query.start, query.end]
    where = [f"ts >= {mark(1)}", f"ts < {mark(2)}"]
    if query.after is not None:
        params.append(query.after)
        where.append(f"id > {mark(len(params))}")
    for column, values in query.filters.items():
        if column not in ROW_FILTERS:
            raise ValueError(column)
        slots = []
        for value in values:
            params.append(value)
            slots.append(mark(len(params)))
        where.append(f"{quoted(column)} IN ({', '.join(slots)})")
    params.append(query.limit)
    columns = ", ".join(map(quoted, ROW_COLUMNS))
    sql = (
        f"SELECT id, {columns} FROM usage_rows WHERE {' AND '.join(where)}"
        f" ORDER BY id LIMIT {mark(len(params))}"
    )
    return sql, params


def unpriced(mark: Placeholder) -> str:
    columns = ", ".join(map(quoted, ROW_COLUMNS))
    return (
        f"SELECT id, {columns} FROM usage_rows WHERE cost IS NULL AND ts >= {mark(1)}"
        f" AND input_tokens + output_tokens > 0 ORDER BY id LIMIT {mark(2)}"
    )


def reprice_rollup(mark: Placeholder) -> str:
    """Moves one repriced row's cost into its rollup row."""
    key = " AND ".join(f"{quoted(d)} = {mark(i + 3)}" for i, d in enumerate(ROLLUP_DIMS))
    return (
        f"UPDATE {ROLLUP} SET cost = cost + {mark(1)}, unpriced_requests = unpriced_requests - 1,"
        f" unpriced_tokens = unpriced_tokens - {mark(2)} WHERE {key}"
    )


def decode_row(values: Sequence[Any]) -> UsageRow:
    """A raw row as stored (tags as JSON text) back into a UsageRow."""
    import json

    fields = dict(zip(ROW_COLUMNS, values, strict=True))
    fields["counted"] = bool(fields["counted"])
    tags = fields["tags"]
    fields["tags"] = json.loads(tags) if tags else None
    return UsageRow(**fields)


def encode_row(row: UsageRow) -> tuple[Any, ...]:
    import json

    out = []
    for name in ROW_COLUMNS:
        value = getattr(row, name)
        if name == "tags":
            value = json.dumps(value) if value else None
        out.append(value)
    return tuple(out)
