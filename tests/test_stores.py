"""The ledger's stores, driven directly: rows and rollups written in one transaction, the
grouped sums, paging, retention that drops raw rows and keeps rollups, repricing, and a
schema that several instances may migrate at once (SQLite and PostgreSQL alike)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import msgspec
import pytest

from gateway.metering.row import UsageRow
from gateway.store import open_store
from gateway.store.base import RowQuery, Totals, UsageStore

DAY = 86400


def row(ts: float, i: int, cost: int | None = 1000, tags: str | None = None) -> UsageRow:
    return UsageRow(
        ts=ts, request_id=f"r{i}", endpoint="chat/completions", model="m", provider="p",
        served_model="m-1", status=200, error_type=None, input_tokens=10, cached_tokens=2,
        cache_write_tokens=0, output_tokens=5, reasoning_tokens=0, counted=False, cost=cost,
        saved=0, latency_ms=1.5, ttft_ms=None, attempts=1, cache=None, user=f"u{i % 2}", tags=tags,
    )  # fmt: skip


async def opened(url: str) -> UsageStore:
    ledger = open_store(url, {})
    await ledger.open()
    return ledger


def test_rollups_paging_retention_and_repricing(store: str) -> None:
    url = store  # the store fixture (conftest.py): a SQLite or PostgreSQL URL
    async def run() -> None:
        stores = await asyncio.gather(*(opened(url) for _ in range(3)))  # migrate together
        ledger = stores[0]
        now = time.time()
        old = [row(now - 10 * DAY, i) for i in range(3)]
        new = [row(now, 10 + i, tags='["a", "b"]') for i in range(5)] + [row(now, 20, cost=None)]
        await ledger.write(old)
        await stores[1].write(new)
        everything = Totals(0, int(now) + 120, (), {})
        (total,) = await ledger.totals(everything)
        assert total["requests"] == 9 and total["cost"] == 8000 and total["unpriced_requests"] == 1
        by_user = {r["user"]: r["requests"] for r in await ledger.totals(Totals(0, int(now) + 120, ("user",), {}))}
        assert by_user == {"u0": 6, "u1": 3}
        tags = {r["tag"]: r["requests"] for r in await ledger.totals(Totals(0, int(now) + 120, ("tag",), {}))}
        assert tags == {"a": 5, "b": 5}
        first = await ledger.rows(RowQuery(0, now + 1, {}, 4))
        rest = await ledger.rows(RowQuery(0, now + 1, {}, 100, after=first[-1][0]))
        assert [r.request_id for _, r in first + rest] == [r.request_id for r in old + new]
        assert [r.request_id for _, r in await ledger.rows(RowQuery(0, now + 1, {"user": ["u1"]}, 100))] == ["r1", "r11", "r13"]
        unpriced = await ledger.unpriced(0, 10)
        assert [r.request_id for _, r in unpriced] == ["r20"]
        row_id, found = unpriced[0]
        await ledger.reprice([(row_id, msgspec.structs.replace(found, cost=700, price_id="x/m"))])
        (total,) = await ledger.totals(everything)
        assert total["cost"] == 8700 and total["unpriced_requests"] == 0 and total["unpriced_tokens"] == 0
        await ledger.prune(now - 7 * DAY)
        left = await ledger.rows(RowQuery(0, now + 1, {}, 100))
        assert [r.request_id for _, r in left] == [r.request_id for r in new]
        (total,) = await ledger.totals(everything)
        assert total["requests"] == 9  # rollups outlive the raw rows
        for each in stores:
            await each.close()

    asyncio.run(run())


def test_a_stop_during_a_batch_write_writes_the_batch_once(tmp_path: Path) -> None:
    """SIGTERM while the writer is mid-batch: the batch was committed by the store's thread, so
    the stop's final flush must not write it again (it did, as a third row for two requests)."""
    from gateway.metering.meter import Meter
    from gateway.store.sqlite import SQLiteStore

    class SlowStore(SQLiteStore):
        def _write(self, rows: list[UsageRow], replayed: bool = False) -> None:
            time.sleep(0.3)  # in the store's thread, as a busy disk would
            super()._write(rows, replayed)

    async def run() -> int:
        meter = Meter(SlowStore(tmp_path / "usage.db"), flush_interval=0.01)
        await meter.start()
        meter.record(row(time.time(), 1), "m")
        await asyncio.sleep(0.1)  # the writer is inside the slow write now
        await meter.stop()
        ledger = await opened(f"sqlite:///{tmp_path / 'usage.db'}")
        try:
            (total,) = await ledger.totals(Totals(0, int(time.time()) + 120, (), {}))
            raw = await ledger.rows(RowQuery(0, time.time() + 1, {}, 10))
        finally:
            await ledger.close()
        assert len(raw) == total["requests"]
        return len(raw)

    assert asyncio.run(run()) == 1


