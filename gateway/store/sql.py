"""The ledger's SQL, shared by SQLite and PostgreSQL: the tables, the rollups' folds (in the
database for PostgreSQL, upserted from Python's sums for SQLite), and the grouped query.
Identifiers come only from the fixed lists here, never from a request; every value is a bound
parameter, written `?` for SQLite and `$n` for PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec

from gateway.metering.fold import Fold, coarser
from gateway.metering.row import (
    BUCKETS,
    FAULTS,
    LATENCY_MEASURES,
    MEASURES,
    ROLLUP_DIMENSIONS,
    TTFT_MEASURES,
    UsageRow,
)
from gateway.store.base import RowQuery, Totals

ROW_COLUMNS = tuple(f for f in UsageRow.__struct_fields__)
DIMENSION_TYPES = {"minute": "BIGINT", "status": "INTEGER"}
MEASURE_TYPES = {"latency_ms": "DOUBLE PRECISION", "ttft_ms": "DOUBLE PRECISION"}
ROW_TYPES = {
    "ts": "DOUBLE PRECISION", "status": "INTEGER", "input_tokens": "BIGINT",
    "cached_tokens": "BIGINT", "cache_write_tokens": "BIGINT", "output_tokens": "BIGINT",
    "reasoning_tokens": "BIGINT", "counted": "BOOLEAN", "cost": "BIGINT", "saved": "BIGINT",
    "latency_ms": "DOUBLE PRECISION", "ttft_ms": "DOUBLE PRECISION", "attempts": "INTEGER",
    "latency_bucket": "INTEGER", "ttft_bucket": "INTEGER", "cache_write_1h_tokens": "BIGINT",
}  # fmt: skip
# Which raw-row columns a /v1/usage/requests filter may name.
ROW_FILTERS = (
    "request_id", "key_id", "user", "team", "feature", "model", "provider", "status", "route",
)  # fmt: skip

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


ROLLUP = "usage_minute"
TAG_ROLLUP = "usage_tag_minute"
ROLLUP_DIMS = ROLLUP_DIMENSIONS
TAG_DIMS = ("minute", "tag")
# The same sums per hour and per day (their `minute` column is the period's start, in UTC): a
# 30-day query reads ~30 day rows per combination instead of 43,200 minute rows.
COARSER = ((86400, "usage_day"), (3600, "usage_hour"))
LEVELS = ((60, ROLLUP), *COARSER)  # (period width, table): every rollup by every dimension


def plan(query: Totals) -> list[tuple[str, Totals]]:
    """The query's range cut into spans, each read from the coarsest rollup that covers it
    whole: whole days from the day rollup, whole hours at its edges from the hour rollup,
    the remaining minutes from the minute rollup. A rollup coarser than the query's bucket is
    not used; nor for tags, which have a minute rollup only."""
    if "tag" in query.group_by or "tag" in query.filters:
        return [(TAG_ROLLUP, query)]
    spans: list[tuple[str, Totals]] = []
    levels = [(w, t) for w, t in COARSER if not query.bucket or query.bucket % w == 0]

    def cut(start: int, end: int, depth: int) -> None:
        if start >= end:
            return
        if depth == len(levels):
            spans.append((ROLLUP, query._replace(start=start, end=end)))
            return
        width, table = levels[depth]
        first, last = -(-start // width) * width, end // width * width
        if first >= last:
            cut(start, end, depth + 1)
            return
        cut(start, first, depth + 1)
        spans.append((table, query._replace(start=first, end=last)))
        cut(last, end, depth + 1)

    cut(query.start, query.end, 0)
    return spans


def merge(parts: Sequence[list[dict[str, Any]]], query: Totals) -> list[dict[str, Any]]:
    """The spans' grouped sums added up, group by group (a span's answer when there is one)."""
    found = [rows for rows in parts if rows]
    if len(found) <= 1:
        return found[0] if found else (parts[0] if parts else [])
    keys = [d for d in query.group_by if d in ROLLUP_DIMS]  # tags are read in one span
    if query.bucket:
        keys.append("bucket")
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rows in found:
        for row in rows:
            group = tuple(row[k] for k in keys)
            into = merged.get(group)
            if into is None:
                merged[group] = dict(row)
                continue
            for m in MEASURES:
                value = row[m]
                if value is not None:
                    into[m] = value if into[m] is None else into[m] + value
    return list(merged.values())


def totals(query: Totals, mark: Placeholder, table: str = ROLLUP) -> tuple[str, list[Any]]:
    """The grouped sum over one rollup table (by tag when the query groups or filters by
    tag; tags have their own rollup, so tag totals carry no other dimension). Parameters are
    bound in the order they appear, as `?` needs."""
    by_tag = table == TAG_ROLLUP
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
        where.append(f"id {'<' if query.newest_first else '>'} {mark(len(params))}")
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
        f" ORDER BY id{' DESC' if query.newest_first else ''} LIMIT {mark(len(params))}"
    )
    return sql, params


def unpriced(mark: Placeholder) -> str:
    columns = ", ".join(map(quoted, ROW_COLUMNS))
    return (
        f"SELECT id, {columns} FROM usage_rows WHERE cost IS NULL AND ts >= {mark(1)}"
        f" AND input_tokens + output_tokens > 0 ORDER BY id LIMIT {mark(2)}"
    )


def reprice_rollups(mark: Placeholder) -> list[tuple[int, str]]:
    """Moves one repriced row's cost into its rollup rows: (period width, statement) for the
    minute, hour and day rollups; the first key value bound is the period's start."""
    key = " AND ".join(f"{quoted(d)} = {mark(i + 3)}" for i, d in enumerate(ROLLUP_DIMS))
    return [
        (
            width,
            f"UPDATE {table} SET cost = cost + {mark(1)},"
            f" unpriced_requests = unpriced_requests - 1,"
            f" unpriced_tokens = unpriced_tokens - {mark(2)} WHERE {key}",
        )
        for width, table in LEVELS
    ]


