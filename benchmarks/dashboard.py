"""The dashboard's queries over 30 days of rollups, as a busy gateway leaves them.

    python -m benchmarks.dashboard [--combos 100] [--days 30]

A gateway at 10k requests/s writes one rollup row per minute for each distinct (endpoint, key,
team, user, feature, model, provider, status) seen in that minute, however many requests
share it: `--combos` of them a minute (100: 20 keys x 5 models, with a few error statuses).
The page's load is one /v1/usage query with every group_by, a series, and the latest rows;
each is timed as the dashboard asks for it (median of 5), in SQLite (the default store).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.metering.meter import Meter  # noqa: E402
from gateway.metering.query import UsageQueries  # noqa: E402
from gateway.metering.row import BUCKETS, MEASURES  # noqa: E402
from gateway.store import sql  # noqa: E402
from gateway.store.sqlite import SQLiteStore  # noqa: E402

DIMS = "model,provider,key,team,user,feature,status"


def rollup_rows(days: int, combos: int, seed: int = 7) -> list[tuple[object, ...]]:
    rng = random.Random(seed)
    keys = [f"key-{i}" for i in range(20)]
    models = ["gpt-4o", "gpt-4o-mini", "claude-sonnet", "gemini-flash", "llama-8b"]
    rows = []
    end = int(time.time()) // 60 * 60
    per_minute = 10_000 * 60 // combos  # requests behind each rollup row
    for minute in range(end - days * 86400, end, 60):
        for c in range(combos):
            key, model = keys[c % 20], models[(c // 20) % 5]
            status = 200 if rng.random() > 0.05 else rng.choice((429, 500, 503))
            measures = [0] * len(MEASURES)
            measures[0] = per_minute
            measures[1] = per_minute if status != 200 else 0
            measures[3], measures[6] = per_minute * 500, per_minute * 120
            measures[8] = per_minute * 900_000
            measures[12] = per_minute * 800.0
            lat = MEASURES.index("lat_0")
            measures[lat + 12 + c % 5] = per_minute
            rows.append((minute, "chat/completions", key, f"team-{c % 4}", f"user-{c % 50}",
                         f"feature-{c % 6}", model, "openai", status, *measures))  # fmt: skip
    return rows


def fill_sqlite(path: Path, rows: list[tuple[object, ...]]) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    columns = [*sql.ROLLUP_DIMS, *MEASURES]
    marks = ", ".join("?" * len(columns))
    names = ", ".join(map(sql.quoted, columns))
    db.executemany(f"INSERT INTO {sql.ROLLUP} ({names}) VALUES ({marks})", rows)
    for statement in sql.backfill_coarser():  # as the writer folds each batch into them
        db.execute(statement)
    db.commit()
    db.close()


async def page_load(queries: UsageQueries, days: int) -> dict[str, float]:
    """Milliseconds for each of the page's queries, median of 5."""
    # As the page asks: the last `days` whole days (its 30-day view has 1-day buckets).
    end = -(-int(time.time()) // 86400) * 86400
    window = [("start", str(end - days * 86400)), ("end", str(end))]
    asks = {
        "usage (7 group_by + series)": [*window, ("group_by", DIMS), ("bucket", "1d")],
        "usage filtered by model": [*window, ("group_by", DIMS), ("bucket", "1d"),
                                    ("model", "gpt-4o")],  # fmt: skip
        "latest 50 requests": [*window, ("order", "desc"), ("limit", "50")],
    }
    out = {}
    for name, pairs in asks.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            if name.startswith("latest"):
                await queries.requests(pairs)
            else:
                await queries.usage(pairs)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = statistics.median(times)
    return out


async def run(days: int, combos: int, keep: str | None) -> None:
    print(f"{days * 1440 * combos:,} minute rollup rows: {days} days x 1,440 minutes x {combos}"
          f" combinations ({BUCKETS} latency histogram buckets each), with their hour and day"
          " rollups")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(keep) if keep else Path(tmp) / "usage.db"
        fresh = not path.exists()
        store = SQLiteStore(path)
        await store.open()
        if fresh:
            fill_sqlite(store.path, rollup_rows(days, combos))
        meter = Meter(store, flush_interval=60, max_queue=10)
        await meter.start()
        try:
            for name, ms in (await page_load(UsageQueries(meter), days)).items():
                print(f"| SQLite | {name} | {ms:,.0f} ms |")
        finally:
            await meter.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--combos", type=int, default=100)
    parser.add_argument("--keep", help="a ledger file to fill once and reuse")
    args = parser.parse_args()
    asyncio.run(run(args.days, args.combos, args.keep))


if __name__ == "__main__":
    main()
