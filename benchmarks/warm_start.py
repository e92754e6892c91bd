"""Time to ready after a restart, with the semantic index rebuilt from Redis first: a private
redis-server holding N semantic entries (512-dimension vectors, one partition, as the gateway
writes them), then the gateway started on it; the time from its start until /health/ready
answers 200, and the rebuild's own rate from its log line.

    python -m benchmarks.warm_start [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import _free_port  # noqa: E402
from gateway.cache.semantic import _RECORD_ENCODE, PREFIX, Record  # noqa: E402

CONFIG = """
cache: {{redis_url: "redis://127.0.0.1:{redis}/0", mode: semantic}}
providers: {{openai: {{type: openai-compatible, base_url: "http://127.0.0.1:9/v1"}}}}
usage: {{enabled: false}}
"""


def _fill(port: int, count: int) -> None:
    client = redis.Redis(port=port)
    rng = np.random.default_rng(1)
    expires = time.time() + 3600
    for start in range(0, count, 5000):
        vectors = rng.standard_normal((min(5000, count - start), 512)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        pipe = client.pipeline(transaction=False)
        for i, vector in enumerate(vectors):
            key = f"k{start + i}"
            record = Record("bench", key, f"question {start + i}", vector.tobytes(), expires)
            pipe.set(f"{PREFIX}bench:{key}", _RECORD_ENCODE.encode(record), px=3_600_000)
        pipe.execute()
    client.close()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def measure(size: int) -> tuple[float, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is required: apt-get install redis-server")
    work = Path(tempfile.mkdtemp(prefix="gateway-warm-"))
    redis_port, port = _free_port(), _free_port()
    server = subprocess.Popen([binary, "--port", str(redis_port), "--save", "", "--appendonly", "no",
                               "--dir", str(work)], stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.3)
        _fill(redis_port, size)
        config = work / "gateway.yaml"
        config.write_text(CONFIG.format(redis=redis_port))
        log = work / "gateway.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        started = time.perf_counter()
        with log.open("wb") as out:
            gateway = subprocess.Popen([sys.executable, "-m", "gateway", "serve", "--config", str(config),
                                        "--port", str(port)], stdout=out, stderr=out, env=env)  # fmt: skip
        try:
            while not _ready(port):
                time.sleep(0.02)
            ready = time.perf_counter() - started
        finally:
            gateway.terminate()
            gateway.wait(30)
        found = re.search(r"(\d+) entries rebuilt from Redis in ([\d.]+) s \((\d+)/s\)", log.read_text())
        return ready, found.group(0) if found else "no rebuild line"
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    print("| entries in Redis | time to ready (s) | the rebuild |\n|---:|---:|---|")
    for size in args.sizes:
        ready, line = measure(size)
        print(f"| {size:,} | {ready:.1f} | {line} |")


if __name__ == "__main__":
    main()
