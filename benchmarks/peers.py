"""The gateway side by side with its peers, behind the same mock, pinned the same way:
nginx as a reverse proxy (the compiled limit), the LiteLLM proxy, the Portkey gateway, and the
minimal aiohttp pass-through. `make bench-peers` installs the peers into benchmarks/.peers/;
a peer that is not installed is skipped, with a note in the report.

    make bench-peers          # or: python -m benchmarks.peers --duration 8
Writes benchmarks/results/peers.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.run import BODY, QUESTION, RESULTS, ROOT, _free_port, _start, _wait, wrk

PEERS = ROOT / "benchmarks" / ".peers"
NGINX = """
worker_processes 1; daemon off; pid {dir}/nginx.pid; error_log stderr error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}; proxy_temp_path {dir}; fastcgi_temp_path {dir};
  uwsgi_temp_path {dir}; scgi_temp_path {dir};
  upstream mock {{ server 127.0.0.1:{mock}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
"""
LITELLM = """
model_list:
  - model_name: gpt-4o-mini
    litellm_params: {{model: openai/gpt-4o-mini, api_base: "http://127.0.0.1:{mock}/v1", api_key: sk-bench}}
litellm_settings: {{drop_params: true}}
"""


LITELLM_KEY = "sk-bench-litellm-master-0123456789abcdef0123456789abcdef"


def _systems(mock: int, python: str) -> tuple[dict[str, tuple[int, list[str], dict[str, str], dict[str, str]]], list[str]]:
    """name -> (port, command, env, request headers); and notes on peers that are missing."""
    systems: dict[str, tuple[int, list[str], dict[str, str], dict[str, str]]] = {}
    notes: list[str] = []
    upstream = f"http://127.0.0.1:{mock}/v1"
    work = Path(tempfile.mkdtemp(prefix="gateway-peers-"))
    port = _free_port()
    systems["gateway (compiled)"] = (port, [python, "-m", "gateway", "serve", "--port", str(port)],
                                    {"OPENAI_API_KEY": "sk-bench", "OPENAI_BASE_URL": upstream}, {})
    port = _free_port()
    systems["aiohttp pass-through (reference)"] = (port, [python, "-m", "benchmarks.reference_passthrough", "--port", str(port),
                                                          "--upstream", f"http://127.0.0.1:{mock}"], {}, {})
    nginx = shutil.which("nginx")
    if nginx:
        port = _free_port()
        conf = work / "nginx.conf"
        conf.write_text(NGINX.format(dir=work, mock=mock, port=port))
        systems["nginx reverse proxy"] = (port, [nginx, "-c", str(conf), "-p", str(work)], {}, {})
    else:
        notes.append("nginx: not installed (apt-get install nginx).")
    litellm = PEERS / "litellm" / "bin" / "litellm"
    if litellm.exists():
        port = _free_port()
        conf = work / "litellm.yaml"
        conf.write_text(LITELLM.format(mock=mock))
        systems["LiteLLM proxy (1 worker)"] = (port, [str(litellm), "--config", str(conf), "--port", str(port), "--num_workers", "1"],
                                               {"LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY},
                                               {"Authorization": f"Bearer {LITELLM_KEY}"})
    else:
        notes.append("LiteLLM: not installed (make bench-peers installs litellm[proxy]).")
    portkey = PEERS / "portkey" / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if portkey.exists() and shutil.which("node"):
        port = _free_port()
        systems["Portkey gateway"] = (port, ["node", str(portkey), f"--port={port}", "--headless"], {"NODE_ENV": "production"},
                                      {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream, "Authorization": "Bearer sk-bench"})
    else:
        notes.append("Portkey: not installed (make bench-peers installs @portkey-ai/gateway).")
    return systems, notes  # fmt: skip


def _measure(  # noqa: PLR0913 - one system, started, loaded and stopped
    name: str,
    port: int,
    command: list[str],
    env: dict[str, str],
    headers: dict[str, str],
    args: argparse.Namespace,
    notes: list[str],
) -> tuple[float, float, float] | None:
    process = _start(command, 0, env)
    try:
        _wait(port, timeout=90)
        time.sleep(1.0)
        body = BODY % ("gpt-4o-mini", QUESTION, "")
        wrk(port, body, 2, args.connections, headers)  # warm-up
        rps, p50, p99 = wrk(port, body, args.duration, args.connections, headers)
        print(f"{name:34} {rps:9.0f} req/s  p50 {p50:7.2f} ms  p99 {p99:7.2f} ms", flush=True)
        return rps, p50, p99
    except (RuntimeError, subprocess.CalledProcessError) as err:
        notes.append(f"{name}: failed to run ({str(err).splitlines()[0][:200]}).")
        return None
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="medians of this many visits")
    args = parser.parse_args()
    python = sys.executable
    mock = _free_port()
    mock_process = _start([python, "-m", "benchmarks.fast_upstream", "--port", str(mock)], 1)
    systems, notes = _systems(mock, python)
    runs: dict[str, list[tuple[float, float, float]]] = {}
    try:
        _wait(mock)
        for _round in range(args.rounds):  # each round visits every system in turn
            for name, (port, command, env, headers) in systems.items():
                measured = _measure(name, port, command, env, headers, args, notes)
                if measured is not None:
                    runs.setdefault(name, []).append(measured)
    finally:
        mock_process.send_signal(signal.SIGTERM)
        mock_process.wait(20)
    rows = [
        (name, *(statistics.median(r[i] for r in results) for i in range(3)))
        for name, results in runs.items()
    ]
    gateway = next((rps for name, rps, *_ in rows if name.startswith("gateway")), None)
    lines = [
        f"`python -m benchmarks.peers --duration {args.duration} --connections {args.connections} "
        f"--rounds {args.rounds}`, {os.cpu_count()} cores; each system alone on core 0, wrk and the "
        f"mock on core 1; non-stream; medians of {args.rounds} rounds, each visiting every system in turn.",
        "",
        "| system | req/s | gateway is × this | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, rps, p50, p99 in rows:
        ratio = f"{gateway / rps:.2f}" if gateway else "–"
        lines.append(f"| {name} | {rps:,.0f} | {ratio} | {p50:.2f} | {p99:.2f} |")
    lines += ["", *[f"- {note}" for note in notes]]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "peers.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
