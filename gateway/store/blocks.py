"""The embedded ledger's raw rows, stored a block at a time: up to BLOCK rows msgpack-encoded
into one BLOB, beside what finds them again.

A row of 36 columns cost SQLite ~6 µs to insert (its record, its time index, sqlite3 binding
each value); a block of a thousand costs ~0.3 µs a row, most of it msgspec's encoding
(benchmarks/RESULTS.md, "the ledger's layout"). Each block keeps its first row id (ids stay
contiguous and stable: a row's id is its block's first plus its place), its rows' time span,
how many are unpriced or carry bodies, and `keys`: every request id and every distinct value
of the other columns a query may filter by, each as `\\x1fcolumn=value\\x1f`. A query reads
only the blocks whose span overlaps its window and whose keys hold a value it asks for
(`instr` on bytes, in SQLite's C), decodes them, and filters their rows exactly: a key found
in a block is a hint, never an answer, so a value that happens to contain the separator
costs a decode, never a row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import attrgetter
from typing import Any, NamedTuple

import msgspec

from gateway.metering.row import UsageRow
from gateway.store.sql import ROW_FILTERS

BLOCK = 1000  # rows a block at most: a query decodes at most this many to find one
SEP = "\x1f"
_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(list[UsageRow]).decode
_OTHERS = tuple(c for c in ROW_FILTERS if c != "request_id")
_VALUES = attrgetter(*_OTHERS)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage_blocks (first INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
    " ts_min REAL NOT NULL, ts_max REAL NOT NULL, unpriced INTEGER NOT NULL,"
    " bodies INTEGER NOT NULL, keys BLOB NOT NULL, rows BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS usage_blocks_ts ON usage_blocks (ts_max)",
)
INSERT = "INSERT INTO usage_blocks VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
NEXT_ID = "SELECT COALESCE(MAX(first + count), 1) FROM usage_blocks"


class Block(NamedTuple):
    first: int
    size: int  # rows (the table's `count`)
    ts_min: float
    ts_max: float
    unpriced: int
    bodies: int
    keys: bytes
    rows: bytes


def unpriced(row: UsageRow) -> bool:
    return row.cost is None and row.input_tokens + row.output_tokens > 0


def has_body(row: UsageRow) -> bool:
    return row.request_body is not None or row.response_body is not None


def key(column: str, value: object) -> bytes:
    return f"{SEP}{column}={value}{SEP}".encode()


def block(first: int, rows: Sequence[UsageRow]) -> Block:
    """One block of rows, numbered from `first`."""
    keys = [SEP, "request_id=", f"{SEP}{SEP}request_id=".join([r.request_id for r in rows]), SEP]
    for values in set(map(_VALUES, rows)):
        for column, value in zip(_OTHERS, values, strict=True):
            if value is not None:
                keys.append(f"{SEP}{column}={value}{SEP}")
    stamps = [r.ts for r in rows]
    return Block(
        first, len(rows), min(stamps), max(stamps), sum(map(unpriced, rows)),
        sum(map(has_body, rows)), "".join(keys).encode(), _ENCODE(rows),
    )  # fmt: skip


def decode(data: bytes) -> list[UsageRow]:
    return _DECODE(data)


def encode(rows: Sequence[UsageRow]) -> bytes:
    return _ENCODE(rows)


def hints(filters: Mapping[str, Sequence[Any]]) -> tuple[str, list[Any]]:
    """The WHERE terms (and their parameters) that keep only blocks holding a value asked
    for in every filtered column."""
    terms: list[str] = []
    params: list[Any] = []
    for column, values in filters.items():
        if column not in ROW_FILTERS:
            raise ValueError(column)
        if not values:
            terms.append("0")
            continue
        terms.append("(" + " OR ".join(["instr(keys, ?) > 0"] * len(values)) + ")")
        params += [key(column, v) for v in values]
    return "".join(f" AND {t}" for t in terms), params


def matching(
    found: Iterable[tuple[int, bytes]],
    start: float,
    end: float,
    filters: Mapping[str, Sequence[Any]],
    keep: Any = None,
    *,
    reverse: bool = False,
) -> Iterator[tuple[int, UsageRow]]:
    """The rows of blocks (first id, rows) in the window and every filter, with their ids;
    `keep(id)` narrows by id (a page's bound); `reverse`: each block's rows newest first, for
    blocks read newest first."""
    wanted = [(attrgetter(c), frozenset(v)) for c, v in filters.items()]
    for first, data in found:
        rows = decode(data)
        for at in range(len(rows) - 1, -1, -1) if reverse else range(len(rows)):
            row = rows[at]
            if not start <= row.ts < end:
                continue
            if keep is not None and not keep(first + at):
                continue
            if all(get(row) in values for get, values in wanted):
                yield first + at, row


__all__ = [
    "BLOCK", "Block", "block", "decode", "encode", "has_body", "hints", "matching", "unpriced",
]  # fmt: skip
