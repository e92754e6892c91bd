"""Every feature on, as a production config has them, beside the same gateway passing
through: a virtual key with RPM, TPM and a budget; PII and secrets guardrails on input and
output; metering to SQLite; tracing sampled at 1% (to a local OTLP sink); the exact cache on
its miss path (every request its own body); a fallback route of two targets. Both behind one
fast mock, in interleaved closed-loop rounds; then the added latency at 1,000 req/s, open loop,
against the mock alone. Goals (issue 22): ≥ 0.7× pass-through's throughput, added p50 ≤ 0.4 ms.
With `--peers` (what `make bench-peers` runs), LiteLLM and Portkey join the same rounds,
configured as close to it as they go on this machine (see PEER_NOTES): goals ≥ 100× LiteLLM
and ≥ 10× Portkey for the gateway with every feature on.

    python -m benchmarks.all_features [--rounds 6] [--duration 4] [--peers]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.observability import _Sink  # noqa: E402
from benchmarks.openloop import open_loop  # noqa: E402
from benchmarks.run import MASTER_KEY, QUESTION, RESULTS, _free_port, _start, _wait, wrk  # noqa: E402

PEERS = ROOT / "benchmarks" / ".peers"
LITELLM_KEY = "sk-bench-litellm-master-0123456789abcdef0123456789abcdef"
_PATTERNS = "[{pattern_type: prebuilt, pattern_name: email, action: MASK}, {pattern_type: prebuilt, pattern_name: us_ssn, action: MASK}, {pattern_type: prebuilt, pattern_name: visa, action: MASK}, {pattern_type: prebuilt, pattern_name: aws_access_key, action: BLOCK}, {pattern_type: prebuilt, pattern_name: github_token, action: BLOCK}]"
LITELLM = (
    "model_list:\n"
    '  - model_name: chat\n    litellm_params: {model: openai/gpt-4o-mini, api_base: "{up}/v1", api_key: sk-bench}\n'
    '  - model_name: chat-backup\n    litellm_params: {model: openai/gpt-4o-mini, api_base: "{up}/v1", api_key: sk-bench}\n'
    "router_settings: {fallbacks: [{chat: [chat-backup]}]}\n"
    "litellm_settings: {drop_params: true, cache: true, cache_params: {type: local}{callbacks}}\n"
    "guardrails:\n"
    f"  - {{guardrail_name: pii-in, litellm_params: {{guardrail: litellm_content_filter, mode: pre_call, default_on: true, patterns: {_PATTERNS}}}}}\n"
    f"  - {{guardrail_name: pii-out, litellm_params: {{guardrail: litellm_content_filter, mode: post_call, default_on: true, patterns: {_PATTERNS}}}}}\n"
)
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"
PEER_NOTES = [
    "LiteLLM: a fallback pair of deployments (router fallbacks), its exact cache in memory (every"
    " body its own: the miss path), `litellm_content_filter` masking e-mail, SSN and card numbers and"
    " blocking AWS and GitHub keys on input (pre_call) and output (post_call), OpenTelemetry at 1%"
    " (`callbacks: [otel]`, OTEL_TRACES_SAMPLER=traceidratio) when its packages are installed. Not"
    " configured: the virtual key with limits and budget and the spend ledger, which need its"
    " Prisma-managed database (Prisma fetches its engines at run time, which this machine cannot).",
    "Portkey: `x-portkey-config` with a fallback of two targets, its simple cache, and"
    " `default.regexMatch` on input and output (e-mail; deny). Not available in the open-source"
    " gateway: virtual keys, budgets, rate limits and cost tracking (its hosted product), local"
    " PII detection (its PII checks call external services), tracing.",
]

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


def _lua(key: str, headers: dict[str, str] | None = None) -> Path:
    """Every request its own body (this run's own prefix and a counter), so the cache misses:
    a fresh script per run, since Lua's unseeded random numbers repeat from run to run."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    run = uuid.uuid4().hex
    extra = "".join(f'wrk.headers["{k}"] = [[{v}]]\n' for k, v in (headers or {}).items())
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n' + extra +
        "local n = 0\n"
        "request = function()\n  n = n + 1\n"
        '  local body = \'{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"'
        + QUESTION + f" {run}-' .. n .. '\"}}]}}'\n"
        "  return wrk.format(nil, nil, nil, body)\nend\n"
    )
    return script


def _wrk(port: int, script: Path, duration: int) -> tuple[float, float, float]:
    return wrk(port, "", duration, 32, script=script)


