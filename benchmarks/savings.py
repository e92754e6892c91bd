"""The savings claim, measured: the committed workload (benchmarks/data/savings_workload.json)
replayed through the gateway against a mock OpenAI priced from the shipped catalog, four
ways: everything sent to the frontier model (gpt-4o), the semantic cache alone, complexity
routing alone (simple requests to gpt-4o-mini), and both. For each: the total cost the gateway
metered (x-gateway-cost), cache hits, complex requests sent to the cheap model (misroutes),
simple ones sent to the frontier model, and cached answers served for a different question
(the workload's `qid` labels: the mock answers each prompt with its own text, so a served
answer names the question it was made for).

    python -m benchmarks.savings [--out benchmarks/results/savings.md]

Also: the cost of one routing decision (cheapest, complexity, semantic with the local
embedder), compiled and pure-Python, measured in-process (`--decisions`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import MASTER_KEY, _free_port, _start, _wait  # noqa: E402

WORKLOAD = ROOT / "benchmarks" / "data" / "savings_workload.json"
FRONTIER, CHEAP = "gpt-4o", "gpt-4o-mini"
RUNS = {
    "frontier only": ("{mode: off}", False),
    "cache": ("{mode: semantic}", False),
    "routing": ("{mode: off}", True),
    "cache + routing": ("{mode: semantic}", True),
}


def _config(upstream: str, cache: str, routed: bool) -> str:
    targets = (
        "    strategy: {mode: complexity, tiers: [{below: 0.35, target: cheap}, {target: frontier}]}\n"
        f"    targets: [{{name: cheap, provider: openai, model: {CHEAP}}},"
        f" {{name: frontier, provider: openai, model: {FRONTIER}}}]\n"
        if routed
        else f"    targets: [{{provider: openai, model: {FRONTIER}}}]\n"
    )
    return (
        f"server: {{master_key: {MASTER_KEY}}}\n"
        f"providers: {{openai: {{api_key: sk-bench, base_url: \"{upstream}/v1\"}}}}\n"
        f"cache: {cache}\nusage: {{enabled: false}}\n"
        "models:\n  - name: assistant\n" + targets
    )


def _mock(port: int) -> None:
    """OpenAI's chat format; the answer repeats the question, the usage grows with it (a
    longer, harder request gets a longer answer, whichever model answers)."""

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        prompt = body["messages"][-1]["content"]
        prompt_tokens = 12 + math.ceil(len(prompt) / 4)
        completion_tokens = min(900, 30 + len(prompt) * 2)
        return web.json_response({
            "id": "chatcmpl-savings", "object": "chat.completion", "created": 0,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"Answer to: {prompt}"}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })  # fmt: skip

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    threading.Thread(target=lambda: asyncio.run(serve()), daemon=True).start()


def replay(upstream: str, cache: str, routed: bool, requests: list[dict[str, Any]]) -> dict[str, Any]:
    port = _free_port()
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(_config(upstream, cache, routed))
    env = {**os.environ, "GATEWAY_DATA_DIR": tempfile.mkdtemp()}
    proc = _start([sys.executable, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)], None, env)
    prompt_of = {r["prompt"]: r["qid"] for r in requests}
    out = {"cost": 0.0, "hits": 0, "misroutes": 0, "overspend": 0, "wrong_hits": 0, "requests": 0}
    try:
        _wait(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"authorization": f"Bearer {MASTER_KEY}"}) as client:  # fmt: skip
            for r in requests:
                reply = client.post("/v1/chat/completions", json={
                    "model": "assistant", "messages": [{"role": "user", "content": r["prompt"]}]})
                reply.raise_for_status()
                out["requests"] += 1
                out["cost"] += float(reply.headers.get("x-gateway-cost", "0"))
                served_by = reply.headers.get("x-gateway-model", "")
                if reply.headers.get("x-gateway-cache") in ("HIT", "SEMANTIC_HIT"):
                    out["hits"] += 1
                    answered = reply.json()["choices"][0]["message"]["content"]
                    if prompt_of.get(answered.removeprefix("Answer to: ")) != r["qid"]:
                        out["wrong_hits"] += 1
                    continue
                if r["label"] == "complex" and served_by == CHEAP:
                    out["misroutes"] += 1
                if r["label"] == "simple" and served_by == FRONTIER:
                    out["overspend"] += 1
    finally:
        proc.terminate()
        proc.wait(10)
    return out


def decisions() -> list[str]:
    """µs per routing decision (the body's signals included), both builds, in subprocesses."""
    lines = ["| build | cheapest | complexity | semantic (local embedder) |", "|---|---:|---:|---:|"]
    for build, flag in (("compiled", ""), ("pure Python", "1")):
        env = {**os.environ, "GATEWAY_NO_EXTENSIONS": flag}
        found = subprocess.run([sys.executable, "-m", "benchmarks.savings", "--decisions-child"],
                               env=env, capture_output=True, text=True, check=True)  # fmt: skip
        timings = json.loads(found.stdout)
        lines.append(f"| {build} | {timings['cheapest']:.1f} µs | {timings['complexity']:.1f} µs"
                     f" | {timings['semantic']:.1f} µs |")  # fmt: skip
    return lines


def _decisions_child() -> None:
    from gateway.cache.embedders import LocalEmbedder
    from gateway.config import parse_config
    from gateway.metering.prices import Catalog, Pricer
    from gateway.routing.catalog import build_catalog
    from gateway.routing.health import HealthRegistry
    from gateway.routing.signals import Signals
    from gateway.routing.smart import SmartRouter

    cfg = parse_config("""
providers: {openai: {api_key: sk-x}}
models:
  - name: cheapest
    strategy: {mode: cheapest}
    targets: [{provider: openai, model: gpt-4o}, {provider: openai, model: gpt-4o-mini},
              {provider: openai, model: gpt-4.1-nano}]
  - name: complexity
    strategy: {mode: complexity, tiers: [{below: 0.35, target: a}, {target: b}]}
    targets: [{name: a, provider: openai, model: gpt-4o-mini}, {name: b, provider: openai, model: gpt-4o}]
  - name: semantic
    strategy:
      mode: semantic
      default: a
      routes:
        - {name: billing, target: b, examples: ["How do I update my card?", "Why was I charged twice?", "Refund my invoice"]}
        - {name: code, target: a, examples: ["Fix my Python error", "Write a SQL join", "Debug this JavaScript"]}
    targets: [{name: a, provider: openai, model: gpt-4o-mini}, {name: b, provider: openai, model: gpt-4o}]
""", {})
    catalog = build_catalog(cfg, {}, HealthRegistry())
    pricer = Pricer(Catalog(), {})
    memo: dict[Any, Any] = {}

    def price_of(leaf: Any) -> Any:
        if leaf not in memo:
            memo[leaf] = pricer.price("openai", "openai", leaf.target.model)
        return memo[leaf]

    local = LocalEmbedder()
    router = SmartRouter(price_of, {"local": local}.get)
    raw = json.dumps({"model": "x", "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Why was I charged twice on my card this month? Please explain what happened."},
    ]}).encode()  # fmt: skip
    from gateway.api.requests import CHAT_DECODER

    view = CHAT_DECODER.decode(raw)
    out = {}
    for name in ("cheapest", "complexity", "semantic"):
        group: Any = catalog.resolve(name).root

        async def once(group: Any = group) -> None:
            signals = Signals.of(raw, False, view)  # as failover.py builds them
            await router.rank(group, signals)

        async def timed() -> float:
            for _ in range(200):
                await once()
            n = 5000
            best = math.inf
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(n // 5):
                    await once()
                best = min(best, (time.perf_counter() - started) / (n // 5))
            return best * 1e6

        out[name] = asyncio.run(timed())
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "savings.md"))
    parser.add_argument("--decisions-child", action="store_true")
    args = parser.parse_args()
    if args.decisions_child:
        _decisions_child()
        return
    requests = json.loads(WORKLOAD.read_text())["requests"]
    complex_n = sum(r["label"] == "complex" for r in requests)
    mock = _free_port()
    _mock(mock)
    _wait(mock)
    upstream = f"http://127.0.0.1:{mock}"
    results = {name: replay(upstream, cache, routed, requests) for name, (cache, routed) in RUNS.items()}
    base = results["frontier only"]["cost"]
    lines = [
        f"Workload: {len(requests)} requests ({complex_n} complex), `{WORKLOAD.relative_to(ROOT)}`;"
        f" frontier {FRONTIER}, cheap {CHEAP}, catalog prices.", "",
        "| run | cost (USD) | saved | cache hits | wrong cached answers | complex sent cheap | simple sent frontier |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        saved = 1 - r["cost"] / base if base else 0.0
        lines.append(
            f"| {name} | {r['cost']:.4f} | {saved:.0%} | {r['hits']} | {r['wrong_hits']} |"
            f" {r['misroutes']} / {complex_n} | {r['overspend']} |"
        )
    lines += ["", "Cost of one routing decision (the request's signals included):", "", *decisions()]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    _chart(results, Path(args.out).with_suffix(".png"))
    print(text)


def _chart(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    costs = [results[n]["cost"] for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.bar(names, costs, color=["#888", "#4a90d9", "#e0a030", "#3aa655"])
    for bar, cost in zip(bars, costs, strict=True):
        share = cost / costs[0] if costs[0] else 0
        ax.annotate(f"${cost:.3f}\n({share:.0%})", (bar.get_x() + bar.get_width() / 2, cost),
                    ha="center", va="bottom", fontsize=8)  # fmt: skip
    ax.set_ylabel("workload cost (USD)")
    ax.set_title("The savings workload: cost by gateway feature")
    ax.set_ylim(0, max(costs) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
