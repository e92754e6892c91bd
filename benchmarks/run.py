"""Side-by-side throughput and latency: mock direct, the aiohttp reference, and the gateway
(compiled and pure-Python), each pinned to core 0 while wrk and the mock share core 1.

    make bench                       # or: python -m benchmarks.run --duration 10
Writes benchmarks/results/latest.md (and latest.png when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MASTER_KEY = "gw-bench-master-key"
BODY = (
    '{"model":"%s","messages":[{"role":"system","content":"You are a helpful assistant."},'
    '{"role":"user","content":"%s"}],"temperature":0.7%s}'
)
QUESTION = "Hello! Tell me a short joke about gateways."
# The semantic scenario: one question answered once, then asked in other words; each of these
# is checked to be a SEMANTIC_HIT before the run (exact hits would flatter the figure).
SEED = "What is the capital of France?"
PARAPHRASES = (
    "what is the capital of France",
    "What's the capital of France?",
    "What is the capital city of France?",
    "Tell me the capital of France.",
    "capital of France?",
    "What is France's capital?",
)
CONFIG = """
server: {{master_key: {key}}}
providers:
  openai: {{type: openai-compatible, api_key: sk-bench, base_url: "{up}/v1"}}
  anthropic: {{type: anthropic, api_key: sk-ant-bench, base_url: "{up}"}}
models:
  - name: gpt-4o-mini
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: claude-bench
    targets: [{{provider: anthropic, model: claude-bench}}]
  - name: cached
    cache: {{mode: simple}}
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: semantic
    cache: {{mode: semantic}}
    targets: [{{provider: openai, model: gpt-4o-mini}}]
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str
    stream: bool = False
    reference: bool = False  # the aiohttp reference runs it too
    pure: bool = True  # the pure-Python build runs it too
    questions: tuple[str, ...] = (QUESTION,)

    def bodies(self) -> list[str]:
        extra = ',"stream":true' if self.stream else ""
        return [BODY % (self.model, q, extra) for q in self.questions]


SCENARIOS = (
    Scenario("non-stream", "gpt-4o-mini", reference=True),
    Scenario("stream (20 chunks)", "gpt-4o-mini", stream=True),
    Scenario("OpenAI -> Anthropic, non-stream", "claude-bench"),
    Scenario("OpenAI -> Anthropic, stream (20 chunks)", "claude-bench", stream=True),
    Scenario("exact-cache hit", "cached", pure=False),
    Scenario("semantic-cache hit", "semantic", pure=False, questions=PARAPHRASES),
)


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
    """Until something listens on the port and, if it is a gateway, has warmed up (it listens
    at once and answers 503 "warming" until its parts are up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            listening = sock.connect_ex(("127.0.0.1", port)) == 0
        if listening and not _warming(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing ready on {port}")


def _warming(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2):
            return False
    except urllib.error.HTTPError as err:
        return err.code == 503 and b"warming" in err.read()
    except OSError:
        return False


def _start(command: list[str], core: int | str | None, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Starts a system. A gateway's log (its access log included, as `make run` writes it)
    goes into a pipe that a reader drains, as journald or a log shipper would read it: never
    /dev/null, whose writes cost less than any real log's."""
    pin = ["taskset", "-c", str(core)] if core is not None else []
    log: Any = subprocess.DEVNULL
    if "gateway" in command:
        reader = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        log = reader.stdin
    # The usage ledger goes where make run puts it (./data), but in a directory of its own.
    data = {"GATEWAY_DATA_DIR": tempfile.mkdtemp(prefix="gateway-bench-data-")}
    process = subprocess.Popen(
        [*pin, *command], cwd=ROOT, env={**os.environ, **data, **(env or {})},
        stdout=log, stderr=log,
    )  # fmt: skip
    if log is not subprocess.DEVNULL:
        log.close()  # the gateway holds the pipe now; the reader ends when the gateway does
    return process


def _ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s+{percentile}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return float("nan")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