def _v2_sqlite(path: Path, written: UsageRow) -> None:
    """A SQLite ledger as schema version 2 left it (a table row per request, rollups without
    the route), holding one row and its sums."""
    import sqlite3

    from gateway.store import sql

    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    db.execute("INSERT INTO schema_version VALUES (1), (2)")
    columns = sql._V2_ROW_COLUMNS
    typed = ", ".join(f'"{c}" {sql.ROW_TYPES.get(c, "TEXT")}' for c in columns)
    db.execute(f"CREATE TABLE usage_rows (id INTEGER PRIMARY KEY, {typed})")
    values = msgspec.structs.astuple(written)[: len(columns)]
    db.execute(f"INSERT INTO usage_rows ({', '.join(map(sql.quoted, columns))}) VALUES"
               f" ({', '.join('?' * len(columns))})", values)  # fmt: skip
    dims = sql._V2_ROLLUP_DIMS
    for table, sums in sql.folded([written]):
        names = dims if table != sql.TAG_ROLLUP else sql.TAG_DIMS
        db.execute(sql.rollup_table(table, names) + " WITHOUT ROWID")
        for params in sums:
            params = params[: len(dims)] + params[len(dims) + 1 :] if names == dims else params
            marks = ", ".join("?" * len(params))
            db.execute(f"INSERT INTO {table} VALUES ({marks})", params)
    db.commit()
    db.close()


def test_a_version_2_ledger_gains_the_routing_columns(store: str) -> None:
    """A ledger written by the previous gateway (schema 2, no routing decision) is migrated in
    place at start: its rows are kept and new rows carry their route."""
    url = store

    async def run() -> None:
        if url.startswith("sqlite"):
            _v2_sqlite(Path(url.removeprefix("sqlite:///")), row(time.time(), 1))
        else:
            import asyncpg

            ledger = await opened(url)
            await ledger.write([row(time.time(), 1)])
            await ledger.close()
            conn = await asyncpg.connect(url)
            await conn.execute("ALTER TABLE usage_rows DROP COLUMN route, DROP COLUMN route_reason,"
                               " DROP COLUMN cache_write_1h_tokens")
            await conn.execute("UPDATE gateway_schema SET version = 2 WHERE version = 4")
            await conn.close()
        ledger = await opened(url)
        try:
            routed = msgspec.structs.replace(row(time.time(), 2), route="cheap", route_reason="complexity=0.10<0.35",
                                             cache_write_1h_tokens=7)  # fmt: skip
            await ledger.write([routed])
            found = [r for _, r in await ledger.rows(RowQuery(0, time.time() + 1, {}, 10))]
            assert [(r.request_id, r.route) for r in found] == [("r1", None), ("r2", "cheap")]
            assert [r.cache_write_1h_tokens for r in found] == [0, 7]  # version 4's column
            assert found[1].route_reason == "complexity=0.10<0.35"
            by_route = await ledger.totals(Totals(0, int(time.time()) + 120, ("route",), {}))
            assert {r["route"]: r["requests"] for r in by_route} == {"": 1, "cheap": 1}
        finally:
            await ledger.close()

    asyncio.run(run())


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from gateway.store.base import StoreError

    path = tmp_path / "usage.db"
    async def create() -> None:
        await (await opened(f"sqlite:///{path}")).close()

    asyncio.run(create())
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_version VALUES (99)")
    db.commit()
    with pytest.raises(StoreError, match="newer"):
        asyncio.run(opened(f"sqlite:///{path}"))