def erase_bodies(mark: Placeholder) -> str:
    return (
        "UPDATE usage_rows SET request_body = NULL, response_body = NULL"
        f" WHERE ts < {mark(1)} AND (request_body IS NOT NULL OR response_body IS NOT NULL)"
    )


def decode_row(values: Sequence[Any]) -> UsageRow:
    """A raw row as stored (ROW_COLUMNS, UsageRow's fields in order) back into a UsageRow."""
    if len(values) != len(ROW_COLUMNS):
        raise ValueError(f"a ledger row has {len(ROW_COLUMNS)} columns, got {len(values)}")
    row = UsageRow(*values)
    row.counted = bool(row.counted)  # SQLite keeps booleans as 0 and 1
    return row


encode_row = msgspec.structs.astuple  # the row's fields, in column order: one C call


def written_ids(rows: Sequence[UsageRow], mark: Placeholder) -> tuple[str, list[Any]]:
    """Which of these rows the store already holds (a replayed spool): their request ids
    and arrival times, among the rows in the batch's time span."""
    params: list[Any] = [min(r.ts for r in rows), max(r.ts for r in rows)]
    slots = []
    for row in rows:
        params.append(row.request_id)
        slots.append(mark(len(params)))
    text = (f"SELECT request_id, ts FROM usage_rows WHERE ts >= {mark(1)} AND ts <= {mark(2)}"
            f" AND request_id IN ({', '.join(slots)})")  # fmt: skip
    return text, params


def unwritten(rows: list[UsageRow], written: Iterable[Sequence[Any]]) -> list[UsageRow]:
    held = {(found[0], found[1]) for found in written}
    return [row for row in rows if (row.request_id, row.ts) not in held]


