"""Where virtual keys and teams are kept: the same database as the usage ledger (SQLite by
default, PostgreSQL for several instances), two small tables of JSON records.

Every instance holds all of them in memory (gateway/governance/registry.py) and re-reads them
when `version()` changes, so the request path never queries the store. A revoked key is kept,
marked, so a revocation is a change every instance sees."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import msgspec

from gateway.governance.records import KeyRecord, TeamRecord
from gateway.store import beside_ledger, sql
from gateway.store.pgtables import PostgresTables
from gateway.store.sqlite import SQLiteFile

_TABLES = (
    "CREATE TABLE IF NOT EXISTS gateway_keys (id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL"
    " UNIQUE, updated_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS gateway_teams (name TEXT PRIMARY KEY,"
    " updated_at DOUBLE PRECISION NOT NULL, record TEXT NOT NULL)",
)
_VERSION = (
    "SELECT (SELECT COUNT(*) FROM gateway_keys), (SELECT MAX(updated_at) FROM gateway_keys),"
    " (SELECT COUNT(*) FROM gateway_teams), (SELECT MAX(updated_at) FROM gateway_teams)"
)


def _put_key(mark: sql.Placeholder) -> str:
    return (
        f"INSERT INTO gateway_keys VALUES ({mark(1)}, {mark(2)}, {mark(3)}, {mark(4)})"
        " ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash,"
        " updated_at = excluded.updated_at, record = excluded.record"
    )


def _put_team(mark: sql.Placeholder) -> str:
    return (
        f"INSERT INTO gateway_teams VALUES ({mark(1)}, {mark(2)}, {mark(3)}) ON CONFLICT (name)"
        " DO UPDATE SET updated_at = excluded.updated_at, record = excluded.record"
    )


_ENCODE = msgspec.json.Encoder()
_KEY = msgspec.json.Decoder(KeyRecord)
_TEAM = msgspec.json.Decoder(TeamRecord)


def _key_row(record: KeyRecord) -> tuple[Any, ...]:
    return record.id, record.secret_hash, record.updated_at, _ENCODE.encode(record).decode()


def _team_row(record: TeamRecord) -> tuple[Any, ...]:
    return record.name, record.updated_at, _ENCODE.encode(record).decode()


class KeyStore(Protocol):
    description: str

    async def open(self) -> None: ...
    async def version(self) -> tuple[Any, ...]: ...
    async def keys(self) -> list[KeyRecord]: ...
    async def teams(self) -> list[TeamRecord]: ...
    async def put_key(self, record: KeyRecord) -> None: ...
    async def put_team(self, record: TeamRecord) -> None: ...
    async def delete_team(self, name: str) -> bool: ...
    async def close(self) -> None: ...


def open_key_store(url: str | None, env: Mapping[str, str]) -> KeyStore:
    """Where the usage ledger is (the same `usage.store` URL), in tables of its own."""
    sqlite: Callable[[Path], KeyStore] = SQLiteKeyStore
    return beside_ledger(url, env, sqlite, PostgresKeyStore)


class SQLiteKeyStore(SQLiteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "keys-sqlite")

    def _prepare(self, db: sqlite3.Connection) -> None:
        for table in _TABLES:
            db.execute(table)

    def _query(self, text: str, *args: Any) -> list[tuple[Any, ...]]:
        return self._connection().execute(text, args).fetchall()

    async def open(self) -> None:
        await self._run(self._connection)

    async def version(self) -> tuple[Any, ...]:
        return tuple((await self._run(self._query, _VERSION))[0])

    async def keys(self) -> list[KeyRecord]:
        rows = await self._run(self._query, "SELECT record FROM gateway_keys")
        return [_KEY.decode(row[0]) for row in rows]

    async def teams(self) -> list[TeamRecord]:
        rows = await self._run(self._query, "SELECT record FROM gateway_teams")
        return [_TEAM.decode(row[0]) for row in rows]

    async def put_key(self, record: KeyRecord) -> None:
        await self._run(self._query, _put_key(sql.qmark), *_key_row(record))

    async def put_team(self, record: TeamRecord) -> None:
        await self._run(self._query, _put_team(sql.qmark), *_team_row(record))

    async def delete_team(self, name: str) -> bool:
        def delete() -> bool:
            cursor = self._connection().execute("DELETE FROM gateway_teams WHERE name = ?", (name,))
            return cursor.rowcount > 0

        return bool(await self._run(delete))


class PostgresKeyStore(PostgresTables):
    async def open(self) -> None:
        await self._create(_TABLES)

    async def version(self) -> tuple[Any, ...]:
        return tuple(await self._do("fetchrow", _VERSION))

    async def keys(self) -> list[KeyRecord]:
        rows = await self._do("fetch", "SELECT record FROM gateway_keys")
        return [_KEY.decode(row[0]) for row in rows]

    async def teams(self) -> list[TeamRecord]:
        rows = await self._do("fetch", "SELECT record FROM gateway_teams")
        return [_TEAM.decode(row[0]) for row in rows]

    async def put_key(self, record: KeyRecord) -> None:
        await self._do("execute", _put_key(sql.dollar), *_key_row(record))

    async def put_team(self, record: TeamRecord) -> None:
        await self._do("execute", _put_team(sql.dollar), *_team_row(record))

    async def delete_team(self, name: str) -> bool:
        status = await self._do("execute", "DELETE FROM gateway_teams WHERE name = $1", name)
        return str(status).endswith(" 1")
