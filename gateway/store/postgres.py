"""The shared usage store: PostgreSQL through asyncpg, for several gateway instances.

Raw rows go in with COPY into a table partitioned by day (partitions made ahead as days come,
dropped whole for retention: never a DELETE that bloats indexes); each instance upserts its own
minute rollups (INSERT … ON CONFLICT DO UPDATE adds), so instances never lock each other out.
The schema is created and migrated at start under an advisory lock, so instances starting
together agree; migrations are versioned and idempotent.
"""

from __future__ import annotations

import datetime
from typing import Any
from urllib.parse import urlsplit

from gateway.metering.row import UsageRow, rollup_key
from gateway.store import sql
from gateway.store.base import RowQuery, StoreError, Totals

SCHEMA_VERSION = 4
_LOCK = 0x6761746577617901  # the migration's advisory lock ("gateway" + 1)
# Each batch is COPYed into a session's staging table (emptied at commit), moved into the
# partitioned table, and folded into the rollups from there: only this batch, whatever other
# instances write meanwhile.
_STAGE = f"CREATE TEMP TABLE IF NOT EXISTS usage_stage ({sql.row_columns()}) ON COMMIT DELETE ROWS"
_COLUMNS = ", ".join(map(sql.quoted, sql.ROW_COLUMNS))
_MOVE = f"INSERT INTO usage_rows ({_COLUMNS}) SELECT {_COLUMNS} FROM usage_stage"
_FOLD = sql.fold(
    "usage_stage", "TRUE", "jsonb_array_elements_text(usage_stage.tags::jsonb) AS tv(value)",
    "CAST(FLOOR(ts) AS BIGINT)",
)  # fmt: skip


_REPRICE = sql.reprice_rollups(sql.dollar)
_BATCH = sql.batch_table(" ON COMMIT DELETE ROWS")


def _day(ts: float) -> datetime.date:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).date()


