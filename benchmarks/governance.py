"""Governance, measured: gateway throughput and latency with a virtual key under RPM, TPM and
budget rules (reserved on Redis, settled in batches) against the master key alone, in the same
gateway process, interleaved rounds; and the limiter's Redis round trips per request.

    python -m benchmarks.governance [--rounds 5] [--duration 8]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.openloop import open_loop  # noqa: E402
from benchmarks.run import MASTER_KEY, _free_port, _start, _wait, wrk  # noqa: E402

CONFIG = """
server: {{master_key: {key}}}
providers:
  openai: {{type: openai-compatible, api_key: sk-bench, base_url: "{up}/v1"}}
models:
  - name: gpt-4o-mini
    targets: [{{provider: openai, model: gpt-4o-mini}}]
pricing:
  openai/gpt-4o-mini: {{input: 0.15, output: 0.6, cached_input: 0.075}}
governance: {{redis_url: "{redis}"}}
"""
BODY = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello! Tell me a short joke about gateways."}],"max_tokens":100,"user":"u1"}'


def _redis() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed: apt-get install redis-server")
    port = _free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait(port)
    return process, port


def _admin(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())  # type: ignore[no-any-return]


def _counter(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    found = re.findall(rf"^{name}(?:{{[^}}]*}})? ([\d.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


def _backends() -> tuple[subprocess.Popen[bytes], int, Path, list[subprocess.Popen[bytes]]]:
    """A private Redis, the mock upstream, and the gateways' config pointing at both."""
    redis, redis_port = _redis()
    mock = _free_port()
    procs = [_start([sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(mock)], "1")]
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(
        CONFIG.format(
            key=MASTER_KEY, up=f"http://127.0.0.1:{mock}", redis=f"redis://127.0.0.1:{redis_port}/0"
        )  # fmt: skip
    )
    return redis, mock, path, procs


