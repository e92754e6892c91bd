"""Fresh PostgreSQL databases on the machine's server (127.0.0.1:5432, trust auth, database
`test`), for the ledger's tests; a test that finds no server fails saying how to start one."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

PG = "postgresql://postgres@127.0.0.1:5432/{db}"


def postgres_database() -> str:
    """A fresh database on the machine's PostgreSQL, dropped by the caller."""
    name = f"gw_test_{secrets.token_hex(4)}"

    async def create() -> None:
        try:
            conn = await asyncpg.connect(PG.format(db="test"), timeout=5)
        except (OSError, asyncpg.PostgresError) as err:
            pytest.fail(
                f"PostgreSQL is needed on 127.0.0.1:5432 with trust auth and a database `test`"
                f" (apt-get install postgresql; service postgresql start): {err}"
            )
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return name


def drop_database(name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(PG.format(db="test"), timeout=5)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await conn.close()

    asyncio.run(drop())
