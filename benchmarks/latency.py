"""Open-loop latency: requests sent at a fixed rate whatever the answers do (so a slow moment
cannot hide itself by slowing the load: no coordinated omission), timed from when each request
was due. The gateway's added latency is its percentile minus the mock's, in the same run.

    python -m benchmarks.latency                     # 1000 req/s, plus TTFT, 500-chunk relay, soak
    python -m benchmarks.latency --rate 1000 --seconds 10 --soak 600
Writes benchmarks/results/latency.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

import aiohttp

from benchmarks.run import RESULTS, _free_port, _start, _wait

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]%s}'


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool) -> float | None:
    """Seconds to the whole answer, or for a stream to its first content chunk."""
    started = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as response:
        if response.status != 200:
            return None
        if stream:
            async for chunk in response.content.iter_any():
                if b'"content":"tok' in chunk or b'"content": "tok' in chunk:
                    elapsed = time.perf_counter() - started
                    await response.read()
                    return elapsed
            return None
        await response.read()
    return time.perf_counter() - started


async def open_loop(
    url: str, rate: float, seconds: float, stream: bool = False, warmup: float = 1.0
) -> list[float]:
    """Requests sent on a fixed schedule, each timed from when it was due; the first `warmup`
    seconds (connections opening on both hops) are sent but not counted."""
    body = BODY % (b',"stream":true' if stream else b"")
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter() + 0.1
        counted_from = start + warmup
        total = int(rate * (seconds + warmup))
        tasks = []

        async def scheduled(due: float) -> None:
            nonlocal errors
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent = time.perf_counter()
            took = await _one(session, url, body, stream)
            if took is None:
                errors += 1
            elif due >= counted_from:
                latencies.append(took + (sent - due))  # lateness of the sender counts too

        for i in range(total):
            tasks.append(asyncio.create_task(scheduled(start + i / rate)))
        await asyncio.gather(*tasks)
    if errors:
        print(f"  {errors} errors at {url}", file=sys.stderr)
    return sorted(latencies)


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else float("nan")


async def relay_cost(direct: str, gateway: str, runs: int) -> tuple[float, float]:
    """Mean seconds for a whole 500-chunk stream, straight from the mock and through the gateway."""
    body = BODY % b',"stream":true'
    out = []
    async with aiohttp.ClientSession() as session:
        for url in (direct, gateway):
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                async with session.post(url, data=body, headers={"content-type": "application/json"}) as r:
                    await r.read()
                times.append(time.perf_counter() - started)
            out.append(statistics.median(times))
    return out[0], out[1]


def main() -> int:  # noqa: PLR0915 - one scenario after another, in one run
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--soak", type=float, default=60, help="seconds of steady load for RSS")
    args = parser.parse_args()
    python = sys.executable
    mock, drip, paced, gw, gw_drip, gw_paced = (_free_port() for _ in range(6))
    env = {"GATEWAY_LOG_LEVEL": "warning", "OPENAI_API_KEY": "sk-bench"}
    processes = [
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(mock)], 1),
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(drip), "--chunks", "500", "--chunk-delay", "1"], 1),
        _start([python, "-m", "gateway", "serve", "--port", str(gw)], 0, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{mock}/v1"}),
        _start([python, "-m", "gateway", "serve", "--port", str(gw_drip)], 0, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{drip}/v1"}),
        # Time to first token needs a stream whose first token arrives on its own, as from a
        # model: 20 chunks 1 ms apart (a stream sent in one write would time all of it).
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(paced), "--chunks", "20", "--chunk-delay", "1"], 1),
        _start([python, "-m", "gateway", "serve", "--port", str(gw_paced)], 0, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{paced}/v1"}),
    ]  # fmt: skip
    lines = [
        f"`python -m benchmarks.latency --rate {args.rate:g} --seconds {args.seconds:g} --soak {args.soak:g}`,"
        f" {os.cpu_count()} cores; gateway pinned to core 0, mock and load generator on core 1.",
        "",
    ]
    try:
        for port in (mock, drip, paced, gw, gw_drip, gw_paced):
            _wait(port)
        path = "/v1/chat/completions"
        idle = _rss_mb(processes[2].pid)
        rows = ["| scenario | system | p50 ms | p99 ms | added p50 ms | added p99 ms |", "|---|---|---:|---:|---:|---:|"]
        runs = (("non-stream", False, args.rate, mock, gw), ("stream: time to first token", True, args.rate / 5, paced, gw_paced))
        for name, stream, rate, direct_port, gateway_port in runs:
            direct = asyncio.run(open_loop(f"http://127.0.0.1:{direct_port}{path}", rate, args.seconds, stream))
            through = asyncio.run(open_loop(f"http://127.0.0.1:{gateway_port}{path}", rate, args.seconds, stream))
            label = f"{name} at {rate:g} req/s"
            rows.append(f"| {label} | mock direct | {_pct(direct, 0.5):.2f} | {_pct(direct, 0.99):.2f} | | |")
            rows.append(
                f"| {label} | gateway | {_pct(through, 0.5):.2f} | {_pct(through, 0.99):.2f} | "
                f"{_pct(through, 0.5) - _pct(direct, 0.5):.2f} | {_pct(through, 0.99) - _pct(direct, 0.99):.2f} |"
            )
            print(rows[-2], rows[-1], sep="\n", flush=True)
        direct_s, gateway_s = asyncio.run(
            relay_cost(f"http://127.0.0.1:{drip}{path}", f"http://127.0.0.1:{gw_drip}{path}", 10)
        )
        relay = f"500-chunk stream, 1 ms apart: {direct_s * 1000:.1f} ms direct, {gateway_s * 1000:.1f} ms through the gateway ({(gateway_s / direct_s - 1) * 100:+.1f}%)."
        print(relay, flush=True)
        start_rss = _rss_mb(processes[2].pid)
        samples: list[float] = []
        soaked = 0.0
        while soaked < args.soak:
            step = min(10.0, args.soak - soaked)
            asyncio.run(open_loop(f"http://127.0.0.1:{gw}{path}", args.rate, step))
            soaked += step
            samples.append(_rss_mb(processes[2].pid))
        growth = (samples[-1] / start_rss - 1) * 100 if samples else float("nan")
        soak = (
            f"RSS: {idle:.0f} MB idle; {start_rss:.0f} MB after warm-up; {samples[-1]:.0f} MB after "
            f"{args.soak:g} s at {args.rate:g} req/s ({growth:+.1f}%); samples every 10 s: "
            + ", ".join(f"{s:.0f}" for s in samples)
        )
        print(soak, flush=True)
        lines += [*rows, "", relay, "", soak, ""]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(20)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latency.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
