"""Instructions per request, counted by callgrind: what a feature costs, without the noise.

This machine's speed swings by ±20% from one run to the next, so a few per cent of throughput
cannot be told apart by timing. `valgrind --tool=callgrind` counts the instructions the
gateway executes (every thread: the event loop, the access log's and the ledger's writers),
which repeat within about 1% whatever else the machine does. Each system is a gateway started
as `make run` starts it (its log into a drained pipe), under callgrind with counting off while
it starts and warms up; then counting is switched on for `--requests` sequential keep-alive
requests and off again.

    python -m benchmarks.instructions [--requests 2000] [--only access-log]

Under callgrind a gateway serves ~80 requests a second, so its batches are small (the access
log writes ~4 lines a batch, the ledger ~40 rows): what is counted per batch weighs more here
than at full load, where a batch holds hundreds or thousands. The figures are an upper bound
on what a batched feature costs a request. Needs valgrind (Debian's package), and the semantic
cache off: hnswlib is built for the CPU it runs on, which valgrind cannot emulate.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.observability import _Sink  # noqa: E402
from benchmarks.run import MASTER_KEY, ONE_MODEL, QUESTION, _free_port, _start, _wait  # noqa: E402

PRICED = ONE_MODEL + "pricing:\n  openai/gpt-4o-mini: {input: 0.15, output: 0.6}\n"
# Each comparison: {system: (extra config, the virtual key to make and send, or None for the
# master key)}; the first system is the base.
LIMITED = {"rpm_limit": 100_000_000, "tpm_limit": 10_000_000_000, "max_budget": 1_000_000,
           "budget_duration": "1mo"}  # fmt: skip
COMPARISONS: dict[str, dict[str, tuple[str, dict[str, object] | None]]] = {
    "access-log": {"access log on (the default)": ("", None),
                   "access log off": ("server: {access_log: false}\n", None)},
    "ledger": {"usage ledger on (the default)": ("", None),
               "usage ledger off": ("usage: {enabled: false}\n", None)},
    "virtual-key": {"master key": ("", None), "virtual key, no limits": ("", {}),
                    "virtual key, RPM, TPM and a budget": ("", LIMITED)},
    "tracing": {"tracing off": ("", None),
                "tracing, 100% sampled": (
                    'tracing: {enabled: true, endpoint: "{sink}", sample_ratio: 1.0}\n', None)},
}  # fmt: skip
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": QUESTION}]})


def _merged(extra: str) -> str:
    """ONE_MODEL with the extra lines; a `server:` line merges into ONE_MODEL's own."""
    if extra.startswith("server: {"):
        inner = extra.removeprefix("server: {").rstrip().removesuffix("}")
        return PRICED.replace("server: {", "server: {" + inner + ", ", 1)
    return PRICED + extra


def _key(port: int, body: dict[str, object]) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json", "authorization": f"Bearer {MASTER_KEY}"}
    conn.request("POST", "/admin/keys", json.dumps(body), headers)
    answer = conn.getresponse()
    made = json.loads(answer.read())
    conn.close()
    return str(made["key"])


def _load(port: int, count: int, key: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    for _ in range(count):
        conn.request("POST", "/v1/chat/completions", BODY, headers)
        answer = conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"the gateway answered {answer.status}")
    conn.close()


def count(
    config: str, mock: int, requests: int, key: dict[str, object] | None, keep: Path | None
) -> int:
    """Instructions the gateway executed for `requests` requests, all threads; `keep`: where
    to leave callgrind's profile (for callgrind_annotate)."""
    work = Path(tempfile.mkdtemp(prefix="gateway-callgrind-"))
    path = work / "config.yaml"
    path.write_text(config.replace("{up}", f"http://127.0.0.1:{mock}"))
    out = work / "callgrind.out"
    port = _free_port()
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port),
    ]  # fmt: skip
    process = _start(command, None, {"PYTHONHASHSEED": "0"})
    try:
        _wait(port, timeout=300)
        bearer = MASTER_KEY if key is None else _key(port, key)
        _load(port, 300, bearer)
        time.sleep(1)
        subprocess.run(["callgrind_control", "-i", "on", str(process.pid)], check=True, capture_output=True)
        _load(port, requests, bearer)
        time.sleep(0.2)  # the batches of the last requests
        subprocess.run(["callgrind_control", "-i", "off", str(process.pid)], check=True, capture_output=True)
    finally:
        process.terminate()
        process.wait(120)
    found = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
    if keep is not None:
        shutil.copy(out, keep)
    shutil.rmtree(work, ignore_errors=True)
    if found is None:
        raise RuntimeError("callgrind wrote no totals")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each system")
    parser.add_argument("--only", choices=sorted(COMPARISONS))
    parser.add_argument("--keep", type=Path, help="a directory for callgrind's profiles")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("needs valgrind: apt-get install valgrind")
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    receiver = f"http://127.0.0.1:{sink.server_address[1]}/v1/traces"
    mock = _free_port()
    upstream = _start([sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(mock)], None)
    try:
        _wait(mock)
        for name, systems in COMPARISONS.items():
            if args.only and name != args.only:
                continue
            counts: dict[str, list[int]] = {label: [] for label in systems}
            for _ in range(args.repeats):
                for label, (extra, key) in systems.items():
                    keep = None
                    if args.keep is not None:
                        args.keep.mkdir(parents=True, exist_ok=True)
                        keep = args.keep / f"{re.sub(r'[^a-z0-9]+', '-', label.lower())}.out"
                    config = _merged(extra).replace("{sink}", receiver)
                    counts[label].append(count(config, mock, args.requests, key, keep))
            base = min(counts[next(iter(systems))])
            print(f"\n### {name}: instructions per request ({args.requests} requests)\n")
            print("| system | instructions / request (each run) | ÷ the first |\n|---|---:|---:|")
            for label, runs in counts.items():
                each = ", ".join(f"{r / args.requests:,.0f}" for r in runs)
                print(f"| {label} | {each} | {min(runs) / base:.3f} |")
    finally:
        upstream.terminate()
        upstream.wait(20)
        sink.shutdown()


if __name__ == "__main__":
    main()
