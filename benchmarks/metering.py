"""Metering, measured: token counting against tiktoken and toktok-rs, pricing, the per-request
cost of metering, the ledger's write rate in SQLite and PostgreSQL (with the event loop's
longest stall meanwhile), and gateway throughput with metering on and off, side by side.

    python -m benchmarks.metering [--rounds 5] [--duration 8]

Every comparison runs in interleaved rounds and reports medians (this machine's speed
drifts). tiktoken reads the shipped vocabularies through tests/tiktoken_ref.py (offline).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway._native._bpe_c import Encoding as Compiled  # noqa: E402

from benchmarks.run import ONE_MODEL, SHORT_BODY, print_sections, side_by_side  # noqa: E402
from gateway._native._bpe_py import Encoding as Pure  # noqa: E402
from gateway.api.usage import PromptTokensDetails, Usage  # noqa: E402
from gateway.metering.meter import Meter  # noqa: E402
from gateway.metering.prices import Catalog, Pricer, cost_femto  # noqa: E402
from gateway.metering.record import Metering  # noqa: E402
from gateway.metering.row import UsageRow  # noqa: E402
from tests.tiktoken_ref import DATA, encoding  # noqa: E402

TEXTS = {
    "English prose": (ROOT / "README.md").read_text(),
    "Python code": (ROOT / "gateway" / "server" / "http.py").read_text(),
    "multilingual": (ROOT / "tests" / "data" / "token_corpus.txt").read_text() * 20,
}


def per_call(fn: Callable[[], Any], seconds: float = 0.3) -> float:
    """Microseconds per call: the median of 5 timed batches."""
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.05:
        fn()
        n += 1
    batch = max(1, int(n * seconds / 0.05 / 5))
    times = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - t) / batch * 1e6)
    return statistics.median(times)


def counting(rounds: int) -> list[str]:
    import toktok

    classes = (DATA / "classes.bin").read_bytes()
    ranks = (DATA / "o200k_base.bpe").read_bytes()
    ours, twin, ref = Compiled(ranks, classes, "o200k_base"), Pure(ranks, classes, "o200k_base"), encoding("o200k_base")
    lines = [
        "| text | size | gateway (compiled) µs | pure twin µs | tiktoken µs | toktok-rs µs | tiktoken ÷ gateway | same counts |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for label, text in TEXTS.items():
        for size in (2048, 32768):
            sample = text[:size]
            samples: dict[str, list[float]] = {"ours": [], "twin": [], "tiktoken": [], "toktok": []}
            for _ in range(rounds):
                samples["ours"].append(per_call(lambda s=sample: ours.count(s)))
                samples["twin"].append(per_call(lambda s=sample: twin.count(s), 0.1))
                samples["tiktoken"].append(per_call(lambda s=sample: ref.encode_ordinary(s)))
                samples["toktok"].append(per_call(lambda s=sample: toktok.batch_count([s], "o200k_base", threads=1)))
            m = {k: statistics.median(v) for k, v in samples.items()}
            counts = {ours.count(sample), twin.count(sample), len(ref.encode_ordinary(sample)),
                      toktok.batch_count([sample], "o200k_base", threads=1)[0]}  # fmt: skip
            lines.append(
                f"| {label} | {len(sample.encode())} B | {m['ours']:.1f} | {m['twin']:.0f} | {m['tiktoken']:.1f}"
                f" | {m['toktok']:.1f} | {m['tiktoken'] / m['ours']:.1f}× | {'yes' if len(counts) == 1 else counts} |"
            )
    return lines


def pricing() -> list[str]:
    catalog = Catalog()
    adapter = SimpleNamespace(vendor="openai", kind="openai-compatible", base_url=None)
    metering = Metering(Pricer(catalog, {}), None, {"openai": adapter})  # type: ignore[dict-item]
    usage = Usage(prompt_tokens=1200, completion_tokens=300, prompt_tokens_details=PromptTokensDetails(cached_tokens=400))
    price = catalog.lookup("openai", "gpt-4o-mini")
    assert price is not None
    now = datetime.datetime.now(datetime.UTC)
    rates = price.rates_at(now)
    load = per_call(lambda: Catalog(), 1.0) / 1000
    return [
        "| step | median |",
        "|---|---:|",
        f"| catalog load (1,545 models, msgspec) | {load:.1f} ms |",
        f"| cost of one usage at known rates | {per_call(lambda: cost_femto(rates, usage)):.2f} µs |",
        f"| a call's price as the request path takes it (memoised lookup + cost) | {per_call(lambda: metering.price_usage('openai', 'gpt-4o-mini', usage)):.2f} µs |",
    ]


def row(i: int) -> UsageRow:
    return UsageRow(
        ts=time.time(), request_id=f"{i:024x}", endpoint="chat/completions", model="gpt-4o-mini",
        provider="openai", served_model="gpt-4o-mini-2024-07-18", status=200, error_type=None,
        input_tokens=1200, cached_tokens=400, cache_write_tokens=0, output_tokens=300,
        reasoning_tokens=0, counted=False, cost=345000, saved=0, latency_ms=12.5, ttft_ms=None,
        attempts=1, cache="MISS", price_id="openai/gpt-4o-mini", user=f"user-{i % 50}",
        feature=("search", "chat", "summarise")[i % 3], tags='["beta"]' if i % 2 else None,
    )  # fmt: skip


def record_cost() -> str:
    meter = Meter(None, max_queue=10**9)  # type: ignore[arg-type]  # record() never touches it
    rows = [row(i) for i in range(1000)]
    it = iter(range(10**9))

    def one() -> None:
        meter.record(rows[next(it) % 1000], "gpt-4o-mini")

    return f"| build a ledger row and enqueue it | {per_call(lambda: row(7)) + per_call(one):.2f} µs |"


async def ledger(url: str, count: int) -> tuple[float, float]:
    """Rows per second through Meter.flush into the store, and the event loop's longest stall
    (ms) while it wrote: the writer must never hold the loop."""
    from gateway.store import open_store

    store = open_store(url, {})
    meter = Meter(store, max_queue=count * 2)
    await meter.start()
    rows = [row(i) for i in range(count)]
    worst = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal worst
        while not stop:
            t = time.perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, time.perf_counter() - t - 0.001)

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    for r in rows:
        meter.record(r, "gpt-4o-mini")
    await meter.flush(force=True)
    elapsed = time.perf_counter() - start
    stop = True
    await task
    await meter.stop()
    return count / elapsed, worst * 1000


async def postgres_url() -> tuple[str, Callable[[], Any]]:
    import asyncpg

    name = f"gw_bench_{int(time.time())}"
    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()

    async def drop() -> None:
        c = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/test")
        await c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await c.close()

    return f"postgresql://postgres@127.0.0.1:5432/{name}", drop


def stores(rounds: int, count: int) -> list[str]:
    lines = ["| store | rows/s (median) | longest event-loop stall |", "|---|---:|---:|"]
    results: dict[str, list[tuple[float, float]]] = {"SQLite (WAL)": [], "PostgreSQL (COPY)": []}
    for _ in range(rounds):
        path = Path(tempfile.mkdtemp()) / "usage.db"
        results["SQLite (WAL)"].append(asyncio.run(ledger(f"sqlite:///{path}", count)))
        url, drop = asyncio.run(postgres_url())
        try:
            results["PostgreSQL (COPY)"].append(asyncio.run(ledger(url, count)))
        finally:
            asyncio.run(drop())
    for name, samples in results.items():
        rate = statistics.median(s[0] for s in samples)
        stall = statistics.median(s[1] for s in samples)
        lines.append(f"| {name}, {count:,} rows | {rate:,.0f} | {stall:.1f} ms |")
    return lines


# Metering's own lines: the model's price, and the ledger on or off.
METERING = """pricing:
  openai/gpt-4o-mini: {{input: 0.15, output: 0.6, cached_input: 0.075}}