# What each rollup measure sums, over raw rows (MEASURES' order).
_UNPRICED = "cost IS NULL AND input_tokens + output_tokens > 0"
_SUMS = (
    "COUNT(*)",
    "SUM(CASE WHEN status >= 200 AND status < 400 THEN 0 ELSE 1 END)",
    "SUM(CASE WHEN cache IN ('HIT', 'SEMANTIC_HIT') THEN 1 ELSE 0 END)",
    "SUM(input_tokens)", "SUM(cached_tokens)", "SUM(cache_write_tokens)", "SUM(output_tokens)",
    "SUM(reasoning_tokens)", "SUM(COALESCE(cost, 0))", "SUM(saved)",
    f"SUM(CASE WHEN {_UNPRICED} THEN 1 ELSE 0 END)",
    f"SUM(CASE WHEN {_UNPRICED} THEN input_tokens + output_tokens ELSE 0 END)",
    "SUM(latency_ms)",
    *(f"SUM(CASE WHEN fault = '{fault}' THEN 1 ELSE 0 END)" for fault in FAULTS),
    "SUM(CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END)", "SUM(COALESCE(ttft_ms, 0))",
    *(f"SUM(CASE WHEN latency_bucket = {k} THEN 1 ELSE 0 END)" for k in range(BUCKETS)),
    *(f"SUM(CASE WHEN ttft_bucket = {k} THEN 1 ELSE 0 END)" for k in range(BUCKETS)),
)  # fmt: skip
assert len(_SUMS) == len(MEASURES)

# Schema version 2 added these raw-row columns and rollup measures to version 1's tables;
# version 3, the routing decision's columns.
_V1_ROW_COLUMNS = ROW_COLUMNS[: ROW_COLUMNS.index("tags") + 1]
_V2_ROW_COLUMNS = ROW_COLUMNS[: ROW_COLUMNS.index("response_body") + 1]
_V1_MEASURES = MEASURES[: MEASURES.index("latency_ms") + 1]


# Version 3 added the route dimension to the rollups.
_V2_ROLLUP_DIMS = tuple(d for d in ROLLUP_DIMS if d != "route")


def coarser_tables(suffix: str = "", dims: Sequence[str] = ROLLUP_DIMS) -> list[str]:
    """CREATE TABLE for the hour and day rollups (`suffix`: " WITHOUT ROWID" in SQLite)."""
    return [rollup_table(table, dims) + suffix for _, table in COARSER]


def migration_2(if_not_exists: str, suffix: str = "") -> list[str]:
    """From version 1 to 2: the new raw-row columns and rollup measures (`if_not_exists` is
    "IF NOT EXISTS" where the dialect has it), then the hour and day rollups, filled from
    the minute rollup."""
    out = [
        f"ALTER TABLE usage_rows ADD COLUMN {if_not_exists} {quoted(c)} {ROW_TYPES.get(c, 'TEXT')}"
        for c in _V2_ROW_COLUMNS
        if c not in _V1_ROW_COLUMNS
    ]
    for table in (ROLLUP, TAG_ROLLUP):
        out += [
            f"ALTER TABLE {table} ADD COLUMN {if_not_exists} {quoted(m)}"
            f" {MEASURE_TYPES.get(m, 'BIGINT')} NOT NULL DEFAULT 0"
            for m in MEASURES
            if m not in _V1_MEASURES
        ]
    v2 = _V2_ROLLUP_DIMS
    return [*out, *coarser_tables(suffix, v2), *backfill_coarser(v2)]


_V3_ROW_COLUMNS = ROW_COLUMNS[: ROW_COLUMNS.index("route_reason") + 1]


def migration_4(if_not_exists: str) -> list[str]:
    """From version 3 to 4: the raw rows' hour-long cache writes (priced apart)."""
    return [
        f"ALTER TABLE usage_rows ADD COLUMN {if_not_exists} {quoted(c)} {ROW_TYPES[c]}"
        " NOT NULL DEFAULT 0"
        for c in ROW_COLUMNS
        if c not in _V3_ROW_COLUMNS
    ]