def test_minute_hour_and_day_rollups_answer_any_window_alike(store: str) -> None:
    """A window is read from whole days, whole hours and the minutes at its edges; every cut,
    bucket and repricing must give what the raw rows add up to."""
    import random

    from gateway.metering.row import latency_bucket
    from gateway.store import sql

    rng = random.Random(3)
    base = (int(time.time()) // DAY - 3) * DAY

    def timed(r: UsageRow) -> UsageRow:
        ms = rng.choice([3.0, 40.0, 900.0, 25000.0, 10.0 ** rng.uniform(0, 5)])
        ttft = rng.choice([None, ms / 2])
        return msgspec.structs.replace(
            r, latency_ms=ms, latency_bucket=latency_bucket(ms), ttft_ms=ttft,
            ttft_bucket=None if ttft is None else latency_bucket(ttft),
        )  # fmt: skip

    rows = [timed(row(base + rng.uniform(0, 3 * DAY), i, cost=None if i % 17 == 0 else 100 + i)) for i in range(600)]

    def expected(start: int, end: int, bucket: int | None) -> dict[tuple[object, ...], tuple[object, ...]]:
        out: dict[tuple[object, ...], list[object]] = {}
        for r in rows:
            minute = int(r.ts) // 60 * 60
            if start <= minute < end:
                key = (r.user, minute // bucket * bucket if bucket else None)
                n, cost, lat, ttft = out.get(key, [0, 0, (0,) * 25, (0,) * 25])
                lat = tuple(c + (k == r.latency_bucket) for k, c in enumerate(lat))  # type: ignore[arg-type]
                ttft = tuple(c + (k == r.ttft_bucket) for k, c in enumerate(ttft))  # type: ignore[arg-type]
                out[key] = [n + 1, cost + (r.cost or 0), lat, ttft]  # type: ignore[operator]
        return {k: tuple(v) for k, v in out.items()}

    def got_of(found: list[dict[str, object]], bucket: int | None) -> dict[tuple[object, ...], tuple[object, ...]]:
        return {
            (r["user"], r["bucket"] if bucket else None): (
                r["requests"], r["cost"], tuple(r[f"lat_{k}"] for k in range(25)),
                tuple(r[f"ttft_{k}"] for k in range(25)),
            )
            for r in found
        }  # fmt: skip

    async def run() -> None:
        ledger = await opened(store)
        await ledger.write(rows)
        windows = [(base, base + 3 * DAY), (base + 3600 * 5 + 60 * 7, base + 2 * DAY + 60 * 13)]
        windows += [(base + 60 * rng.randrange(0, 4320), base + 60 * rng.randrange(0, 4320)) for _ in range(6)]
        for start, end in windows:
            start, end = min(start, end), max(start, end) + 60
            for bucket in (None, 60, 3600, DAY):
                query = Totals(start, end, ("user",), {}, bucket)
                assert sum(s.end - s.start for _, s in sql.plan(query)) == end - start
                got = got_of(await ledger.totals(query), bucket)
                assert got == expected(start, end, bucket), (start - base, end - base, bucket)
        plan = sql.plan(Totals(base, base + 3 * DAY, (), {}))
        assert [t for t, _ in plan] == ["usage_day"]  # whole days: three day rows per combination
        unpriced = await ledger.unpriced(0, 1000)
        await ledger.reprice([(i, msgspec.structs.replace(r, cost=5)) for i, r in unpriced])
        rows[:] = [msgspec.structs.replace(r, cost=5) if r.cost is None else r for r in rows]
        for bucket in (None, DAY):
            query = Totals(base, base + 3 * DAY, ("user",), {}, bucket)
            assert got_of(await ledger.totals(query), bucket) == expected(base, base + 3 * DAY, bucket)
        await ledger.close()

    asyncio.run(run())


def test_gateway_migrate_is_idempotent_beside_itself(store: str) -> None:
    """`gateway migrate` run twice at once on a fresh database, then again: every run exits 0
    and the schema is this gateway's, with every table serve keeps there."""
    import os
    import subprocess
    import sys

    from tests.harness import ROOT

    env = {**os.environ, "GATEWAY_USAGE_STORE": store}
    env.pop("GATEWAY_CONFIG", None)
    command = [sys.executable, "-m", "gateway", "migrate"]
    runs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    again = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    version = 5 if store.startswith("sqlite") else 4
    assert again.returncode == 0 and f"schema version {version}" in again.stdout, again.stderr

    async def tables() -> set[str]:
        if store.startswith("sqlite"):
            import sqlite3

            db = sqlite3.connect(store.removeprefix("sqlite:///"))
            names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            db.close()
            return names
        import asyncpg

        conn = await asyncpg.connect(store)
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        await conn.close()
        return {r[0] for r in rows}

    found = asyncio.run(tables())
    raw = "usage_blocks" if store.startswith("sqlite") else "usage_rows"
    wanted = {raw, "usage_minute", "usage_hour", "usage_day", "gateway_responses",
              "gateway_feedback", "gateway_shadow"}  # fmt: skip
    assert wanted <= found, wanted - found


def test_sqlite_binds_none_bool_and_bytes_without_the_slow_protocol() -> None:
    """gateway.store registers sqlite3 adapters for the values its rows are full of: what is
    stored is what sqlite3 stores without them (NULL, 0/1, a BLOB), and binding a ledger-shaped
    row no longer goes through the adaptation protocol's failed lookups."""
    import sqlite3

    import gateway.store  # noqa: F401 - registers them

    marker = sqlite3.PrepareProtocol
    assert {(type(None), marker), (bool, marker), (bytes, marker)} <= set(sqlite3.adapters)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE t (a, b, c, d, e)")
    db.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (None, True, False, b"\x00x", "s"))
    found = db.execute("SELECT a, typeof(a), b, typeof(b), c, d, typeof(d), e FROM t").fetchall()
    assert found == [(None, "null", 1, "integer", 0, b"\x00x", "blob", "s")]


def test_a_batch_of_any_size_is_written_whole_once(tmp_path: Path) -> None:
    """SQLite keeps raw rows in blocks of up to BLOCK: every batch size, up to two full
    blocks and a ragged rest, lands each row exactly once, in order, with contiguous ids;
    pages cross block boundaries either way without a row lost or repeated."""
    from gateway.store.blocks import BLOCK

    async def run() -> None:
        ledger = await opened(f"sqlite:///{tmp_path}/usage.db")
        now = time.time()
        sizes = [1, 2, 3, BLOCK - 1, BLOCK, 2 * BLOCK + 7]
        written: list[str] = []
        for b, size in enumerate(sizes):
            batch = [row(now, b * 10_000 + i) for i in range(size)]
            await ledger.write(batch)
            written += [r.request_id for r in batch]
        found = await ledger.rows(RowQuery(0, now + 1, {}, 10 * len(written)))
        assert [r.request_id for _, r in found] == written
        assert [i for i, _ in found] == list(range(found[0][0], found[0][0] + len(written)))
        for newest in (False, True):
            pages: list[str] = []
            after = None
            while True:
                page = await ledger.rows(RowQuery(0, now + 1, {"user": ["u1"]}, 333, after, newest))
                if not page:
                    break
                pages += [r.request_id for _, r in page]
                after = page[-1][0]
            odd = [r for i, r in enumerate(written) if int(r[1:]) % 2]
            assert pages == (odd[::-1] if newest else odd)
        (total,) = await ledger.totals(Totals(0, int(now) + 120, (), {}))
        assert total["requests"] == len(written)
        await ledger.close()

    asyncio.run(run())


def test_a_filter_finds_its_rows_whatever_the_values_hold(tmp_path: Path) -> None:
    """Blocks are picked by the values they hold (`instr` on a list of `\x1fcolumn=value\x1f`)
    and their rows filtered exactly: a value holding the separator, or another value's text,
    is neither missed nor confused with it; several values of a column and several columns
    combine as IN and AND do; a request id is found among thousands."""
    from gateway.store.blocks import BLOCK

    tricky = ["a\x1fuser=b", "b", "user=b", "", "ü-ß 🙂", "b\x1f"]

    async def run() -> None:
        ledger = await opened(f"sqlite:///{tmp_path}/usage.db")
        now = time.time()
        rows = [msgspec.structs.replace(row(now, i), user=tricky[i % len(tricky)],
                                        status=(200, 429)[i % 4 == 0], key_id=None if i % 3 else f"k{i % 2}")
                for i in range(2 * BLOCK + 50)]  # fmt: skip
        await ledger.write(rows[:BLOCK])
        await ledger.write(rows[BLOCK:])

        async def ids(filters: dict[str, list[object]]) -> list[str]:
            found = await ledger.rows(RowQuery(0, now + 1, filters, 10_000))
            return [r.request_id for _, r in found]

        for value in tricky:
            assert await ids({"user": [value]}) == [r.request_id for r in rows if r.user == value]
        assert await ids({"user": ["b", "user=b"], "status": [429]}) == [
            r.request_id for r in rows if r.user in ("b", "user=b") and r.status == 429]  # fmt: skip
        assert await ids({"key_id": ["k1"]}) == [r.request_id for r in rows if r.key_id == "k1"]
        assert await ids({"request_id": ["r1777"]}) == ["r1777"]
        assert await ids({"request_id": ["r17"]}) == ["r17"]  # not r170, r1777, …
        assert await ids({"request_id": ["nope"], "user": ["b"]}) == []
        assert await ids({"user": []}) == []
        await ledger.close()

    asyncio.run(run())


def test_bodies_are_erased_and_old_blocks_pruned(tmp_path: Path) -> None:
    """Retention on blocks: bodies older than their cutoff are cleared row by row (newer
    ones kept, the count returned), and blocks whose rows are all past the raw-row retention
    go whole, their count returned; the rollups stay."""
    async def run() -> None:
        ledger = await opened(f"sqlite:///{tmp_path}/usage.db")
        now = time.time()
        bodied = [msgspec.structs.replace(row(now - (5 - i) * DAY, i), request_body="q", response_body="a")
                  for i in range(5)]  # fmt: skip
        await ledger.write(bodied)  # one block spanning five days
        await ledger.write([row(now - 9 * DAY, 9)])
        assert await ledger.erase_bodies(now - 2.5 * DAY) == 3
        found = [r for _, r in await ledger.rows(RowQuery(0, now + 1, {}, 100))]
        assert [(r.request_id, r.request_body) for r in found] == [
            ("r0", None), ("r1", None), ("r2", None), ("r3", "q"), ("r4", "q"), ("r9", None)]
        assert await ledger.erase_bodies(now - 2.5 * DAY) == 0
        assert await ledger.prune(now - 7 * DAY) == 1
        assert [r.request_id for _, r in await ledger.rows(RowQuery(0, now + 1, {}, 100))] == [
            "r0", "r1", "r2", "r3", "r4"]  # fmt: skip
        (total,) = await ledger.totals(Totals(0, int(now) + 120, (), {}))
        assert total["requests"] == 6
        await ledger.close()

    asyncio.run(run())


def test_the_fold_sums_what_sql_over_the_raw_rows_sums() -> None:
    """metering/fold.py (SQLite's fold) against the SQL PostgreSQL folds with: random rows (errors of every fault,
    cache hits, unpriced rows with and without tokens, first tokens or none, tags, None and
    "" dimensions alike), every measure of every minute group and tag group equal."""
    import random
    import sqlite3

    from gateway.metering.fold import coarser, fold
    from gateway.metering.row import latency_bucket
    from gateway.store import sql

    rng = random.Random(11)
    base = int(time.time()) // 3600 * 3600
    rows = []
    for i in range(3000):
        ms = 10 ** rng.uniform(0, 5)
        ttft = rng.choice([None, ms / 3])
        rows.append(msgspec.structs.replace(
            row(base + rng.uniform(0, 7200), i, cost=rng.choice([None, 0, 5, 10**9])),
            status=rng.choice([200, 200, 302, 400, 429, 500, 503]),
            cache=rng.choice([None, "HIT", "SEMANTIC_HIT", "MISS"]),
            fault=rng.choice([None, "caller", "policy", "provider", "gateway"]),
            input_tokens=rng.choice([0, 7, 1200]), output_tokens=rng.choice([0, 3]),
            cached_tokens=rng.choice([0, 4]), reasoning_tokens=rng.choice([0, 2]),
            cache_write_tokens=rng.choice([0, 9]), saved=rng.choice([0, 11]),
            latency_ms=ms, latency_bucket=latency_bucket(ms), ttft_ms=ttft,
            ttft_bucket=None if ttft is None else latency_bucket(ttft),
            user=rng.choice([None, "", "u1"]), key_id=rng.choice([None, "k"]),
            route=rng.choice([None, "cheap"]), tags=rng.choice([None, '["a"]', '["a", "b"]']),
        ))  # fmt: skip
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE r ({sql.row_columns()})")
    db.executemany(f"INSERT INTO r VALUES ({', '.join('?' * len(sql.ROW_COLUMNS))})",
                   [msgspec.structs.astuple(r) for r in rows])  # fmt: skip
    sums = ", ".join(sql._SUMS)
    dims = ("endpoint", "COALESCE(key_id, '')", "COALESCE(team, '')", "COALESCE(\"user\", '')",
            "COALESCE(feature, '')", "model", "provider", "status", "COALESCE(route, '')")  # fmt: skip

    def close(a: list[object], b: list[object]) -> bool:
        return all(abs(x - y) <= 1e-6 * max(1.0, abs(x)) for x, y in zip(a, b, strict=True))  # type: ignore[operator]

    minutes, tags = fold(rows)
    for width in (60, 3600):
        groups = minutes if width == 60 else coarser(minutes, width)
        spec = {tuple(found[:10]): list(found[10:]) for found in db.execute(
            f"SELECT (CAST(ts AS INTEGER) / {width}) * {width}, {', '.join(dims)}, {sums} FROM r"
            " GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10")}  # fmt: skip
        assert set(spec) == set(groups)
        assert all(close(groups[k], spec[k]) for k in spec)  # type: ignore[index]
    spec = {tuple(found[:2]): list(found[2:]) for found in db.execute(
        f"SELECT (CAST(ts AS INTEGER) / 60) * 60, tv.value, {sums} FROM r, json_each(r.tags) AS tv"
        " WHERE tags IS NOT NULL GROUP BY 1, 2")}  # fmt: skip
    assert set(spec) == set(tags) and all(close(tags[k], spec[k]) for k in spec)  # type: ignore[index]


def test_null_columns_are_stored_as_sent_whatever_the_mix(tmp_path: Path) -> None:
    """Rows whose NULLs differ (the first row's NULL filled later in a batch, a value first and
    NULL after, a whole batch alike) all come back exactly as written, NULLs and falsy values
    (0, "", False) apart."""
    async def run() -> None:
        ledger = await opened(f"sqlite:///{tmp_path}/usage.db")
        now = time.time()
        plain = row(now, 0)
        variants = [
            plain,
            msgspec.structs.replace(plain, key_id="k1", team="", ttft_ms=0.0, ttft_bucket=0),
            msgspec.structs.replace(plain, cost=None, tags='["x"]', error_type="e", counted=True),
            msgspec.structs.replace(plain, cost=0, user=None, served_model=None, cache="HIT"),
        ]
        batches = [
            [msgspec.structs.replace(variants[i % 4], request_id=f"a{i}") for i in range(37)],
            [msgspec.structs.replace(plain, request_id=f"b{i}") for i in range(20)],
            [msgspec.structs.replace(variants[(i + 1) % 4], request_id=f"c{i}") for i in range(5)],
        ]
        for batch in batches:
            await ledger.write(batch)
        found = [r for _, r in await ledger.rows(RowQuery(0, now + 1, {}, 1000))]
        assert found == [r for batch in batches for r in batch]
        await ledger.close()

    asyncio.run(run())