usage: {{enabled: {enabled}, spool: {spool}}}
"""
BODY = SHORT_BODY


def throughput(rounds: int, duration: int) -> list[str]:
    configs = {
        label: ONE_MODEL + METERING.format(enabled=enabled, spool=spool)
        for label, enabled, spool in (("metering on", "true", "true"), ("metering off", "false", "true"),
                                      ("metering on, no spool", "true", "false"))
    }
    samples = side_by_side(configs, BODY, rounds, duration)
    lines = ["| system | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    med = {k: [statistics.median(s[i] for s in v) for i in range(3)] for k, v in samples.items()}
    for label, (rps, p50, p99) in med.items():
        lines.append(f"| gateway (compiled), {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    ratios = [on[0] / off[0] for on, off in zip(samples["metering on"], samples["metering off"], strict=True)]
    spool = [on[0] / bare[0] for on, bare in zip(samples["metering on"], samples["metering on, no spool"], strict=True)]
    lines.append("")
    lines.append(
        f"Metering on ÷ off, per round: {', '.join(f'{r:.3f}' for r in ratios)};"
        f" median {statistics.median(ratios):.3f}. With the spool ÷ without it (what kill -9"
        f" safety costs): {', '.join(f'{r:.3f}' for r in spool)}; median {statistics.median(spool):.3f}."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--only", help="one section: counting, pricing, ledger or throughput")
    args = parser.parse_args()
    sections: list[tuple[str, Callable[[], list[str]]]] = [
        ("Token counting (counting), o200k_base", lambda: counting(args.rounds)),
        ("Pricing", lambda: [*pricing(), record_cost()]),
        ("Ledger writes (ledger)", lambda: stores(min(args.rounds, 3), args.rows)),
        ("Gateway throughput (throughput), non-stream pass-through, 32 connections",
         lambda: throughput(args.rounds, args.duration)),
    ]
    print_sections(sections, args.only)


if __name__ == "__main__":
    main()