def migration_3(if_not_exists: str, suffix: str = "") -> list[str]:
    """From version 2 to 3: the routing decision's raw-row columns, and each rollup rebuilt
    with the route dimension (its rows kept, with route "")."""
    out = [
        f"ALTER TABLE usage_rows ADD COLUMN {if_not_exists} {quoted(c)} {ROW_TYPES.get(c, 'TEXT')}"
        for c in _V3_ROW_COLUMNS
        if c not in _V2_ROW_COLUMNS
    ]
    old = ", ".join(map(quoted, (*_V2_ROLLUP_DIMS, *MEASURES)))
    for _, table in LEVELS:
        out += [
            f"DROP TABLE IF EXISTS {table}_v3",
            rollup_table(f"{table}_v3", ROLLUP_DIMS) + suffix,
            f"INSERT INTO {table}_v3 ({old}, route) SELECT {old}, '' FROM {table}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_v3 RENAME TO {table}",
        ]
    return out


def backfill_coarser(dimensions: Sequence[str] = ROLLUP_DIMS) -> list[str]:
    """The hour and day rollups computed from the minute rollup."""
    out = []
    dims = ", ".join(map(quoted, dimensions))
    others = ", ".join(map(quoted, dimensions[1:]))
    measures = ", ".join(map(quoted, MEASURES))
    sums = ", ".join(f"SUM({quoted(m)})" for m in MEASURES)
    groups = ", ".join(str(i + 1) for i in range(len(dimensions)))
    for width, table in COARSER:
        out.append(
            f"INSERT INTO {table} ({dims}, {measures}) SELECT (minute / {width}) * {width},"
            f" {others}, {sums} FROM {ROLLUP} GROUP BY {groups}"
        )
    return out


BATCH = "batch_minute"  # a session's temporary table: one batch's minute sums
# What the raw rows are summed into per batch: every measure but the histograms, which are
# counted by grouping on the rows' bucket numbers instead (two integer columns, not 50 CASEs
# a row), and spread into their columns from those few sums.
HISTOGRAMS = frozenset((*LATENCY_MEASURES, *TTFT_MEASURES))
_PLAIN = tuple(m for m in MEASURES if m not in HISTOGRAMS)
_PLAIN_SUMS = tuple(s for m, s in zip(MEASURES, _SUMS, strict=True) if m not in HISTOGRAMS)


def batch_table(suffix: str = "") -> str:
    """CREATE TEMP TABLE for one batch's minute sums (`suffix`: PostgreSQL's ON COMMIT)."""
    cols = [f"{quoted(d)} {DIMENSION_TYPES.get(d, 'TEXT')} NOT NULL" for d in ROLLUP_DIMS]
    cols += ["latency_bucket INTEGER", "ttft_bucket INTEGER"]
    cols += [f"{quoted(m)} {MEASURE_TYPES.get(m, 'BIGINT')} NOT NULL" for m in _PLAIN]
    return f"CREATE TEMP TABLE IF NOT EXISTS {BATCH} ({', '.join(cols)}){suffix}"


def _spread() -> list[str]:
    """Every measure's sum over batch rows, the histograms from the bucket columns."""
    out = []
    for m in MEASURES:
        if m in LATENCY_MEASURES:
            k = LATENCY_MEASURES.index(m)
            out.append(f"SUM(CASE WHEN latency_bucket = {k} THEN requests ELSE 0 END)")
        elif m in TTFT_MEASURES:
            k = TTFT_MEASURES.index(m)
            out.append(f"SUM(CASE WHEN ttft_bucket = {k} THEN ttft_count ELSE 0 END)")
        else:
            out.append(f"SUM({quoted(m)})")
    return out