def wrk(  # noqa: PLR0913 - the target and the load's shape
    port: int,
    body: str | list[str],
    duration: int,
    connections: int,
    headers: dict[str, str] | None = None,
    path: str = "/v1/chat/completions",
    threads: int = 1,
    core: str | None = "1",
    script: Path | None = None,
) -> tuple[float, float, float]:
    """Closed-loop load; several bodies are sent in turn (wrk's `request` hook), unless
    `script` (the caller's own Lua) makes the requests."""
    if script is None:
        script = _bodies_script(body, headers)
    pin = ["taskset", "-c", core] if core else []
    out = subprocess.run(
        [*pin, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", str(script), f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    if "Non-2xx" in out:
        raise RuntimeError(f"errors while benchmarking port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    return rps, _ms(out, "50"), _ms(out, "99")


def _bodies_script(body: str | list[str], headers: dict[str, str] | None) -> Path:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    bodies = [body] if isinstance(body, str) else body
    extra = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in (headers or {}).items())
    lua = ",".join(f"[[{b}]]" for b in bodies)
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"{extra}wrk.body = [[{bodies[0]}]]\n"
        + (
            f"local bodies = {{{lua}}}\nlocal i = 0\n"
            "request = function()\n  i = i % #bodies + 1\n"
            "  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
            if len(bodies) > 1
            else ""
        )
    )
    return script


# The side-by-side benchmarks' gateway: one model behind the mock (side_by_side fills in
# `{up}`), to which each system adds its own YAML; and their short chat body.
ONE_MODEL = (
    f"server: {{master_key: {MASTER_KEY}}}\n"
    "providers:\n"
    '  openai: {type: openai-compatible, api_key: sk-bench, base_url: "{up}/v1"}\n'
    "models:\n"
    "  - name: gpt-4o-mini\n"
    "    targets: [{provider: openai, model: gpt-4o-mini}]\n"
)
SHORT_BODY = f'{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"{QUESTION}"}}],"user":"u1"}}'


def print_sections(sections: list[tuple[str, Callable[[], list[str]]]], only: str | None) -> None:
    """Runs each section (all, or those whose title holds `only`), printing it as Markdown."""
    for title, section in sections:
        if only and only.lower() not in title.lower():
            continue
        lines = section()
        print(f"\n### {title}\n", flush=True)
        print("\n".join(lines), flush=True)


def side_by_side(
    configs: dict[str, str], body: str, rounds: int, duration: int, connections: int = 32
) -> dict[str, list[tuple[float, float, float]]]:
    """One gateway per config (YAML with `{up}` for the mock's URL) behind one fast mock, as
    `make run` starts it, pinned to core 0; closed-loop rounds in which the systems take turns,
    the order reversed every other round. (req/s, p50 ms, p99 ms) per round per system."""
    python = sys.executable
    mock = _free_port()
    procs = [_start([python, "-m", "benchmarks.fast_upstream", "--port", str(mock)], "1")]
    ports = {}
    for label, text in configs.items():
        path = Path(tempfile.mkstemp(suffix=".yaml")[1])
        path.write_text(text.replace("{up}", f"http://127.0.0.1:{mock}"))
        port = _free_port()
        procs.append(_start([python, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)], "0"))
        ports[label] = port
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in ports}
    try:
        _wait(mock)
        for port in ports.values():
            _wait(port)
            wrk(port, body, 2, connections, auth)
        for i in range(rounds):
            order = list(ports.items())
            for label, port in order if i % 2 == 0 else reversed(order):
                samples[label].append(wrk(port, body, duration, connections, auth))
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
    return samples


