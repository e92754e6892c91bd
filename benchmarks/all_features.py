"""Every feature on, as a production config has them, beside the same gateway passing
through: a virtual key with RPM, TPM and a budget; PII and secrets guardrails on input and
output; metering to SQLite; tracing sampled at 1% (to a local OTLP sink); the exact cache on
its miss path (every request its own body); a fallback route of two targets. Both behind one
fast mock, in interleaved closed-loop rounds; then the added latency at 1,000 req/s, open loop,
against the mock alone. Goals (issue 22): ≥ 0.7× pass-through's throughput, added p50 ≤ 0.4 ms.
(LiteLLM and Portkey in the same scenario: `make bench-peers`, not here.)

    python -m benchmarks.all_features [--rounds 6] [--duration 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import uuid
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.observability import _Sink  # noqa: E402
from benchmarks.openloop import open_loop  # noqa: E402
from benchmarks.run import MASTER_KEY, QUESTION, _free_port, _start, _wait, wrk  # noqa: E402

VIRTUAL_KEY = "sk-gw-bench-all-features-key-000000000001"
PASS_THROUGH = (
    f"server: {{master_key: {MASTER_KEY}}}\n"
    "providers:\n"
    '  openai: {type: openai-compatible, api_key: sk-bench, base_url: "{up}/v1"}\n'
    "usage: {enabled: false}\n"
    "models:\n"
    "  - name: chat\n"
    "    targets: [{provider: openai, model: gpt-4o-mini}]\n"
)
FEATURED = (
    f"server: {{master_key: {MASTER_KEY}}}\n"
    "providers:\n"
    '  openai: {type: openai-compatible, api_key: sk-bench, base_url: "{up}/v1"}\n'
    '  backup: {type: openai-compatible, api_key: sk-bench, base_url: "{up}/v1"}\n'
    "pricing: {openai/gpt-4o-mini: {input: 0.15, output: 0.6}, backup/gpt-4o-mini: {input: 0.15, output: 0.6}}\n"
    "usage: {store: \"sqlite:///{data}/usage.db\"}\n"
    "cache: {mode: simple}\n"
    "tracing: {enabled: true, endpoint: \"{sink}\", sample_ratio: 0.01}\n"
    "guardrails:\n"
    "  policies:\n"
    "    pii: {kinds: [email, phone, credit_card, iban, us_ssn, aws_access_key, github_token,"
    " openai_key, private_key], direction: both}\n"
    "  attach: [pii]\n"
    "governance:\n"
    "  keys:\n"
    f"    - {{id: app, key: {VIRTUAL_KEY}, rpm_limit: 100000000, tpm_limit: 100000000000,"
    " max_budget: 1000000, budget_duration: 1mo}\n"
    "models:\n"
    "  - name: chat\n"
    "    strategy: {mode: fallback}\n"
    "    targets: [{provider: openai, model: gpt-4o-mini}, {provider: backup, model: gpt-4o-mini}]\n"
)


def _lua(key: str) -> Path:
    """Every request its own body (this run's own prefix and a counter), so the cache misses:
    a fresh script per run, since Lua's unseeded random numbers repeat from run to run."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    run = uuid.uuid4().hex
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
        "local n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  local body = \'{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"'
        + QUESTION + f" {run}-' .. n .. '\"}}]}}'\n"
        "  return wrk.format(nil, nil, nil, body)\nend\n"
    )
    return script


def _wrk(port: int, script: Path, duration: int) -> tuple[float, float, float]:
    return wrk(port, "", duration, 32, script=script)


def run(rounds: int, duration: int) -> list[str]:
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    mock, plain, full = _free_port(), _free_port(), _free_port()
    up = f"http://127.0.0.1:{mock}"
    data = tempfile.mkdtemp(prefix="gateway-all-")
    configs = {
        plain: PASS_THROUGH.replace("{up}", up),
        full: FEATURED.replace("{up}", up).replace("{data}", data)
        .replace("{sink}", f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"),
    }
    procs = [_start([sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(mock)], "1")]
    for port, text in configs.items():
        path = Path(tempfile.mkstemp(suffix=".yaml")[1])
        path.write_text(text)
        procs.append(_start([sys.executable, "-m", "gateway", "serve", "--config", str(path),
                             "--port", str(port)], "0"))  # fmt: skip
    keys = {plain: MASTER_KEY, full: VIRTUAL_KEY}
    labels = {plain: "pass-through", full: "every feature on"}
    samples: dict[int, list[tuple[float, float, float]]] = {plain: [], full: []}
    latency: dict[str, list[float]] = {}
    try:
        for port in (mock, plain, full):
            _wait(port)
        for port in (plain, full):
            _wrk(port, _lua(keys[port]), 2)
        for i in range(rounds):
            for port in (plain, full) if i % 2 == 0 else (full, plain):
                samples[port].append(_wrk(port, _lua(keys[port]), duration))
        bodies = {  # open loop at 1,000 req/s, each request its own body
            "mock alone": (f"http://127.0.0.1:{mock}/v1/chat/completions", MASTER_KEY),
            "pass-through": (f"http://127.0.0.1:{plain}/v1/chat/completions", MASTER_KEY),
            "every feature on": (f"http://127.0.0.1:{full}/v1/chat/completions", VIRTUAL_KEY),
        }
        for label, (url, key) in bodies.items():
            def body(n: int, label: str = label) -> bytes:
                return ('{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"'
                        f'{QUESTION} open {label} {n}"}}]}}').encode()  # fmt: skip

            found, errors = open_loop(url, 1000, 5.0, body, headers={"authorization": f"Bearer {key}"})
            if errors:
                raise RuntimeError(f"{errors} failed requests at 1,000 req/s on {label}")
            latency[label] = found
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        sink.shutdown()
    lines = ["| gateway (compiled) | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for port, got in samples.items():
        rps, p50, p99 = (statistics.median(r[k] for r in got) for k in range(3))
        lines.append(f"| {labels[port]} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    ratios = [a[0] / b[0] for a, b in zip(samples[full], samples[plain], strict=True)]
    lines += ["", f"every feature on ÷ pass-through: median of per-round ratios {statistics.median(ratios):.3f}"
              f" (range {min(ratios):.3f}-{max(ratios):.3f}; goal ≥ 0.7)", "",
              "| at 1,000 req/s, open loop | p50 ms | p99 ms | added p50 ms |", "|---|---:|---:|---:|"]  # fmt: skip
    base = statistics.median(latency["mock alone"]) * 1000
    for label, found in latency.items():
        p50 = statistics.median(found) * 1000
        p99 = found[int(len(found) * 0.99) - 1] * 1000
        lines.append(f"| {label} | {p50:.3f} | {p99:.3f} | {p50 - base:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4)
    args = parser.parse_args()
    print("\n".join(run(args.rounds, args.duration)))


if __name__ == "__main__":
    main()