class PostgresStore:
    schema_version = SCHEMA_VERSION

    def __init__(self, url: str, *, pool_size: int = 4, timeout: float = 5.0) -> None:
        self._url = url
        parts = urlsplit(url)
        self.description = (
            f"postgresql:{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        )
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: Any = None
        self._days: set[datetime.date] = set()

    async def _connected(self) -> Any:
        import asyncpg

        if self._pool is None:
            try:
                self._pool = await asyncpg.create_pool(
                    self._url, min_size=1, max_size=self._pool_size, timeout=self._timeout,
                    command_timeout=30,
                )  # fmt: skip
            except (OSError, asyncpg.PostgresError, TimeoutError) as err:
                raise StoreError(f"{self.description}: {type(err).__name__}: {err}") from None
        return self._pool

    async def _do(self, work: Any) -> Any:
        import asyncpg

        pool = await self._connected()
        try:
            async with pool.acquire() as conn:
                return await work(conn)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
            raise StoreError(f"{self.description}: {type(err).__name__}: {err}") from None

    async def open(self) -> None:
        await self._do(self._migrate)

    async def _migrate(self, conn: Any) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS gateway_schema (version integer NOT NULL)"
            )
            found = await conn.fetchval("SELECT MAX(version) FROM gateway_schema") or 0
            if found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.description}: schema version {found} is newer than this gateway's"
                )
            if found < 1:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS usage_rows"
                    f" (id bigint GENERATED ALWAYS AS IDENTITY, "
                    f"{sql.row_columns()}) PARTITION BY RANGE (ts)"
                )
                await conn.execute("CREATE INDEX IF NOT EXISTS usage_rows_ts ON usage_rows (ts)")
                await conn.execute(sql.rollup_table(sql.ROLLUP, sql.ROLLUP_DIMS))
                await conn.execute(sql.rollup_table(sql.TAG_ROLLUP, sql.TAG_DIMS))
                for statement in sql.coarser_tables():
                    await conn.execute(statement)
                await conn.execute("INSERT INTO gateway_schema VALUES ($1)", SCHEMA_VERSION)
            else:
                if found < 2:
                    for statement in sql.migration_2("IF NOT EXISTS"):
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO gateway_schema VALUES ($1)", 2)
                if found < 3:
                    for statement in sql.migration_3("IF NOT EXISTS"):
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO gateway_schema VALUES ($1)", 3)
                if found < 4:
                    for statement in sql.migration_4("IF NOT EXISTS"):
                        await conn.execute(statement)
                    await conn.execute("INSERT INTO gateway_schema VALUES ($1)", 4)

    async def _partition(self, conn: Any, day: datetime.date) -> None:
        if day in self._days:
            return
        start = datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()
        name = f"usage_rows_{day:%Y%m%d}"
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK + 1)
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF usage_rows"
            f" FOR VALUES FROM ({start!r}) TO ({start + 86400!r})"
        )
        self._days.add(day)

    async def write(self, rows: list[UsageRow], *, replayed: bool = False) -> None:
        async def work(conn: Any) -> None:
            nonlocal rows
            async with conn.transaction():
                if replayed:
                    text, params = sql.written_ids(rows, sql.dollar)
                    rows = sql.unwritten(rows, await conn.fetch(text, *params))
                    if not rows:
                        return
                for day in {_day(row.ts) for row in rows}:
                    await self._partition(conn, day)
                await conn.execute(_STAGE)
                await conn.execute(_BATCH)
                await conn.copy_records_to_table(
                    "usage_stage", records=map(sql.encode_row, rows), columns=list(sql.ROW_COLUMNS)
                )
                await conn.execute(_MOVE)
                for statement in _FOLD:
                    await conn.execute(statement)

        try:
            await self._do(work)
        except StoreError:
            self._days.clear()  # a rolled-back partition may not exist
            raise

    async def totals(self, query: Totals) -> list[dict[str, Any]]:
        async def work(conn: Any) -> list[dict[str, Any]]:
            parts = []
            for table, span in sql.plan(query):
                text, params = sql.totals(span, sql.dollar, table)
                parts.append([dict(record) for record in await conn.fetch(text, *params)])
            return sql.merge(parts, query)

        found: list[dict[str, Any]] = await self._do(work)
        return found

    async def rows(self, query: RowQuery) -> list[tuple[int, UsageRow]]:
        text, params = sql.rows(query, sql.dollar)
        found = await self._do(lambda conn: conn.fetch(text, *params))
        return [(record[0], sql.decode_row(list(record)[1:])) for record in found]

    async def unpriced(self, start: float, limit: int) -> list[tuple[int, UsageRow]]:
        text = sql.unpriced(sql.dollar)
        found = await self._do(lambda conn: conn.fetch(text, start, limit))
        return [(record[0], sql.decode_row(list(record)[1:])) for record in found]

    async def reprice(self, priced: list[tuple[int, UsageRow]]) -> None:
        async def work(conn: Any) -> None:
            async with conn.transaction():
                for row_id, row in priced:
                    await conn.execute(
                        "UPDATE usage_rows SET cost = $1, price_id = $2"
                        " WHERE id = $3 AND cost IS NULL",
                        row.cost, row.price_id, row_id,
                    )  # fmt: skip
                    key = rollup_key(row)
                    tokens = row.input_tokens + row.output_tokens
                    for width, statement in _REPRICE:
                        period = key.minute // width * width
                        await conn.execute(statement, row.cost, tokens, period, *key[1:])

        await self._do(work)

    async def erase_bodies(self, before: float) -> int:
        text = sql.erase_bodies(sql.dollar)
        status = await self._do(lambda conn: conn.execute(text, before))
        return int(str(status).rsplit(" ", 1)[-1] or 0)

    async def prune(self, before: float) -> int:
        async def work(conn: Any) -> int:
            names = await conn.fetch(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_rows'"
            )
            dropped = 0
            cutoff = _day(before)
            for (name,) in names:
                day = datetime.datetime.strptime(name.removeprefix("usage_rows_"), "%Y%m%d").date()
                if day < cutoff:
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
                    self._days.discard(day)
                    dropped += 1
            return dropped

        return int(await self._do(work))

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


__all__ = ["PostgresStore"]
