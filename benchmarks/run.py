"""Side-by-side throughput and latency: mock direct, the aiohttp reference, and the gateway
(compiled and pure-Python), each pinned to core 0 while wrk and the mock share core 1.

    make bench                       # or: python -m benchmarks.run --duration 10
Writes benchmarks/results/latest.md (and latest.png when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BODY = (
    '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You are a helpful assistant."},'
    '{"role":"user","content":"Hello! Tell me a short joke about gateways."}],"temperature":0.7%s}'
)
SCENARIOS = {"non-stream": "", "stream (20 chunks)": ',"stream":true'}


@dataclass
class Result:
    system: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def _start(command: list[str], core: int, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["taskset", "-c", str(core), *command], cwd=ROOT, env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return float("nan")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


def wrk(  # noqa: PLR0913 - the target and the load's shape
    port: int,
    body: str,
    duration: int,
    connections: int,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
) -> tuple[float, float, float]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{extra}wrk.body = [[{body}]]\n"
    )
    out = subprocess.run(
        ["taskset", "-c", "1", "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"errors while benchmarking port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    return rps, _ms(out, "50"), _ms(out, "99")


def _cache_config(upstream: str) -> str:
    """The same request every time: after the first, every answer comes from the cache."""
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(
        f"providers:\n  openai: {{type: openai-compatible, base_url: \"{upstream}/v1\"}}\n"
        "models:\n  - name: gpt-4o-mini\n    cache: {mode: simple}\n"
        "    targets: [{provider: openai, model: gpt-4o-mini}]\n"
    )
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is required: apt-get install wrk", file=sys.stderr)
        return 2
    python = sys.executable
    mock_port, ref_port, gw_port, pure_port, cache_port = (_free_port() for _ in range(5))
    upstream = f"http://127.0.0.1:{mock_port}"
    gateway_env = {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": f"{upstream}/v1", "GATEWAY_LOG_LEVEL": "warning"}
    systems = {
        "mock upstream (direct)": (mock_port, [python, "-m", "benchmarks.fast_upstream", "--port", str(mock_port)], 1, {}),
        "aiohttp pass-through (reference)": (ref_port, [python, "-m", "benchmarks.reference_passthrough", "--port", str(ref_port), "--upstream", upstream], 0, {}),
        "gateway (compiled)": (gw_port, [python, "-m", "gateway", "serve", "--port", str(gw_port)], 0, gateway_env),
        "gateway (pure Python)": (pure_port, [python, "-m", "gateway", "serve", "--port", str(pure_port)], 0, {**gateway_env, "GATEWAY_NO_EXTENSIONS": "1"}),
        "gateway, exact-cache hit": (cache_port, [python, "-m", "gateway", "serve", "--port", str(cache_port), "--config", _cache_config(upstream)], 0, {"GATEWAY_LOG_LEVEL": "warning"}),
    }  # fmt: skip
    processes = [_start(cmd, core, env) for _, cmd, core, env in systems.values()]
    results: list[Result] = []
    try:
        for port, *_ in systems.values():
            _wait(port)
        for scenario, extra in SCENARIOS.items():
            for name, (port, *_rest) in systems.items():
                if (name.startswith("aiohttp") or "cache" in name) and extra:
                    continue  # the reference relays whole bodies only; cache hits: non-stream
                wrk(port, BODY % extra, 2, args.connections)  # warm-up
                rps, p50, p99 = wrk(port, BODY % extra, args.duration, args.connections)
                results.append(Result(name, scenario, rps, p50, p99))
                print(f"{scenario:20} {name:34} {rps:9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(20)
    write_report(results, args)
    return 0


def write_report(results: list[Result], args: argparse.Namespace) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    reference = {r.scenario: r.rps for r in results if r.system.startswith("aiohttp")}
    lines = [
        f"`python -m benchmarks.run --duration {args.duration} --connections {args.connections}`, "
        f"{os.cpu_count()} cores, closed loop (wrk, {args.connections} keep-alive connections).",
        "",
        "| scenario | system | req/s | × reference | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.rps / reference[r.scenario]:.2f}" if r.scenario in reference else "–"
        lines.append(f"| {r.scenario} | {r.system} | {r.rps:,.0f} | {ratio} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |")
    (RESULTS / "latest.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [f"{r.system}\n{r.scenario}" for r in results]
    ax.barh(labels, [r.rps for r in results], color="#4a7bd0")
    ax.set_xlabel("requests/s (higher is better)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(RESULTS / "latest.png", dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
