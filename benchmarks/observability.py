"""Observability, measured: gateway throughput with the access log as text and as JSON lines,
and with OpenTelemetry tracing off, sampled at 1% and at 100% (exported to a local OTLP/HTTP
receiver), side by side in interleaved rounds.

    python -m benchmarks.observability [--rounds 5] [--duration 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def _table(samples: dict[str, list[tuple[float, float, float]]], base: str) -> list[str]:
    lines = ["| gateway (compiled) | req/s | p50 ms | p99 ms | ÷ " + base + " (median of rounds) |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for label, rounds_of in samples.items():
        rps, p50, p99 = (statistics.median(r[i] for r in rounds_of) for i in range(3))
        ratio = statistics.median(
            a[0] / b[0] for a, b in zip(rounds_of, samples[base], strict=True)
        )
        lines.append(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.3f} |")
    return lines


class _Sink(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver that reads and drops what it is sent, on kept-alive connections
    (as an OpenTelemetry Collector answers)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def traces(rounds: int, duration: int) -> list[str]:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"

    def traced(ratio: float) -> str:
        return ONE_MODEL + f"tracing: {{enabled: true, endpoint: {endpoint}, sample_ratio: {ratio}}}\n"

    configs = {
        "tracing off": ONE_MODEL,
        "tracing, 1% sampled": traced(0.01),
        "tracing, 100% sampled": traced(1.0),
    }
    try:
        samples = side_by_side(configs, BODY, rounds, duration)
    finally:
        sink.shutdown()
    return _table(samples, "tracing off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    print("\n### Access log: text against JSON lines, 32 connections\n")
    print("\n".join(logs(args.rounds, args.duration)), flush=True)
    print("\n### Tracing: off, 1% and 100% sampled (OTLP/HTTP to a local receiver)\n")
    print("\n".join(traces(args.rounds, args.duration)), flush=True)


if __name__ == "__main__":
    main()
