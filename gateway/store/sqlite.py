"""The embedded usage store: one SQLite file in WAL mode, written in batches by one thread.

Raw rows are kept in blocks of up to a thousand (store/blocks.py: one BLOB each, found by
their time span and the values they hold); each batch is folded into the rollups in Python
(metering/fold.py) and upserted, a few rows per rollup. The usage API reads the rollups.
Several worker processes may share the file: SQLite serialises their batch transactions
(busy_timeout), which at one batch per flush interval per worker never contend for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec

from gateway.metering.fold import Fold
from gateway.metering.row import UsageRow, rollup_key
from gateway.store import blocks, sql
from gateway.store.base import RowQuery, StoreError, Totals

SCHEMA_VERSION = 5
READERS = 2  # threads (and connections) answering the usage API
_UPSERTS = sql.upserts(sql.qmark)
_REPRICE = sql.reprice_rollups(sql.qmark)
_V4_COLUMNS = ", ".join(map(sql.quoted, sql.ROW_COLUMNS))


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
            db = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            _wal(db)
            self._prepare(db)
            self._db = db
        return self._db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """What a new connection needs besides WAL."""

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside BEGIN IMMEDIATE (the write lock, taken at once): committed
        when the block ends, rolled back when it raises."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def close(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._executor.shutdown(wait=True)


class SQLiteStore(SQLiteFile):
    schema_version = SCHEMA_VERSION

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
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            found = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if found < 1:
                for statement in blocks.SCHEMA:
                    db.execute(statement)
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
                steps: dict[int, Callable[[], list[str]]] = {
                    2: lambda: sql.migration_2("", " WITHOUT ROWID"),
                    3: lambda: sql.migration_3("", " WITHOUT ROWID"),
                    4: lambda: sql.migration_4(""),
                    5: lambda: self._into_blocks(db),
                }
                for version, step in steps.items():
                    if found < version:
                        for statement in step():
                            db.execute(statement)
                        db.execute("INSERT INTO schema_version VALUES (?)", (version,))

    @staticmethod
    def _into_blocks(db: sqlite3.Connection) -> list[str]:
        """From version 4 to 5: the raw rows, a row each before, moved into blocks (ids kept:
        a block holds a run of consecutive ids). Done here; no statements left to run."""
        for statement in blocks.SCHEMA:
            db.execute(statement)
        cursor = db.execute(f"SELECT id, {_V4_COLUMNS} FROM usage_rows ORDER BY id")
        run: list[UsageRow] = []
        first = last = 0
        for values in cursor:
            if run and (values[0] != last + 1 or len(run) == blocks.BLOCK):
                db.execute(blocks.INSERT, blocks.block(first, run))
                run = []
            if not run:
                first = values[0]
            last = values[0]
            run.append(sql.decode_row(values[1:]))
        if run:
            db.execute(blocks.INSERT, blocks.block(first, run))
        db.execute("DROP TABLE usage_rows")
        return []

    async def write(self, rows: list[UsageRow], *, replayed: bool = False) -> None:
        await self._run(self._write, rows, replayed)

    def _write(self, rows: list[UsageRow], replayed: bool = False) -> None:
        """The rows as blocks, and their sums added into the rollups, in one transaction.
        What takes time (encoding, folding) is done before the write lock is taken."""
        if replayed:
            rows = self._unwritten(rows)
            if not rows:
                return
        # Each piece is encoded, summarised and folded in turn, while its rows are in the
        # cache (they were made on the event loop up to a flush interval ago).
        pieces: list[blocks.Block] = []
        summed = Fold()
        for at in range(0, len(rows), blocks.BLOCK):
            some = rows[at : at + blocks.BLOCK]
            pieces.append(blocks.block(0, some))
            summed.add(some)
            time.sleep(0)  # lets the event loop's thread take the GIL (else it waits ~5 ms)
        folded = sql.folded(summed)
        with self._transaction() as db:  # ids are contiguous inside the write lock
            (first,) = db.execute(blocks.NEXT_ID).fetchone()
            for piece in pieces:
                db.execute(blocks.INSERT, piece._replace(first=first))
                first += piece.size
            for table, params in folded:
                if params:
                    db.executemany(_UPSERTS[table], params)

    def _unwritten(self, rows: list[UsageRow]) -> list[UsageRow]:
        """Of a dead process's spooled rows, those the store does not hold yet."""
        found = self._connection().execute(
            "SELECT first, rows FROM usage_blocks WHERE ts_max >= ? AND ts_min <= ?",
            (min(r.ts for r in rows), max(r.ts for r in rows)),
        )
        held = ((r.request_id, r.ts) for _, data in found for r in blocks.decode(data))
        return sql.unwritten(rows, held)

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
        found: list[tuple[int, UsageRow]] = await self._read(self._rows, query)
        return found

    def _rows(self, query: RowQuery) -> list[tuple[int, UsageRow]]:
        """Blocks in the window (and holding every filter's value), in id order, decoded
        one at a time until the page is full."""
        where, params = blocks.hints(query.filters)
        bounds: list[Any] = [query.start, query.end]
        keep = None
        after = query.after
        if after is not None:
            if query.newest_first:
                where += " AND first < ?"
                keep = after.__gt__
            else:
                where += " AND first + count > ?"
                keep = after.__lt__
            params = [*params, after]
        order = "DESC" if query.newest_first else ""
        cursor = self._reader().execute(
            "SELECT first, rows FROM usage_blocks WHERE ts_max >= ? AND ts_min < ?"
            f"{where} ORDER BY first {order}",
            [*bounds, *params],
        )
        out: list[tuple[int, UsageRow]] = []
        window = (query.start, query.end, query.filters, keep)
        for found in blocks.matching(cursor, *window, reverse=query.newest_first):
            out.append(found)
            if len(out) >= query.limit:
                break
        return out

    async def unpriced(self, start: float, limit: int) -> list[tuple[int, UsageRow]]:
        found: list[tuple[int, UsageRow]] = await self._run(self._unpriced, start, limit)
        return found

    def _unpriced(self, start: float, limit: int) -> list[tuple[int, UsageRow]]:
        cursor = self._connection().execute(
            "SELECT first, rows FROM usage_blocks WHERE unpriced > 0 AND ts_max >= ?"
            " ORDER BY first",
            (start,),
        )
        out: list[tuple[int, UsageRow]] = []
        for found in blocks.matching(cursor, start, float("inf"), {}):
            if blocks.unpriced(found[1]):
                out.append(found)
                if len(out) >= limit:
                    break
        return out

    async def reprice(self, priced: list[tuple[int, UsageRow]]) -> None:
        await self._run(self._reprice, priced)

    def _reprice(self, priced: list[tuple[int, UsageRow]]) -> None:
        """Each row's block rewritten with its cost, if it is still unpriced, and the cost
        moved into its rollup rows."""
        with self._transaction() as db:
            changed: dict[int, list[UsageRow]] = {}
            for row_id, row in priced:
                found = db.execute(
                    "SELECT first, rows FROM usage_blocks WHERE first <= ? ORDER BY first DESC"
                    " LIMIT 1", (row_id,),
                ).fetchone()  # fmt: skip
                if found is None:
                    continue
                first = found[0]
                held = changed.get(first)
                if held is None:
                    held = changed[first] = blocks.decode(found[1])
                at = row_id - first
                if not 0 <= at < len(held) or held[at].cost is not None:
                    continue
                if held[at].request_id != row.request_id:
                    continue
                held[at] = msgspec.structs.replace(held[at], cost=row.cost, price_id=row.price_id)
                key = rollup_key(row)
                tokens = row.input_tokens + row.output_tokens
                for width, statement in _REPRICE:
                    period = key.minute // width * width
                    db.execute(statement, (row.cost, tokens, period, *key[1:]))
            for first, held in changed.items():
                db.execute(
                    "UPDATE usage_blocks SET rows = ?, unpriced = ? WHERE first = ?",
                    (blocks.encode(held), sum(map(blocks.unpriced, held)), first),
                )

    async def prune(self, before: float) -> int:
        return int(await self._run(self._prune, before))

    async def erase_bodies(self, before: float) -> int:
        return int(await self._run(self._erase, before))

    def _erase(self, before: float) -> int:
        """The bodies of rows older than `before` cleared, block by block."""
        erased = 0
        with self._transaction() as db:
            found = db.execute(
                "SELECT first, rows FROM usage_blocks WHERE bodies > 0 AND ts_min < ?", (before,)
            ).fetchall()
            for first, data in found:
                held = blocks.decode(data)
                for at, row in enumerate(held):
                    if row.ts < before and blocks.has_body(row):
                        held[at] = msgspec.structs.replace(
                            row, request_body=None, response_body=None
                        )
                        erased += 1
                db.execute(
                    "UPDATE usage_blocks SET rows = ?, bodies = ? WHERE first = ?",
                    (blocks.encode(held), sum(map(blocks.has_body, held)), first),
                )
        return erased

    def _prune(self, before: float) -> int:
        """Blocks whose rows are all older than `before` (a block spans one flush, so a row
        may outlive the retention by that long)."""
        with self._transaction() as db:
            (count,) = db.execute(
                "SELECT COALESCE(SUM(count), 0) FROM usage_blocks WHERE ts_max < ?", (before,)
            ).fetchone()
            db.execute("DELETE FROM usage_blocks WHERE ts_max < ?", (before,))
        return int(count)


__all__ = ["SQLiteFile", "SQLiteStore"]