def _post(port: int, body: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    """One request; returns the response headers (lower-cased)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions", data=body.encode(), method="POST",
        headers={"content-type": "application/json", "authorization": f"Bearer {MASTER_KEY}", **(headers or {})},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()
        return {k.lower(): v for k, v in response.headers.items()}


def _prepare_semantic(port: int) -> tuple[str, ...]:
    """Answers the seed once, then keeps the paraphrases that are semantic hits (asked with
    no-store, so that a miss does not become an exact entry and flatter the run)."""
    _post(port, BODY % ("semantic", SEED, ""))
    hits = []
    for question in PARAPHRASES:
        got = _post(port, BODY % ("semantic", question, ""), {"x-gateway-cache": "no-store"})
        if got.get("x-gateway-cache") == "SEMANTIC_HIT":
            hits.append(question)
        else:
            print(f"not a semantic hit, left out: {question!r}", file=sys.stderr)
    if len(hits) < 3:
        raise RuntimeError("fewer than 3 paraphrases are semantic hits; the scenario would be moot")
    return tuple(hits)


def _median(rounds: list[Result]) -> Result:
    first = rounds[0]
    return Result(
        first.system, first.scenario,
        statistics.median(r.rps for r in rounds),
        statistics.median(r.p50_ms for r in rounds),
        statistics.median(r.p99_ms for r in rounds),
    )  # fmt: skip


def _scenarios(paraphrases: tuple[str, ...]) -> list[Scenario]:
    return [
        dataclasses.replace(s, questions=paraphrases) if s.model == "semantic" else s
        for s in SCENARIOS
    ]


QUIET = "gateway (compiled), access log off"


def _runs(scenario: Scenario, system: str) -> bool:
    if system == QUIET:
        return scenario.reference  # what the access log costs, on the plain relay
    if system.startswith("aiohttp"):
        return scenario.reference  # the reference relays whole OpenAI bodies only
    if system.startswith("mock"):
        return scenario.model == "gpt-4o-mini"
    return scenario.pure or system != "gateway (pure Python)"


def _config(upstream: str) -> str:
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(CONFIG.format(key=MASTER_KEY, up=upstream))
    return str(path)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2, help="for the N-worker run; 0 skips it")
    parser.add_argument("--rounds", type=int, default=3, help="runs per system and scenario")
    return parser.parse_args()


Systems = dict[str, tuple[int, list[str], "str | None", dict[str, str]]]


def _systems(args: argparse.Namespace, mock_port: int) -> Systems:
    """name -> (port, command, the core it is pinned to or None, environment)."""
    python = sys.executable
    ref_port, gw_port, quiet_port, pure_port, multi_port = (_free_port() for _ in range(5))
    upstream = f"http://127.0.0.1:{mock_port}"
    config = _config(upstream)
    # Every gateway runs as `make run` starts it (INFO level, access log on), except the one
    # that measures what the access log costs.
    quiet = {"GATEWAY_LOG_LEVEL": "warning"}
    serve = [python, "-m", "gateway", "serve", "--config", config]
    systems: Systems = {
        "mock upstream (direct)": (mock_port, [python, "-m", "benchmarks.fast_upstream", "--port", str(mock_port)], "1", {}),
        "aiohttp pass-through (reference)": (ref_port, [python, "-m", "benchmarks.reference_passthrough", "--port", str(ref_port), "--upstream", upstream], "0", {}),
        "gateway (compiled)": (gw_port, [*serve, "--port", str(gw_port)], "0", {}),
        QUIET: (quiet_port, [*serve, "--port", str(quiet_port)], "0", quiet),
        "gateway (pure Python)": (pure_port, [*serve, "--port", str(pure_port)], "0", {"GATEWAY_NO_EXTENSIONS": "1"}),
    }  # fmt: skip
    if args.workers > 1:
        name = f"gateway (compiled), {args.workers} workers, unpinned"
        systems[name] = (multi_port, [*serve, "--port", str(multi_port), "--workers", str(args.workers)], None, {})  # fmt: skip
    return systems


def main() -> int:  # noqa: C901 - one loop per kind of run, kept in one place
    args = _arguments()
    if shutil.which("wrk") is None:
        print("wrk is required: apt-get install wrk", file=sys.stderr)
        return 2
    mock_port = _free_port()
    systems = _systems(args, mock_port)
    gw_port = systems["gateway (compiled)"][0]
    processes = [_start(cmd, core, env) for _, cmd, core, env in systems.values()]
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    runs: dict[tuple[str, str], list[Result]] = {}

    def measure(scenario: Scenario, name: str, port: int, **load: object) -> None:
        """The median of `--rounds` runs; the rounds of one scenario take turns between the
        systems, so a slow minute of a shared machine hits all of them alike."""
        headers = auth if name.startswith("gateway") else None
        rps, p50, p99 = wrk(port, scenario.bodies(), args.duration, args.connections, headers, **load)  # type: ignore[arg-type]  # fmt: skip
        runs.setdefault((scenario.name, name), []).append(Result(name, scenario.name, rps, p50, p99))
        print(f"{scenario.name:40} {name:44} {rps:9.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")

    try:
        for port, *_ in systems.values():
            _wait(port)
        paraphrases = _prepare_semantic(gw_port)
        for scenario in _scenarios(paraphrases):
            ports = {name: s[0] for name, s in systems.items() if s[2] is not None and _runs(scenario, name)}
            for port in ports.values():  # warm-up, only where the scenario runs
                wrk(port, scenario.bodies(), 1, args.connections, auth)
            for _round in range(args.rounds):
                for name, port in ports.items():
                    measure(scenario, name, port)
        for name, (port, _cmd, core, _env) in systems.items():
            if core is None:  # wrk gets both cores and two threads too: all share the machine
                wrk(port, SCENARIOS[0].bodies(), 1, args.connections, auth, threads=2, core=None)
                measure(SCENARIOS[0], name, port, threads=2, core=None)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(20)
    results = [_median(rounds) for rounds in runs.values()]
    write_report(results, args)
    return 0


def write_report(results: list[Result], args: argparse.Namespace, out: Path = RESULTS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    reference = {r.scenario: r.rps for r in results if r.system.startswith("aiohttp")}
    lines = [
        f"`python -m benchmarks.run --duration {args.duration} --connections {args.connections} "
        f"--rounds {args.rounds}`, {os.cpu_count()} cores, closed loop (wrk, {args.connections} "
        f"keep-alive connections); medians of {args.rounds} rounds that take turns between systems.",
        "",
        "| scenario | system | req/s | × reference | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r.rps / reference[r.scenario]:.2f}" if r.scenario in reference else "–"
        lines.append(f"| {r.scenario} | {r.system} | {r.rps:,.0f} | {ratio} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |")
    (out / "latest.md").write_text("\n".join(lines) + "\n")
    plt = pyplot()
    if plt is None:
        return
    fig, (rate, latency) = plt.subplots(
        1, 2, figsize=(13, 0.45 * len(results) + 1.5), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    labels = [f"{r.scenario} | {r.system}" for r in results]
    rate.barh(labels, [r.rps for r in results], color="#4a7bd0")
    rate.set_xlabel("requests/s (higher is better)")
    rate.invert_yaxis()
    rate.tick_params(axis="y", labelsize=7)
    percentile_bars(latency, [r.p50_ms for r in results], [r.p99_ms for r in results], "")
    latency.set_xlabel("latency ms, closed loop (lower is better)")
    latency.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "latest.png", dpi=110)
    plt.close(fig)


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files only, or None without the bench extra installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def percentile_bars(axis: Any, p50: list[float], p99: list[float], prefix: str) -> None:
    """A p50 bar and a p99 bar side by side on each row of a horizontal bar chart."""
    rows = range(len(p50))
    axis.barh([y - 0.2 for y in rows], p50, height=0.4, label=f"{prefix}p50", color="#6aa84f")
    axis.barh([y + 0.2 for y in rows], p99, height=0.4, label=f"{prefix}p99", color="#cc4125")


if __name__ == "__main__":
    raise SystemExit(main())
