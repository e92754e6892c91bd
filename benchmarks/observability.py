"""Observability, measured: gateway throughput with the access log as text and as JSON lines,
side by side in interleaved rounds.

    python -m benchmarks.observability [--rounds 5] [--duration 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import ONE_MODEL, SHORT_BODY, side_by_side  # noqa: E402

BODY = SHORT_BODY


def logs(rounds: int, duration: int) -> list[str]:
    configs = {f"access log as {f}": ONE_MODEL + f"logging: {{format: {f}}}\n" for f in ("text", "json")}
    samples = side_by_side(configs, BODY, rounds, duration)
    lines = ["| gateway (compiled) | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for label, rounds_of in samples.items():
        rps, p50, p99 = (statistics.median(r[i] for r in rounds_of) for i in range(3))
        lines.append(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    text, json = samples["access log as text"], samples["access log as json"]
    ratios = [j[0] / t[0] for j, t in zip(json, text, strict=True)]
    lines.append("")
    lines.append(f"JSON ÷ text, per round: {', '.join(f'{r:.3f}' for r in ratios)}; median {statistics.median(ratios):.3f}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    print("\n### Access log: text against JSON lines, 32 connections\n")
    print("\n".join(logs(args.rounds, args.duration)), flush=True)


if __name__ == "__main__":
    main()
