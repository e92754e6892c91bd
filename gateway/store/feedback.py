"""Where POST /v1/feedback keeps its scores: a table beside the usage ledger (SQLite by
default, PostgreSQL for several instances), one row per scored request, carrying what the
summary groups by (the request's model and routing decision) and its cost, copied from the
ledger when the score arrives, so a summary never joins the raw rows."""

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
    "CREATE TABLE IF NOT EXISTS gateway_feedback (request_id TEXT PRIMARY KEY, key_id TEXT,"
    " ts DOUBLE PRECISION NOT NULL, model TEXT NOT NULL, route TEXT, cost BIGINT,"
    " score DOUBLE PRECISION, label TEXT, comment TEXT)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS gateway_feedback_ts ON gateway_feedback (ts)"
GROUPS = ("model", "route", "label")  # what a summary may group by
Summary = list[dict[str, Any]]


class FeedbackRow(msgspec.Struct, array_like=True):
    request_id: str
    key_id: str | None
    ts: float  # when the score was given
    model: str
    route: str | None
    cost: int | None  # the request's, in nano-dollars
    score: float | None
    label: str | None
    comment: str | None


def _summary_sql(groups: Sequence[str], mark: Callable[[int], str]) -> str:
    names = ", ".join(groups)
    select = f"{names}, " if groups else ""
    tail = f" GROUP BY {names} ORDER BY {names}" if groups else ""
    return (
        f"SELECT {select}COUNT(*), COUNT(score), AVG(score), SUM(cost), COUNT(cost)"
        f" FROM gateway_feedback WHERE ts >= {mark(1)} AND ts < {mark(2)}{tail}"
    )


def _summary(groups: Sequence[str], rows: Sequence[Sequence[Any]]) -> Summary:
    out = []
    for row in rows:
        n = len(groups)
        found = dict(zip(groups, row[:n], strict=True))
        count, scored, mean, cost, priced = row[n:]
        found.update(
            feedback=int(count), scored=int(scored),
            mean_score=None if mean is None else float(mean),
            cost=int(cost or 0), priced=int(priced),
        )  # fmt: skip
        out.append(found)
    return out


class FeedbackStore(Protocol):
    description: str

    async def open(self) -> None: ...
    async def put(self, row: FeedbackRow) -> None:
        """Keeps a score; a later one for the same request replaces it."""

    async def summary(self, start: float, end: float, groups: Sequence[str]) -> Summary:
        """Per group: feedback (rows), scored, mean_score, cost (nano-dollars), priced."""
        ...

    async def close(self) -> None: ...


def open_feedback_store(url: str | None, env: Mapping[str, str]) -> FeedbackStore:
    sqlite: Callable[[Path], FeedbackStore] = SQLiteFeedbackStore
    return beside_ledger(url, env, sqlite, PostgresFeedbackStore)


class SQLiteFeedbackStore(SQLiteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "feedback-sqlite")

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute(_TABLE)
        db.execute(_INDEX)

    async def open(self) -> None:
        await self._run(self._connection)

    async def put(self, row: FeedbackRow) -> None:
        values = tuple(getattr(row, f) for f in row.__struct_fields__)

        def put() -> None:
            self._connection().execute(
                "INSERT OR REPLACE INTO gateway_feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values
            )

        await self._run(put)

    async def summary(self, start: float, end: float, groups: Sequence[str]) -> Summary:
        text = _summary_sql(groups, lambda _: "?")

        def read() -> list[Any]:
            return self._connection().execute(text, (start, end)).fetchall()

        return _summary(groups, await self._run(read))


class PostgresFeedbackStore(PostgresTables):
    def __init__(self, url: str) -> None:
        super().__init__(url, max_size=2)

    async def open(self) -> None:
        await self._create((_TABLE, _INDEX))

    async def put(self, row: FeedbackRow) -> None:
        await self._do(
            "execute",
            "INSERT INTO gateway_feedback VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            " ON CONFLICT (request_id) DO UPDATE SET ts = excluded.ts, score = excluded.score,"
            " label = excluded.label, comment = excluded.comment",
            *(getattr(row, f) for f in row.__struct_fields__),
        )

    async def summary(self, start: float, end: float, groups: Sequence[str]) -> Summary:
        text = _summary_sql(groups, lambda i: f"${i}")
        return _summary(groups, await self._do("fetch", text, start, end))
