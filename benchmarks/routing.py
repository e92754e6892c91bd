"""What smart routing costs a request: the gateway as built now beside the same gateway
before smart routing (a git worktree of --base, its extensions built in place), both behind
one fast mock, in interleaved rounds. Scenarios: a plain one-target model and a two-target
fallback model on both gateways (what every configured route now pays: the fit check and
the route headers), and, on the current one, the `cheapest` and `complexity` modes.

    python -m benchmarks.routing [--base 5c1a901] [--rounds 10] [--duration 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import MASTER_KEY, QUESTION, _free_port, _start, _wait, wrk  # noqa: E402

CONFIG = (
    f"server: {{master_key: {MASTER_KEY}}}\n"
    "providers:\n"
    '  openai: {api_key: sk-bench, base_url: "{up}/v1"}\n'
    "usage: {enabled: false}\n"
    "models:\n"
    "  - name: plain\n"
    "    targets: [{provider: openai, model: gpt-4o-mini}]\n"
    "  - name: fallback\n"
    "    strategy: {mode: fallback}\n"
    "    targets: [{provider: openai, model: gpt-4o-mini}, {provider: openai, model: gpt-4o}]\n"
)
SMART = (
    "  - name: cheapest\n"
    "    strategy: {mode: cheapest}\n"
    "    targets: [{provider: openai, model: gpt-4o}, {provider: openai, model: gpt-4o-mini},"
    " {provider: openai, model: gpt-4.1-nano}]\n"
    "  - name: complexity\n"
    "    strategy: {mode: complexity, tiers: [{below: 0.35, target: a}, {target: b}]}\n"
    "    targets: [{name: a, provider: openai, model: gpt-4o-mini},"
    " {name: b, provider: openai, model: gpt-4o}]\n"
)


def _worktree(base: str) -> Path:
    where = Path(tempfile.mkdtemp(prefix="gateway-base-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(where), base], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=where,
                   check=True, capture_output=True)  # fmt: skip
    return where


def run(base: str, rounds: int, duration: int) -> list[str]:
    python = sys.executable
    tree = _worktree(base)
    mock, now_port, base_port = _free_port(), _free_port(), _free_port()
    up = f"http://127.0.0.1:{mock}"
    now_cfg = Path(tempfile.mkstemp(suffix=".yaml")[1])
    now_cfg.write_text(CONFIG.replace("{up}", up) + SMART)
    base_cfg = Path(tempfile.mkstemp(suffix=".yaml")[1])
    base_cfg.write_text(CONFIG.replace("{up}", up))
    serve = [python, "-m", "gateway", "serve", "--port"]
    procs = [
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(mock)], "1"),
        _start([*serve, str(now_port), "--config", str(now_cfg)], "0"),
        # From the worktree's directory, whose `gateway` comes first on sys.path.
        _start(["env", "-C", str(tree), *serve, str(base_port), "--config", str(base_cfg)], "0"),
    ]
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    body = '{{"model":"{m}","messages":[{{"role":"user","content":"' + QUESTION + '"}}]}}'
    scenarios = {
        "plain, before": (base_port, "plain"), "plain, now": (now_port, "plain"),
        "fallback, before": (base_port, "fallback"), "fallback, now": (now_port, "fallback"),
        "cheapest, now": (now_port, "cheapest"), "complexity, now": (now_port, "complexity"),
    }  # fmt: skip
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in scenarios}
    try:
        for port in (mock, now_port, base_port):
            _wait(port)
        for port, model in scenarios.values():
            wrk(port, body.format(m=model), 2, 32, auth)
        order = list(scenarios)
        for i in range(rounds):
            for label in order if i % 2 == 0 else reversed(order):
                port, model = scenarios[label]
                samples[label].append(wrk(port, body.format(m=model), duration, 32, auth))
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT,
                       capture_output=True)  # fmt: skip
    lines = [f"Before: {base}; now: the working tree. {rounds} interleaved rounds of {duration} s,"
             " 32 connections, non-stream chat, usage ledger off.", "",
             "| scenario (compiled) | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]  # fmt: skip
    for label, got in samples.items():
        rps, p50, p99 = (statistics.median(r[k] for r in got) for k in range(3))
        lines.append(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    lines.append("")
    for a, b in (("plain, now", "plain, before"), ("fallback, now", "fallback, before"),
                 ("cheapest, now", "plain, now"), ("complexity, now", "plain, now")):  # fmt: skip
        ratios = [x[0] / y[0] for x, y in zip(samples[a], samples[b], strict=True)]
        lines.append(f"{a} ÷ {b}: median of per-round ratios {statistics.median(ratios):.3f}"
                     f" (range {min(ratios):.3f}-{max(ratios):.3f})")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", default="5c1a901")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(run(args.base, args.rounds, args.duration)))


if __name__ == "__main__":
    main()
