"""Where shadow comparisons are kept: a table beside the usage ledger, one row per sampled
request, with both answers (capped), both costs and latencies and how alike the answers were.
The shadow call itself is metered like any request (a ledger row with route `shadow`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from gateway.store import beside_ledger
from gateway.store.pgtables import PostgresTables
from gateway.store.sqlite import SQLiteFile

_TABLE = (
    "CREATE TABLE IF NOT EXISTS gateway_shadow (request_id TEXT PRIMARY KEY,"
    " shadow_request_id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, model TEXT NOT NULL,"
    " incumbent TEXT, candidate TEXT NOT NULL, incumbent_cost BIGINT, candidate_cost BIGINT,"
    " incumbent_ms DOUBLE PRECISION, candidate_ms DOUBLE PRECISION, status INTEGER NOT NULL,"
    " similarity DOUBLE PRECISION, exact BOOLEAN, json_valid BOOLEAN,"
    " incumbent_answer TEXT, candidate_answer TEXT)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS gateway_shadow_ts ON gateway_shadow (ts)"
_COLUMNS = 16


class Comparison(msgspec.Struct, array_like=True):
    request_id: str  # the incumbent's
    shadow_request_id: str
    ts: float
    model: str  # the route the client asked for
    incumbent: str | None  # provider/model that answered the client
    candidate: str
    incumbent_cost: int | None  # nano-dollars
    candidate_cost: int | None
    incumbent_ms: float
    candidate_ms: float
    status: int  # the candidate's
    similarity: float | None  # cosine of the two answers' embeddings
    exact: bool | None
    json_valid: bool | None  # when the request asked for JSON: whether the candidate's parses
    incumbent_answer: str | None
    candidate_answer: str | None


_SUMMARY = (
    "SELECT model, candidate, COUNT(*), SUM(CASE WHEN status = 200 THEN 1 ELSE 0 END),"
    " SUM(incumbent_cost), SUM(candidate_cost), AVG(incumbent_ms), AVG(candidate_ms),"
    " AVG(similarity), AVG(CASE WHEN exact THEN 1.0 ELSE 0.0 END),"
    " COUNT(json_valid), SUM(CASE WHEN json_valid THEN 1 ELSE 0 END)"
    " FROM gateway_shadow WHERE ts >= {0} AND ts < {1} GROUP BY model, candidate"
    " ORDER BY model, candidate"
)


def _summary(rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
    out = []
    for (model, candidate, n, ok, cost_in, cost_out, ms_in, ms_out, similar, exact,
         asked_json, valid_json) in rows:  # fmt: skip
        out.append({
            "model": model, "candidate": candidate, "requests": int(n), "answered": int(ok),
            "incumbent_cost": int(cost_in or 0), "candidate_cost": int(cost_out or 0),
            "incumbent_latency_ms": float(ms_in or 0), "candidate_latency_ms": float(ms_out or 0),
            "mean_similarity": None if similar is None else float(similar),
            "exact_rate": float(exact or 0),
            "json_valid_rate": float(valid_json) / asked_json if asked_json else None,
        })  # fmt: skip
    return out


class ShadowStore(Protocol):
    description: str

    async def open(self) -> None: ...
    async def put(self, row: Comparison) -> None: ...
    async def summary(self, start: float, end: float) -> list[dict[str, Any]]: ...
    async def rows(self, start: float, end: float, limit: int) -> list[Comparison]: ...
    async def prune(self, before: float) -> int: ...
    async def close(self) -> None: ...


def open_shadow_store(url: str | None, env: Mapping[str, str]) -> ShadowStore:
    sqlite: Callable[[Path], ShadowStore] = SQLiteShadowStore
    return beside_ledger(url, env, sqlite, PostgresShadowStore)


def _values(row: Comparison) -> tuple[Any, ...]:
    return tuple(getattr(row, f) for f in row.__struct_fields__)


class SQLiteShadowStore(SQLiteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "shadow-sqlite")

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute(_TABLE)
        db.execute(_INDEX)

    async def open(self) -> None:
        await self._run(self._connection)

    async def put(self, row: Comparison) -> None:
        text = f"INSERT OR REPLACE INTO gateway_shadow VALUES ({', '.join('?' * _COLUMNS)})"
        values = _values(row)
        await self._run(lambda: self._connection().execute(text, values))

    async def summary(self, start: float, end: float) -> list[dict[str, Any]]:
        text = _SUMMARY.format("?", "?")
        found = await self._run(lambda: self._connection().execute(text, (start, end)).fetchall())
        return _summary(found)

    async def rows(self, start: float, end: float, limit: int) -> list[Comparison]:
        text = "SELECT * FROM gateway_shadow WHERE ts >= ? AND ts < ? ORDER BY ts DESC LIMIT ?"
        found = await self._run(
            lambda: self._connection().execute(text, (start, end, limit)).fetchall()
        )
        return [Comparison(*r[:-4], *(None if v is None else bool(v) for v in r[-4:-2]),
                           *r[-2:]) for r in found]  # fmt: skip

    async def prune(self, before: float) -> int:
        text = "DELETE FROM gateway_shadow WHERE ts < ?"
        return int(await self._run(lambda: self._connection().execute(text, (before,)).rowcount))


class PostgresShadowStore(PostgresTables):
    def __init__(self, url: str) -> None:
        super().__init__(url, max_size=2)

    async def open(self) -> None:
        await self._create((_TABLE, _INDEX))

    async def put(self, row: Comparison) -> None:
        marks = ", ".join(f"${i + 1}" for i in range(_COLUMNS))
        await self._do(
            "execute",
            f"INSERT INTO gateway_shadow VALUES ({marks}) ON CONFLICT (request_id) DO NOTHING",
            *_values(row),
        )

    async def summary(self, start: float, end: float) -> list[dict[str, Any]]:
        return _summary(await self._do("fetch", _SUMMARY.format("$1", "$2"), start, end))

    async def rows(self, start: float, end: float, limit: int) -> list[Comparison]:
        found = await self._do(
            "fetch",
            "SELECT * FROM gateway_shadow WHERE ts >= $1 AND ts < $2 ORDER BY ts DESC LIMIT $3",
            start, end, limit,
        )  # fmt: skip
        return [Comparison(*r) for r in found]

    async def prune(self, before: float) -> int:
        status = await self._do("execute", "DELETE FROM gateway_shadow WHERE ts < $1", before)
        return int(str(status).rsplit(" ", 1)[-1] or 0)