def _peers(up: str, sink: str, work: Path) -> tuple[dict[str, tuple[int, list[str], dict[str, str], Path]], list[str]]:
    """LiteLLM and Portkey in the scenario, where installed (make bench-peers installs them):
    name -> (port, command, env, a wrk script); and notes on what is missing."""
    found: dict[str, tuple[int, list[str], dict[str, str], Path]] = {}
    notes: list[str] = []
    litellm = PEERS / "litellm" / "bin" / "litellm"
    if litellm.exists():
        port = _free_port()
        conf = work / "litellm.yaml"
        otel = (PEERS / "litellm" / "lib").glob("python*/site-packages/opentelemetry/sdk")
        traced = any(True for _ in otel)
        conf.write_text(LITELLM.replace("{up}", up).replace("{callbacks}", ", callbacks: [otel]" if traced else ""))
        env = {"LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY, "OTEL_EXPORTER": "otlp_http",
               "OTEL_ENDPOINT": sink, "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}
        if not traced:
            notes.append("LiteLLM: no OpenTelemetry SDK in its environment, so no tracing.")
        found["LiteLLM proxy (1 worker), closest config"] = (
            port, [str(litellm), "--config", str(conf), "--port", str(port), "--num_workers", "1"], env,
            _lua(LITELLM_KEY))
    else:
        notes.append("LiteLLM: not installed (make bench-peers installs litellm[proxy]).")
    portkey = PEERS / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if portkey.exists() and shutil.which("node"):
        port = _free_port()
        check = {"default.regexMatch": {"rule": _EMAIL, "not": True}, "deny": True}
        target = {"provider": "openai", "custom_host": f"{up}/v1", "api_key": "sk-bench"}
        config = {"strategy": {"mode": "fallback"}, "targets": [target, dict(target)],
                  "cache": {"mode": "simple"}, "input_guardrails": [check], "output_guardrails": [check]}
        found["Portkey gateway, closest config"] = (
            port, ["node", str(portkey), f"--port={port}", "--headless"], {"NODE_ENV": "production"},
            _lua("sk-bench", {"x-portkey-config": json.dumps(config, separators=(",", ":"))}))
    else:
        notes.append("Portkey: not installed (make bench-peers installs @portkey-ai/gateway).")
    return found, notes


def run(rounds: int, duration: int, peers: bool = False) -> list[str]:  # noqa: C901 - the run, then its report
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    sink_url = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
    mock, plain, full = _free_port(), _free_port(), _free_port()
    up = f"http://127.0.0.1:{mock}"
    data = tempfile.mkdtemp(prefix="gateway-all-")
    configs = {
        plain: PASS_THROUGH.replace("{up}", up),
        full: FEATURED.replace("{up}", up).replace("{data}", data).replace("{sink}", sink_url),
    }
    procs = [_start([sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(mock)], "1")]
    for port, text in configs.items():
        path = Path(tempfile.mkstemp(suffix=".yaml")[1])
        path.write_text(text)
        procs.append(_start([sys.executable, "-m", "gateway", "serve", "--config", str(path),
                             "--port", str(port)], "0"))  # fmt: skip
    systems: dict[str, tuple[int, Callable[[], Path]]] = {
        "pass-through": (plain, lambda: _lua(MASTER_KEY)),
        "every feature on": (full, lambda: _lua(VIRTUAL_KEY)),
    }
    notes: list[str] = []
    if peers:
        found, notes = _peers(up, sink_url, Path(data))
        for name, (port, command, env, script) in found.items():
            procs.append(_start(command, "0", env))
            systems[name] = (port, lambda script=script: script)  # type: ignore[misc]
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in systems}
    latency: dict[str, list[float]] = {}
    try:
        _wait(mock)
        for port, _ in systems.values():
            _wait(port, timeout=120)
        for port, script in systems.values():
            _wrk(port, script(), 2)
        names = list(systems)
        for i in range(rounds):  # each round visits every system, starting one further along
            for name in names[i % len(names):] + names[: i % len(names)]:
                port, script = systems[name]
                samples[name].append(_wrk(port, script(), duration))
        bodies = {  # open loop at 1,000 req/s, each request its own body
            "mock alone": (f"http://127.0.0.1:{mock}/v1/chat/completions", MASTER_KEY),
            "pass-through": (f"http://127.0.0.1:{plain}/v1/chat/completions", MASTER_KEY),
            "every feature on": (f"http://127.0.0.1:{full}/v1/chat/completions", VIRTUAL_KEY),
        }
        for label, (url, key) in bodies.items():
            def body(n: int, label: str = label) -> bytes:
                return ('{"model":"chat","max_tokens":64,"messages":[{"role":"user","content":"'
                        f'{QUESTION} open {label} {n}"}}]}}').encode()  # fmt: skip

            found_latency, errors = open_loop(url, 1000, 5.0, body, headers={"authorization": f"Bearer {key}"})
            if errors:
                raise RuntimeError(f"{errors} failed requests at 1,000 req/s on {label}")
            latency[label] = found_latency
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        sink.shutdown()
    lines = ["| system | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for name, got in samples.items():
        rps, p50, p99 = (statistics.median(r[k] for r in got) for k in range(3))
        lines.append(f"| {'gateway (compiled), ' if name in ('pass-through', 'every feature on') else ''}{name}"
                     f" | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")  # fmt: skip
    full_rps = samples["every feature on"]
    ratios = [a[0] / b[0] for a, b in zip(full_rps, samples["pass-through"], strict=True)]
    for name in [n for n in samples if n not in ("pass-through", "every feature on")]:
        times = [a[0] / b[0] for a, b in zip(full_rps, samples[name], strict=True)]
        goal = 100 if name.startswith("LiteLLM") else 10
        lines.append(f"\nevery feature on ÷ {name}: {statistics.median(times):.1f}× (per-round range"
                     f" {min(times):.1f}-{max(times):.1f}; goal ≥ {goal}×)")  # fmt: skip
    lines += [*(f"\n- {note}" for note in notes)]
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
    parser.add_argument("--peers", action="store_true", help="LiteLLM and Portkey in the same rounds")
    args = parser.parse_args()
    lines = run(args.rounds, args.duration, args.peers)
    if args.peers:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "all_features_peers.md").write_text("\n".join([*lines, *PEER_NOTES]) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
