"""Where /v1/responses keeps what `store` asks for: the usage ledger's database (SQLite by
default, PostgreSQL for several instances), one table of JSON records keyed by response id,
each with the partition (the caller) it belongs to and when it was made."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from gateway.store import beside_ledger
from gateway.store.pgtables import PostgresTables
from gateway.store.sqlite import SQLiteFile

_TABLE = (
    "CREATE TABLE IF NOT EXISTS gateway_responses (id TEXT PRIMARY KEY, partition TEXT NOT NULL,"
    " created_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS gateway_responses_created ON gateway_responses (created_at)"


class ResponseStore(Protocol):
    description: str

    async def open(self) -> None: ...
    async def put(self, rows: list[tuple[str, str, float, str]]) -> None: ...
    async def get(self, response_id: str) -> tuple[str, str] | None:
        """The partition and record of a response, if kept."""
        ...

    async def delete(self, response_id: str) -> bool: ...
    async def prune(self, before: float) -> int: ...
    async def close(self) -> None: ...


def open_response_store(url: str | None, env: Mapping[str, str]) -> ResponseStore:
    """Where the usage ledger is (the same `usage.store` URL), in a table of its own."""
    sqlite: Callable[[Path], ResponseStore] = SQLiteResponseStore
    return beside_ledger(url, env, sqlite, PostgresResponseStore)


class SQLiteResponseStore(SQLiteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "responses-sqlite")

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute(_TABLE)
        db.execute(_INDEX)

    async def open(self) -> None:
        await self._run(self._connection)

    async def put(self, rows: list[tuple[str, str, float, str]]) -> None:
        def put() -> None:
            db = self._connection()
            db.execute("BEGIN")
            try:
                db.executemany("INSERT OR REPLACE INTO gateway_responses VALUES (?, ?, ?, ?)", rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._run(put)

    async def get(self, response_id: str) -> tuple[str, str] | None:
        def get() -> tuple[str, str] | None:
            row = (
                self._connection()
                .execute(
                    "SELECT partition, record FROM gateway_responses WHERE id = ?", (response_id,)
                )
                .fetchone()
            )
            return (row[0], row[1]) if row else None

        found: tuple[str, str] | None = await self._run(get)
        return found

    async def delete(self, response_id: str) -> bool:
        def delete() -> bool:
            cursor = self._connection().execute(
                "DELETE FROM gateway_responses WHERE id = ?", (response_id,)
            )
            return cursor.rowcount > 0

        return bool(await self._run(delete))

    async def prune(self, before: float) -> int:
        def prune() -> int:
            cursor = self._connection().execute(
                "DELETE FROM gateway_responses WHERE created_at < ?", (before,)
            )
            return cursor.rowcount

        return int(await self._run(prune))


class PostgresResponseStore(PostgresTables):
    def __init__(self, url: str) -> None:
        super().__init__(url, max_size=4)

    async def open(self) -> None:
        await self._create((_TABLE, _INDEX))

    async def put(self, rows: list[tuple[str, str, float, str]]) -> None:
        await self._do(
            "executemany",
            "INSERT INTO gateway_responses VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE"
            " SET partition = excluded.partition, created_at = excluded.created_at,"
            " record = excluded.record",
            rows,
        )

    async def get(self, response_id: str) -> tuple[str, str] | None:
        row = await self._do(
            "fetchrow", "SELECT partition, record FROM gateway_responses WHERE id = $1",
            response_id,
        )  # fmt: skip
        return (row[0], row[1]) if row else None

    async def delete(self, response_id: str) -> bool:
        status = await self._do("execute", "DELETE FROM gateway_responses WHERE id = $1",
                                response_id)  # fmt: skip
        return str(status).endswith(" 1")

    async def prune(self, before: float) -> int:
        status = await self._do("execute", "DELETE FROM gateway_responses WHERE created_at < $1",
                                before)  # fmt: skip
        return int(str(status).rsplit(" ", 1)[-1] or 0)
