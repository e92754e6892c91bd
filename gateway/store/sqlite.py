"""The embedded usage store: one SQLite file in WAL mode, written in batches by one thread.

Raw rows are a rowid table indexed by time only (a random-key index would cost 5-8x on every
write); the usage API reads the minute rollups. Several worker processes may share the file:
SQLite serialises their batch transactions (busy_timeout), which at one batch per flush
interval per worker never contend for long.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

from gateway.metering.row import UsageRow, rollup_key
from gateway.store import sql
from gateway.store.base import RowQuery, StoreError, Totals

SCHEMA_VERSION = 4
READERS = 2  # threads (and connections) answering the usage API
_NAMES = ", ".join(map(sql.quoted, sql.ROW_COLUMNS))
_CHUNK = 32766 // len(sql.ROW_COLUMNS)  # SQLite's default limit on bound parameters


# The statement sizes a batch is cut into: full chunks, then the rest by powers of two. A
# statement is compiled once and then found in sqlite3's statement cache; one sized to each
# batch's rest was compiled afresh every batch (up to 32k parameters parsed: 5-10 µs a row).
_SIZES = (_CHUNK, *(1 << k for k in range(_CHUNK.bit_length() - 1, -1, -1)))
_ALL_BOUND = (True,) * len(sql.ROW_COLUMNS)
# A column NULL in every row of a piece is written as a NULL literal rather than bound: most
# of a row's 36 columns are NULL, and binding a None costs sqlite3 an adapter lookup (a tuple
# built and hashed, a dict lookup, a call) where a literal costs nothing per row.
_INSERTS: dict[tuple[int, tuple[bool, ...]], str] = {}


def _insert(size: int, bound: tuple[bool, ...] = _ALL_BOUND) -> str:
    """The INSERT of `size` rows, a parameter for each bound column and NULL for the rest."""
    key = (size, bound)
    found = _INSERTS.get(key)
    if found is None:
        one = "(" + ", ".join("?" if b else "NULL" for b in bound) + ")"
        found = f"INSERT INTO usage_rows ({_NAMES}) VALUES {', '.join([one] * size)}"
        if len(_INSERTS) >= 128:  # sizes × one gateway's sets of NULL columns: a few dozen
            _INSERTS.clear()
        _INSERTS[key] = found
    return found


def _statement(chunk: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """The INSERT for a piece and its parameters. The columns that may be NULL throughout
    are those NULL in its first row; `count` finds None by identity first, so checking a
    column that is all NULL costs a pointer comparison a row."""
    size = len(chunk)
    first = chunk[0]
    if None not in first:
        return _insert(size), list(chain.from_iterable(chunk))
    columns = list(zip(*chunk, strict=True))
    bound = tuple(
        v is not None or columns[i].count(None) != size for i, v in enumerate(first)
    )
    kept = [column for column, b in zip(columns, bound, strict=True) if b]
    return _insert(size, bound), list(chain.from_iterable(zip(*kept, strict=True)))


def _pieces(count: int) -> list[int]:
    """`count` as a sum of _SIZES, largest first."""
    out = []
    for size in _SIZES:
        while count >= size:
            out.append(size)
            count -= size
    return out
_FOLD = sql.fold(
    "usage_rows", "usage_rows.id > ?", "json_each(usage_rows.tags) AS tv", "CAST(ts AS INTEGER)"
)


_REPRICE = sql.reprice_rollups(sql.qmark)
_BATCH = sql.batch_table()


def _wal(db: sqlite3.Connection, patience: float = 10.0) -> None:
    """WAL mode. Switching a new file to it needs the file to itself, and SQLite answers
    "database is locked" at once, without its busy wait, while another process or thread
    holds it (several instances or workers starting together): try again, briefly."""
    deadline = time.monotonic() + patience
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class SQLiteFile:
    """One SQLite file in WAL mode, used from one thread of its own (the event loop never
    waits on the disk); errors become StoreError. The ledger and the key store each have one."""

    def __init__(self, path: Path, thread: str) -> None:
        self.path = path
        self.description = f"sqlite:{path}"
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=thread)
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except sqlite3.Error as err:
            raise StoreError(f"{self.description}: {err}") from err

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Room for every piece size, with and without NULL literals, and the fold's own.
            db = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, cached_statements=256
            )
            _wal(db)
            self._prepare(db)
            self._db = db
        return self._db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """What a new connection needs besides WAL."""

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._executor.shutdown(wait=True)


class SQLiteStore(SQLiteFile):
    def __init__(self, path: Path) -> None:
        super().__init__(path, "usage-sqlite")
        # The usage API reads on threads of its own, each with its own connection (WAL lets
        # readers run beside the writer): a dashboard's queries run side by side, and never
        # hold up the ledger's next batch.
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="usage-read")
        self._local = threading.local()
        self._reader_dbs: list[sqlite3.Connection] = []

    async def _read(self, fn: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._readers, fn, *args)
        except sqlite3.Error as err:
            raise StoreError(f"{self.description}: {err}") from err

    def _reader(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA query_only=ON")
            self._local.db = db
            self._reader_dbs.append(db)
        return db

    async def close(self) -> None:
        await super().close()
        self._readers.shutdown(wait=True)
        for db in self._reader_dbs:
            db.close()
        self._reader_dbs.clear()

    def _prepare(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA synchronous=NORMAL")

    async def open(self) -> None:
        await self._run(self._migrate)

    def _migrate(self) -> None:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if found < 1:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS usage_rows"
                    f" (id INTEGER PRIMARY KEY, {sql.row_columns()})"
                )
                db.execute("CREATE INDEX IF NOT EXISTS usage_rows_ts ON usage_rows (ts)")
                db.execute(sql.rollup_table(sql.ROLLUP, sql.ROLLUP_DIMS) + " WITHOUT ROWID")
                db.execute(sql.rollup_table(sql.TAG_ROLLUP, sql.TAG_DIMS) + " WITHOUT ROWID")
                for statement in sql.coarser_tables(" WITHOUT ROWID"):
                    db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif found > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.description}: schema version {found} is newer than this gateway's"
                )
            else:
                if found < 2:
                    for statement in sql.migration_2("", " WITHOUT ROWID"):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version VALUES (?)", (2,))
                if found < 3:
                    for statement in sql.migration_3("", " WITHOUT ROWID"):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version VALUES (?)", (3,))
                if found < 4:
                    for statement in sql.migration_4(""):
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version VALUES (?)", (4,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def write(self, rows: list[UsageRow], *, replayed: bool = False) -> None:
        await self._run(self._write, rows, replayed)

    def _write(self, rows: list[UsageRow], replayed: bool = False) -> None:
        """Rows go in as multi-row INSERTs of fixed sizes (_SIZES): one statement per piece,
        so the GIL is let go once per piece rather than once per row (each release hands the
        event loop's thread the core, and takes it back, on a busy gateway)."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")  # ids are contiguous inside the write lock
        try:
            (last,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM usage_rows").fetchone()
            if replayed:
                rows = sql.unwritten(rows, db.execute(*sql.written_ids(rows, sql.qmark)).fetchall())
            start = 0
            for size in _pieces(len(rows)):
                chunk = list(map(sql.encode_row, rows[start : start + size]))
                start += size
                db.execute(*_statement(chunk))
            db.execute(_BATCH)
            db.execute(f"DELETE FROM {sql.BATCH}")
            for statement in _FOLD:
                db.execute(statement, (last,) if "?" in statement else ())
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def totals(self, query: Totals) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self._read(self._totals, query)
        return found

    def _totals(self, query: Totals) -> list[dict[str, Any]]:
        parts = [
            self._select(*sql.totals(span, sql.qmark, table)) for table, span in sql.plan(query)
        ]
        return sql.merge(parts, query)

    def _select(self, text: str, params: list[Any]) -> list[dict[str, Any]]:
        cursor = self._reader().execute(text, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]

    async def rows(self, query: RowQuery) -> list[tuple[int, UsageRow]]:
        text, params = sql.rows(query, sql.qmark)
        found: list[tuple[int, UsageRow]] = await self._read(self._rows, text, params)
        return found

    def _rows(self, text: str, params: list[Any]) -> list[tuple[int, UsageRow]]:
        found = self._reader().execute(text, params).fetchall()
        return [(values[0], sql.decode_row(values[1:])) for values in found]

    async def unpriced(self, start: float, limit: int) -> list[tuple[int, UsageRow]]:
        found: list[tuple[int, UsageRow]] = await self._run(
            self._rows, sql.unpriced(sql.qmark), [start, limit]
        )
        return found

    async def reprice(self, priced: list[tuple[int, UsageRow]]) -> None:
        await self._run(self._reprice, priced)

    def _reprice(self, priced: list[tuple[int, UsageRow]]) -> None:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            for row_id, row in priced:
                db.execute(
                    "UPDATE usage_rows SET cost = ?, price_id = ? WHERE id = ? AND cost IS NULL",
                           (row.cost, row.price_id, row_id))  # fmt: skip
                key = rollup_key(row)
                tokens = row.input_tokens + row.output_tokens
                for width, statement in _REPRICE:
                    period = key.minute // width * width
                    db.execute(statement, (row.cost, tokens, period, *key[1:]))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def prune(self, before: float) -> int:
        return int(await self._run(self._prune, before))

    async def erase_bodies(self, before: float) -> int:
        return int(await self._run(self._erase, before))

    def _erase(self, before: float) -> int:
        return self._connection().execute(sql.erase_bodies(sql.qmark), (before,)).rowcount

    def _prune(self, before: float) -> int:
        return self._connection().execute("DELETE FROM usage_rows WHERE ts < ?", (before,)).rowcount


__all__ = ["SQLiteFile", "SQLiteStore"]
