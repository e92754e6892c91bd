"""Open-loop latency: requests sent at a fixed rate whatever the answers do (so a slow moment
cannot hide itself by slowing the load: no coordinated omission), timed from when each request
was due (benchmarks/openloop.py). The gateway's added latency is its percentile minus the
mock's, in the same run; nginx relaying to the same mock, pinned like the gateway, shows what
the extra hop itself costs on the machine (two more loopback crossings between the cores).

    python -m benchmarks.latency                     # 1000 req/s, plus TTFT, 500-chunk relay, soak
    python -m benchmarks.latency --rate 1000 --seconds 10 --soak 600
Writes benchmarks/results/latency.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from benchmarks.openloop import open_loop
from benchmarks.peers import NGINX
from benchmarks.run import RESULTS, _free_port, _start, _wait

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]%s}'


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


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


def _nginx(mock: int, port: int) -> list[str] | None:
    nginx = shutil.which("nginx")
    if nginx is None:
        return None
    work = Path(tempfile.mkdtemp(prefix="gateway-latency-"))
    (work / "nginx.conf").write_text(NGINX.format(dir=work, mock=mock, port=port))
    return [nginx, "-c", str(work / "nginx.conf"), "-p", str(work)]


def _row(label: str, system: str, values: list[float], direct: list[float] | None) -> str:
    p50, p99 = _pct(values, 0.5), _pct(values, 0.99)
    if direct is None:
        return f"| {label} | {system} | {p50:.3f} | {p99:.3f} | | |"
    return (
        f"| {label} | {system} | {p50:.3f} | {p99:.3f} | "
        f"{p50 - _pct(direct, 0.5):.3f} | {p99 - _pct(direct, 0.99):.3f} |"
    )


def main() -> int:  # noqa: PLR0915 - one scenario after another, in one run
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--soak", type=float, default=60, help="seconds of steady load for RSS")
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the mock
    python = sys.executable
    mock, drip, paced, gw, gw_drip, gw_paced, proxy = (_free_port() for _ in range(7))
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
    nginx = _nginx(mock, proxy)
    if nginx is not None:
        processes.append(_start(nginx, 0))
    lines = [
        f"`python -m benchmarks.latency --rate {args.rate:g} --seconds {args.seconds:g} --soak {args.soak:g}`,"
        f" {os.cpu_count()} cores; gateway (and nginx) pinned to core 0, mock and load generator"
        " on core 1; latencies in ms, open loop (benchmarks/openloop.py).",
        "",
    ]
    try:
        for port in (mock, drip, paced, gw, gw_drip, gw_paced, *((proxy,) if nginx else ())):
            _wait(port)
        path = "/v1/chat/completions"
        idle = _rss_mb(processes[2].pid)
        rows = ["| scenario | system | p50 | p99 | added p50 | added p99 |", "|---|---|---:|---:|---:|---:|"]
        runs = (("non-stream", False, args.rate, mock, gw), ("stream: time to first token", True, args.rate / 5, paced, gw_paced))
        for name, stream, rate, direct_port, gateway_port in runs:
            body = BODY % (b',"stream":true' if stream else b"")
            systems = {"gateway": gateway_port}
            if nginx is not None and not stream:
                systems["nginx reverse proxy (the hop alone)"] = proxy
            for port in systems.values():  # warm both hops' connections
                open_loop(f"http://127.0.0.1:{port}{path}", rate, 1, body, stream=stream, warmup=0)
            label = f"{name} at {rate:g} req/s"
            direct, errors = open_loop(f"http://127.0.0.1:{direct_port}{path}", rate, args.seconds, body, stream=stream)
            rows.append(_row(label, "mock direct", direct, None))
            print(rows[-1], flush=True)
            for system, port in systems.items():
                through, failed = open_loop(f"http://127.0.0.1:{port}{path}", rate, args.seconds, body, stream=stream)
                errors += failed
                rows.append(_row(label, system, through, direct))
                print(rows[-1], flush=True)
            if errors:
                print(f"  {errors} failed requests in {label}", file=sys.stderr)
        direct_s, gateway_s = asyncio.run(
            relay_cost(f"http://127.0.0.1:{drip}{path}", f"http://127.0.0.1:{gw_drip}{path}", 10)
        )
        relay = f"500-chunk stream, 1 ms apart: {direct_s * 1000:.1f} ms direct, {gateway_s * 1000:.1f} ms through the gateway ({(gateway_s / direct_s - 1) * 100:+.1f}%)."
        print(relay, flush=True)
        start_rss = _rss_mb(processes[2].pid)
        samples: list[float] = []
        soaked = 0.0
        body = BODY % b""
        while soaked < args.soak:
            step = min(10.0, args.soak - soaked)
            open_loop(f"http://127.0.0.1:{gw}{path}", args.rate, step, body, warmup=0)
            soaked += step
            samples.append(_rss_mb(processes[2].pid))
        samples = samples or [start_rss]  # --soak 0: no soak, the figure is the warm RSS
        growth = (samples[-1] / start_rss - 1) * 100
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
