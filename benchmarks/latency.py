"""Open-loop latency: requests sent at a fixed rate whatever the answers do (so a slow moment
cannot hide itself by slowing the load: no coordinated omission), timed from when each request
was due (benchmarks/openloop.py). The gateway's added latency is its percentile minus the
mock's, in the same run; nginx relaying to the same mock, pinned like the gateway, shows what
the extra hop itself costs on the machine (two more loopback crossings between the cores).

A shared VM's speed drifts from one minute to the next, so each scenario runs in rounds that
take turns between the systems (mock, gateway, nginx, then again), and the figures are the
medians over the rounds of each system's percentile and of its difference from the mock in the
same round.

    python -m benchmarks.latency                     # 1000 req/s, plus TTFT, 500-chunk relay, soak
    python -m benchmarks.latency --rate 1000 --seconds 10 --rounds 5 --soak 600
Writes benchmarks/results/latency.md and latency.png.
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
from benchmarks.run import RESULTS, _free_port, _start, _wait, percentile_bars, pyplot

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


class _Rounds:
    """One scenario's figures, round by round: each system's p50 and p99, in ms."""

    def __init__(self) -> None:
        self.p50: dict[str, list[float]] = {}
        self.p99: dict[str, list[float]] = {}

    def add(self, system: str, latencies: list[float]) -> None:
        self.p50.setdefault(system, []).append(_pct(latencies, 0.5))
        self.p99.setdefault(system, []).append(_pct(latencies, 0.99))

    def added(self, system: str, which: dict[str, list[float]]) -> list[float]:
        return [mine - direct for mine, direct in zip(which[system], which[DIRECT], strict=True)]

    def added_medians(self, system: str) -> tuple[float, float]:
        """The system's added p50 and p99: medians over the rounds of its excess over the mock."""
        added50, added99 = self.added(system, self.p50), self.added(system, self.p99)
        return statistics.median(added50), statistics.median(added99)

    def row(self, label: str, system: str) -> str:
        p50, p99 = statistics.median(self.p50[system]), statistics.median(self.p99[system])
        if system == DIRECT:
            return f"| {label} | {system} | {p50:.3f} | {p99:.3f} | | | |"
        added50 = self.added(system, self.p50)
        median50, median99 = self.added_medians(system)
        spread = f"{min(added50):.3f}–{max(added50):.3f}"
        return f"| {label} | {system} | {p50:.3f} | {p99:.3f} | {median50:.3f} | {median99:.3f} | {spread} |"


def write_chart(added: list[tuple[str, float, float]], out: Path) -> bool:
    """Added p50 and p99 (ms) per scenario and system as latency.png; False without matplotlib."""
    plt = pyplot()
    if plt is None:
        return False
    fig, axis = plt.subplots(figsize=(10, 0.7 * len(added) + 1.6))
    percentile_bars(axis, [p50 for _, p50, _ in added], [p99 for _, _, p99 in added], "added ")
    axis.set_yticks(list(range(len(added))), [label for label, _, _ in added], fontsize=8)
    axis.invert_yaxis()
    axis.axvline(0, color="black", linewidth=0.5)
    axis.set_xlabel("ms added to the mock's latency, open loop (lower is better)")
    axis.legend(loc="best")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)
    return True


DIRECT = "mock direct"
PATH = "/v1/chat/completions"


def _measure(  # noqa: PLR0913 - a scenario: who, how fast, how long, what
    label: str,
    systems: dict[str, int],
    rate: float,
    args: argparse.Namespace,
    body: bytes,
    stream: bool,
) -> _Rounds:
    """Rounds that take turns between the systems, so a drift in the machine's speed falls on
    all of them alike."""
    rounds, errors = _Rounds(), 0
    for number in range(args.rounds):
        for system, port in systems.items():
            url = f"http://127.0.0.1:{port}{PATH}"
            latencies, failed = open_loop(url, rate, args.seconds, body, stream=stream)
            errors += failed
            rounds.add(system, latencies)
        added = ", ".join(
            f"{system} +{rounds.added(system, rounds.p50)[-1]:.3f}"
            for system in systems
            if system != DIRECT
        )
        mock_p50 = rounds.p50[DIRECT][-1]
        print(f"  {label}, round {number + 1}: mock p50 {mock_p50:.3f} ms; added p50 {added}", flush=True)
    if errors:
        print(f"  {errors} failed requests in {label}", file=sys.stderr)
    return rounds