def throughput(rounds: int, duration: int) -> list[str]:
    python = sys.executable
    redis, mock, path, procs = _backends()
    port = _free_port()
    procs.append(
        _start([python, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)], "0")
    )
    samples: dict[str, list[tuple[float, float, float]]] = {
        "master key": [], "virtual key, no limits": [], "virtual key": [],
    }  # fmt: skip
    trips = []
    opened: dict[str, list[tuple[float, float]]] = {
        "master key": [], "virtual key, no limits": [], "virtual key": [],
    }  # fmt: skip
    try:
        _wait(mock)
        _wait(port)
        key = _admin(port, "/admin/keys", {
            "rpm_limit": 100_000_000, "tpm_limit": 10_000_000_000, "max_budget": 1_000_000,
            "budget_duration": "1mo",
        })["key"]  # fmt: skip
        bare = _admin(port, "/admin/keys", {})["key"]
        auth = {"master key": {"Authorization": f"Bearer {MASTER_KEY}"},
                "virtual key, no limits": {"Authorization": f"Bearer {bare}"},
                "virtual key": {"Authorization": f"Bearer {key}"}}  # fmt: skip
        for headers in auth.values():
            wrk(port, BODY, 2, 32, headers)
        for number in range(rounds):
            order = list(auth.items())
            if number % 2:  # ABBA: whichever runs second in a round is not always the same
                order.reverse()
            for label, headers in order:
                before = _counter(port, "gateway_limiter_round_trips_total")
                result = wrk(port, BODY, duration, 32, headers)
                samples[label].append(result)
                if label == "virtual key":
                    time.sleep(0.2)  # the last settles
                    after = _counter(port, "gateway_limiter_round_trips_total")
                    trips.append((after - before) / (result[0] * duration))
        # Added latency at a fixed rate (open loop): what a request waits, not a throughput.
        for number in range(rounds):
            order = list(auth.items())
            if number % 2:
                order.reverse()
            for label, headers in order:
                latencies, _ = open_loop(
                    f"http://127.0.0.1:{port}/v1/chat/completions", 1000, duration, BODY.encode(),
                    headers=headers,
                )  # fmt: skip
                opened[label].append(
                    (
                        latencies[len(latencies) // 2] * 1000,
                        latencies[int(len(latencies) * 0.99)] * 1000,
                    )
                )
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        redis.terminate()
    lines = ["| caller | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    med = {k: [statistics.median(s[i] for s in v) for i in range(3)] for k, v in samples.items()}
    for label, (rps, p50, p99) in med.items():
        lines.append(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    ratios = [
        v[0] / m[0] for v, m in zip(samples["virtual key"], samples["master key"], strict=True)
    ]
    added = [
        v[1] - m[1] for v, m in zip(samples["virtual key"], samples["master key"], strict=True)
    ]
    lines += [
        "",
        f"Virtual key ÷ master key throughput, per round: {', '.join(f'{r:.3f}' for r in ratios)};"
        f" median {statistics.median(ratios):.3f}. Added p50: median"
        f" {statistics.median(added):.3f} ms. Limiter Redis round trips per request (reserves"
        f" and settle batches): median {statistics.median(trips):.3f}.",
        "",
        "Virtual key without limits ÷ master key, per round: "
        + ", ".join(
            f"{v[0] / m[0]:.3f}"
            for v, m in zip(samples["virtual key, no limits"], samples["master key"], strict=True)
        ),
        "",
        "Open loop, 1,000 req/s:",
        "",
        "| caller | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for label, values in opened.items():
        lines.append(
            f"| {label} | {statistics.median(v[0] for v in values):.3f}"
            f" | {statistics.median(v[1] for v in values):.3f} |"
        )
    added_open = [
        v[0] - m[0] for v, m in zip(opened["virtual key"], opened["master key"], strict=True)
    ]
    lines += ["", f"Added p50 at 1,000 req/s, per round: {', '.join(f'{a:+.3f}' for a in added_open)} ms;"
              f" median {statistics.median(added_open):+.3f} ms."]  # fmt: skip
    return lines


def accuracy(instances: int = 3, requests: int = 3000) -> list[str]:
    """Three instances sharing one Redis, hammered at once: what was admitted against each
    limit (RPM, where hot keys borrow chunks; a budget)."""
    import concurrent.futures

    python = sys.executable
    redis, mock, path, procs = _backends()
    data = tempfile.mkdtemp()
    ports = [_free_port() for _ in range(instances)]
    for port in ports:
        procs.append(_start(
            [python, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)], None,
            {"GATEWAY_DATA_DIR": data},
        ))  # fmt: skip
    lines = [
        "| rule | limit | offered | admitted | admitted ÷ limit |",
        "|---|---:|---:|---:|---:|",
    ]
    try:
        _wait(mock)
        for port in ports:
            _wait(port)
        cases = [("rpm_limit", 1000, {"rpm_limit": 1000}), ("rpm_limit", 100, {"rpm_limit": 100}),
                 ("max_budget ($)", 0.005, {"max_budget": 0.005})]  # fmt: skip
        for name, limit, fields in cases:
            key = _admin(ports[0], "/admin/keys", fields)
            time.sleep(1.5)  # every instance has read the new key

            def one(i: int, secret: str = str(key["key"])) -> int:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{ports[i % instances]}/v1/chat/completions",
                    data=BODY.encode(), method="POST",
                    headers={"authorization": f"Bearer {secret}", "content-type": "application/json"},
                )  # fmt: skip
                try:
                    with urllib.request.urlopen(request, timeout=30) as reply:
                        return int(reply.status)
                except urllib.error.HTTPError as err:
                    return int(err.code)

            with concurrent.futures.ThreadPoolExecutor(64) as pool:
                statuses = list(pool.map(one, range(requests)))
            admitted = statuses.count(200)
            if name.startswith("max_budget"):
                time.sleep(0.5)
                with urllib.request.urlopen(
                    urllib.request.Request(
                        f"http://127.0.0.1:{ports[0]}/admin/keys/{key['id']}",
                        headers={"authorization": f"Bearer {MASTER_KEY}"},
                    ),
                    timeout=10,
                ) as reply:
                    spent = json.loads(reply.read())["limits"][0]["budget"]["spent"]
                lines.append(f"| {name} | {limit} | {requests} | ${spent:.6f} ({admitted} requests)"
                             f" | {spent / limit:.3f} |")  # fmt: skip
            else:
                lines.append(
                    f"| {name} | {limit} | {requests} | {admitted} | {admitted / limit:.3f} |"
                )
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        redis.terminate()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--only", choices=("throughput", "accuracy"))
    args = parser.parse_args()
    if args.only in (None, "throughput"):
        print("\n### Governance: a virtual key with RPM + TPM + budget, 32 connections\n")
        print("\n".join(throughput(args.rounds, args.duration)), flush=True)
    if args.only in (None, "accuracy"):
        print("\n### Governance: accuracy, 3 instances sharing one Redis, 64 clients\n")
        print("\n".join(accuracy()), flush=True)


if __name__ == "__main__":
    main()