def fold(source: str, where: str, tag_values: str, seconds: str) -> list[str]:
    """PostgreSQL's fold: the statements that add the raw rows of `source` matching `where`
    into the rollups, run by the database (on its own host, as the gateway's CPU is not).
    The raw rows are summed once into the batch table, per minute, every dimension and
    latency bucket; the minute, hour and day rollups are upserted from those few sums, and
    the tag rollup from the rows with tags (`tag_values` unnests a row's JSON tags as a table
    with a `value` column; `seconds` is ts rounded down, in the dialect at hand). The
    database does the grouping, in C."""
    dims_list = ", ".join(map(quoted, ROLLUP_DIMS))
    others = ", ".join(map(quoted, ROLLUP_DIMS[1:]))
    measures = ", ".join(map(quoted, MEASURES))
    plain = ", ".join(map(quoted, _PLAIN))
    spread = ", ".join(_spread())
    updates = ", ".join(f"{quoted(m)} = {{t}}.{quoted(m)} + excluded.{quoted(m)}" for m in MEASURES)
    groups = ", ".join(str(i + 1) for i in range(len(ROLLUP_DIMS)))
    minute = f"({seconds} / 60) * 60"
    dims = [
        minute, "endpoint", "COALESCE(key_id, '')", "COALESCE(team, '')",
        'COALESCE("user", \'\')', "COALESCE(feature, '')", "model", "provider", "status",
        "COALESCE(route, '')",
    ]  # fmt: skip
    statements = [
        f"INSERT INTO {BATCH} ({dims_list}, latency_bucket, ttft_bucket, {plain})"
        f" SELECT {', '.join(dims)}, latency_bucket, ttft_bucket, {', '.join(_PLAIN_SUMS)}"
        f" FROM {source} WHERE {where}"
        f" GROUP BY {groups}, {len(ROLLUP_DIMS) + 1}, {len(ROLLUP_DIMS) + 2}",
    ]
    for width, table in LEVELS:
        statements.append(
            f"INSERT INTO {table} ({dims_list}, {measures})"
            f" SELECT (minute / {width}) * {width}, {others}, {spread} FROM {BATCH} WHERE 1 = 1"
            f" GROUP BY {groups} ON CONFLICT ({dims_list})"
            f" DO UPDATE SET {updates.format(t=table)}"
        )
    statements.append(
        f"INSERT INTO {TAG_ROLLUP} (minute, tag, {measures})"
        f" SELECT {minute}, tv.value, {', '.join(_SUMS)} FROM {source}, {tag_values}"
        f" WHERE {where} AND tags IS NOT NULL GROUP BY 1, 2 ON CONFLICT (minute, tag)"
        f" DO UPDATE SET {updates.format(t=TAG_ROLLUP)}"
    )
    return statements


def upsert(table: str, dimensions: Sequence[str], mark: Placeholder) -> str:
    """Adds one row of folded sums (metering/fold.py) into a rollup: its dimensions, then
    every measure in MEASURES' order, as parameters."""
    columns = [*dimensions, *MEASURES]
    names = ", ".join(map(quoted, columns))
    marks = ", ".join(mark(i + 1) for i in range(len(columns)))
    adds = ", ".join(f"{quoted(m)} = {table}.{quoted(m)} + excluded.{quoted(m)}" for m in MEASURES)
    key = ", ".join(map(quoted, dimensions))
    return (
        f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT ({key}) DO UPDATE SET {adds}"
    )


def upserts(mark: Placeholder) -> dict[str, str]:
    """Each rollup table's upsert: the minute, hour and day rollups, and the tag rollup."""
    out = {table: upsert(table, ROLLUP_DIMS, mark) for _, table in LEVELS}
    out[TAG_ROLLUP] = upsert(TAG_ROLLUP, TAG_DIMS, mark)
    return out


def folded(rows: Sequence[UsageRow] | Fold) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """SQLite's fold, done in Python (metering/fold.py) before the write: a batch's rollup
    rows (of its rows, or their Fold) as (table, parameter rows) for each rollup (`upserts`
    has their statements), each rollup's rows in key order, as its index is walked."""
    if not isinstance(rows, Fold):
        summed, rows = rows, Fold()
        rows.add(summed)
    minutes, tags = rows.minutes(), rows.tags
    out = []
    for width, table in LEVELS:
        sums = minutes if width == 60 else coarser(minutes, width)
        out.append((table, [(*key, *values) for key, values in sorted(sums.items())]))
    out.append((TAG_ROLLUP, [(*key, *values) for key, values in sorted(tags.items())]))
    return out