def main() -> int:  # noqa: PLR0915 - one scenario after another, in one run
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10, help="per system and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak", type=float, default=60, help="seconds of steady load for RSS")
    args = parser.parse_args()
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the mock
    python = sys.executable
    mock, drip, paced, gw, gw_drip, gw_paced, proxy = (_free_port() for _ in range(7))
    env = {"OPENAI_API_KEY": "sk-bench"}  # as `make run` starts it: INFO level, access log on
    processes = [
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(mock)], 1),
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(drip), "--chunks", "500", "--chunk-delay", "1"], 1),
        _start([python, "-m", "gateway", "serve", "--port", str(gw)], 0, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{mock}/v1"}),
        _start([python, "-m", "gateway", "serve", "--port", str(gw_drip)], 0, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{drip}/v1"}),
        # Time to first token needs a stream whose first token arrives on its own, as from a
        # model: 20 chunks 1 ms apart (a stream sent in one write would time all of it). The
        # first token comes with the head: a timer before it would add the mock's own jitter
        # (the event loop's timers wake in whole milliseconds) to a figure of ~0.1 ms.
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(paced), "--chunks", "20", "--chunk-delay", "1",
                "--first-token-delay", "0"], 1),
        _start([python, "-m", "gateway", "serve", "--port", str(gw_paced)], 0, {**env, "OPENAI_BASE_URL": f"http://127.0.0.1:{paced}/v1"}),
    ]  # fmt: skip
    nginx = _nginx(mock, proxy)
    if nginx is not None:
        processes.append(_start(nginx, 0))
    lines = [
        f"`python -m benchmarks.latency --rate {args.rate:g} --seconds {args.seconds:g}"
        f" --rounds {args.rounds} --soak {args.soak:g}`, {os.cpu_count()} cores; gateway (and"
        " nginx) pinned to core 0, mock and load generator on core 1; latencies in ms, open loop"
        " (benchmarks/openloop.py), medians over the rounds; the spread is the added p50's"
        " lowest and highest round.",
        "",
    ]
    try:
        for port in (mock, drip, paced, gw, gw_drip, gw_paced, *((proxy,) if nginx else ())):
            _wait(port)
        idle = _rss_mb(processes[2].pid)
        chart: list[tuple[str, float, float]] = []
        rows = [
            "| scenario | system | p50 | p99 | added p50 | added p99 | added p50, spread |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        runs = (
            ("non-stream", False, args.rate, mock, gw),
            ("stream: time to first token", True, args.rate / 5, paced, gw_paced),
        )
        for name, stream, rate, direct_port, gateway_port in runs:
            body = BODY % (b',"stream":true' if stream else b"")
            systems = {DIRECT: direct_port, "gateway": gateway_port}
            if nginx is not None and not stream:
                systems["nginx reverse proxy (the hop alone)"] = proxy
            for port in systems.values():  # warm both hops' connections
                open_loop(f"http://127.0.0.1:{port}{PATH}", rate, 1, body, stream=stream, warmup=0)
            label = f"{name} at {rate:g} req/s"
            rounds = _measure(label, systems, rate, args, body, stream)
            for system in systems:
                rows.append(rounds.row(label, system))
                print(rows[-1], flush=True)
                if system != DIRECT:
                    chart.append((f"{label} | {system}", *rounds.added_medians(system)))
        direct_s, gateway_s = asyncio.run(
            relay_cost(f"http://127.0.0.1:{drip}{PATH}", f"http://127.0.0.1:{gw_drip}{PATH}", 10)
        )
        relay = f"500-chunk stream, 1 ms apart: {direct_s * 1000:.1f} ms direct, {gateway_s * 1000:.1f} ms through the gateway ({(gateway_s / direct_s - 1) * 100:+.1f}%)."
        print(relay, flush=True)
        start_rss = _rss_mb(processes[2].pid)
        samples: list[float] = []
        soaked = 0.0
        body = BODY % b""
        while soaked < args.soak:
            step = min(10.0, args.soak - soaked)
            open_loop(f"http://127.0.0.1:{gw}{PATH}", args.rate, step, body, warmup=0)
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
    write_chart(chart, RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
