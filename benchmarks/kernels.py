"""Micro-benchmarks: each compiled kernel against its pure-Python twin (a compiled module must
earn its place), and the semantic cache's index at growing sizes.

    python -m benchmarks.kernels                 # kernels, and the index at 10k and 100k
    python -m benchmarks.kernels --sizes 10000 100000 1000000
Writes benchmarks/results/kernels.md.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import tempfile
import time
import timeit
from functools import partial
from pathlib import Path

import numpy as np

from gateway._native import _balance_c, _balance_py, _embed_c, _embed_py, _json_c, _json_py
from gateway.cache.semantic import Query, SemanticIndex

RESULTS = Path(__file__).resolve().parent / "results"
QUESTION = "What is the capital of France, and why did it become the capital?"
# A 2 KB chat body with a tool, and a 32 KB one (a long conversation), for the body inspector.
_TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}
BODY_2K = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world " * 150}], "tools": [_TOOL]}).encode()
BODY_32K = json.dumps({"model": "gpt-4o", "messages": [{"role": "user" if i % 2 else "assistant", "content": "a line of the conversation " * 20} for i in range(60)], "tools": [_TOOL] * 4}).encode()


def _per_call(fn: object, number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number  # type: ignore[arg-type]


def kernels() -> list[str]:
    rows = ["| kernel | operation | compiled µs | pure µs | speed-up |", "|---|---|---:|---:|---:|"]
    weights = [3, 1, 2, 5, 1, 1, 4, 2]
    cases = {
        "balance: weighted pick (8 targets)": lambda m: m.Balancer(weights).pick,
        "balance: least-latency pick (8 targets)": lambda m: partial(
            m.Balancer(weights).least_latency, 0, 0.3, 0.7
        ),
        "embed: one question": lambda m: lambda: m.embed(QUESTION),
        f"json: inspect a {len(BODY_2K) / 1024:.0f} KB body": lambda m: partial(m.inspect, BODY_2K, 128),
        f"json: inspect a {len(BODY_32K) / 1024:.0f} KB body": lambda m: partial(m.inspect, BODY_32K, 128),
    }
    twins = {"balance": (_balance_c, _balance_py), "embed": (_embed_c, _embed_py), "json": (_json_c, _json_py)}
    for name, make in cases.items():
        compiled_module, pure_module = twins[name.partition(":")[0]]
        compiled = _per_call(make(compiled_module), 20_000)
        pure = _per_call(make(pure_module), 2_000)
        kernel, _, operation = name.partition(": ")
        rows.append(f"| {kernel} | {operation} | {compiled * 1e6:.2f} | {pure * 1e6:.2f} | {pure / compiled:.1f}× |")
    return rows


def embedders() -> list[str]:
    """Questions per second for each semantic-cache embedder, one question at a time."""
    from gateway.cache.minilm import MiniLM
    from gateway.cache.minilm_onnx import OnnxMiniLM

    rows = ["| embedder | µs per question | questions / s |", "|---|---:|---:|"]
    minilm = MiniLM()
    quantised = OnnxMiniLM(data_dir=Path(tempfile.mkdtemp()))
    for name, fn, number in (
        ("local, compiled", partial(_embed_c.embed, QUESTION), 20_000),
        ("local, pure Python", partial(_embed_py.embed, QUESTION), 2_000),
        ("minilm (NumPy, one thread)", partial(minilm.embed, QUESTION), 200),
        ("minilm (onnxruntime int8, one thread: the default)", partial(quantised.embed, QUESTION), 2_000),
    ):
        seconds = _per_call(fn, number)
        rows.append(f"| {name} | {seconds * 1e6:,.0f} | {1 / seconds:,.0f} |")
    return rows


def index(sizes: list[int]) -> list[str]:
    rows = [
        "| entries | built | insert / s | lookup p50 µs | lookup p99 µs | MB per 1k entries |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    rng = np.random.default_rng(7)
    dims = len(_embed_c.embed("x"))
    for size in sizes:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        semantic = SemanticIndex(max_entries=size + 1)
        vectors = rng.standard_normal((size, dims)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        expires = time.time() + 3600
        started = time.perf_counter()
        # One by one (as answers arrive) up to 100k; a bulk build (a snapshot load) beyond.
        bulk = size > 100_000
        if bulk:
            semantic.add_many([(Query("p", f"q{i}", vectors[i]), f"k{i}", expires) for i in range(size)])
        else:
            for i in range(size):
                semantic.add_now(Query("p", f"q{i}", vectors[i]), f"k{i}", expires)
        inserts = size / (time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        latencies = []
        for _ in range(2000):
            probe = vectors[random.randrange(size)] + rng.standard_normal(dims).astype(np.float32) * 0.01
            probe /= np.linalg.norm(probe)
            t0 = time.perf_counter()
            semantic.search(Query("p", "probe", probe), 0.9, guard=False)
            latencies.append(time.perf_counter() - t0)
        latencies.sort()
        p50 = statistics.median(latencies) * 1e6
        p99 = latencies[int(len(latencies) * 0.99)] * 1e6
        per_k = (after - before) / 1024 / (size / 1000)
        built = "bulk, 2 threads" if bulk else "one by one"
        rows.append(f"| {size:,} | {built} | {inserts:,.0f} | {p50:.0f} | {p99:.0f} | {per_k:.2f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    args = parser.parse_args()
    lines = ["### Kernels: compiled vs pure-Python twin", "", *kernels(), ""]
    lines += ["### Semantic-cache embedders", "", *embedders(), ""]
    print("\n".join(lines), flush=True)
    lines += ["### Semantic index (hnswlib, 512 dimensions, one partition)", "", *index(args.sizes), ""]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernels.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
