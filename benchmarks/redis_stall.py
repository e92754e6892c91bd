"""Latency while the cache's Redis stalls: `python -m benchmarks.redis_stall`.

A private redis-server, the gateway with the exact cache on it (as `make run` starts it, access
log on), and the fast mock upstream. An open loop sends `--rate` requests a second, each a new
question (a miss: a Redis lookup and a Redis write), for three phases: Redis answering, Redis
stopped with SIGSTOP (connections accepted, nothing answered: the worst case, every lookup waits
its timeout), and Redis continued. Reported: p50 / p99 / max per phase, and the log lines the
gateway wrote about Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.openloop import open_loop
from benchmarks.run import RESULTS, _free_port, _wait

CONFIG = """
cache: {{mode: simple, redis_url: "redis://127.0.0.1:{redis}/0", redis_timeout_ms: 50}}
providers:
  openai: {{type: openai-compatible, api_key: sk-bench, base_url: "http://127.0.0.1:{mock}/v1"}}
"""


def _body(n: int) -> bytes:
    return json.dumps({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"question {n} {time.time_ns()}"}]}).encode()


def _phase(timeline: list[tuple[float, float]], start: float, end: float) -> str:
    ms = sorted(latency * 1000 for at, latency in timeline if start <= at < end)
    if not ms:
        return "| – | – | – | – | 0 |"
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    slow = sum(1 for m in ms if m > 10)
    return f"| {statistics.median(ms):.2f} | {p99:.2f} | {ms[-1]:.1f} | {slow} | {len(ms)} |"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--phase", type=float, default=5, help="seconds per phase")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        print("redis-server is required: apt-get install redis-server", file=sys.stderr)
        return 2
    python = sys.executable
    redis_port, mock_port, gw_port = _free_port(), _free_port(), _free_port()
    work = Path(tempfile.mkdtemp(prefix="gateway-stall-"))
    config = work / "gateway.yaml"
    config.write_text(CONFIG.format(redis=redis_port, mock=mock_port))
    log = work / "gateway.log"
    redis = subprocess.Popen([binary, "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", str(work)],
                             stdout=subprocess.DEVNULL)  # fmt: skip
    mock = subprocess.Popen([python, "-m", "benchmarks.fast_upstream", "--port", str(mock_port)])
    with log.open("wb") as out:
        gateway = subprocess.Popen([python, "-m", "gateway", "serve", "--config", str(config), "--port", str(gw_port)],
                                   stdout=out, stderr=out, env={k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")})  # fmt: skip
    timeline: list[tuple[float, float]] = []
    try:
        for port in (redis_port, mock_port, gw_port):
            _wait(port)

        def stall() -> None:
            # open_loop's first request is due 50 ms after it is called, and one second of
            # warm-up is not counted: then one phase with Redis answering.
            time.sleep(0.05 + 1 + args.phase)
            redis.send_signal(signal.SIGSTOP)
            time.sleep(args.phase)
            redis.send_signal(signal.SIGCONT)

        threading.Thread(target=stall, daemon=True).start()
        url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        _, errors = open_loop(url, args.rate, 3 * args.phase, _body, timeline=timeline)
    finally:
        redis.send_signal(signal.SIGCONT)
        for process in (gateway, mock, redis):
            process.send_signal(signal.SIGTERM)
            process.wait(20)
    p = args.phase
    notes = [line.split(": ", 1)[-1] for line in log.read_text().splitlines() if "Redis" in line]
    lines = [
        f"`python -m benchmarks.redis_stall --rate {args.rate:g} --phase {p:g}`; each request a"
        " new question (a lookup and a write); Redis stopped with SIGSTOP for the middle phase.",
        "",
        "| phase | p50 ms | p99 ms | max ms | over 10 ms | requests |",
        "|---|---:|---:|---:|---:|---:|",
        "| Redis answering " + _phase(timeline, 0, p),
        "| Redis stalled (SIGSTOP) " + _phase(timeline, p, 2 * p),
        "| Redis back " + _phase(timeline, 2 * p, 3 * p),
        "",
        f"Failed requests: {errors}. What the gateway logged about Redis:",
        "",
        *[f"- `{note}`" for note in notes],
    ]
    report = "\n".join(lines)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "redis_stall.md").write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
