"""Starts the real gateway as a subprocess on a free port, with a scrubbed environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
MASTER_KEY = "gw-master-key-for-tests"
UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"
IMPLS = ("compiled", "pure")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(impl: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test machine's own provider keys must never reach a test gateway."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not (
            k.endswith(("_API_KEY", "_BASE_URL", "_API_URL"))
            or k.startswith(("GATEWAY_", "PROMETHEUS_", "AZURE_", "AWS_", "GOOGLE_", "CO_API"))
            or k in ("OPENAI_API_VERSION", "ANTHROPIC_AUTH_TOKEN", "REDIS_URL")
        )
    }
    if impl == "pure":
        env["GATEWAY_NO_EXTENSIONS"] = "1"
    # Each gateway's usage ledger in its own directory, never the checkout's ./data.
    env["GATEWAY_DATA_DIR"] = tempfile.mkdtemp(prefix="gateway-data-")
    env.update(extra or {})
    return env


@dataclass
class Gateway:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def start_gateway(
    impl: str,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    port: int | None = None,
    wait: bool = True,
) -> Gateway:
    port = port or free_port()
    log = Path(tempfile.mkstemp(prefix="gateway-test-", suffix=".log")[1])
    command = [sys.executable, "-m", "gateway", "serve", "--port", str(port), *(args or [])]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=ROOT, env=clean_env(impl, env), stdout=out, stderr=subprocess.STDOUT
        )
    gateway = Gateway(f"http://127.0.0.1:{port}", port, process, log)
    if wait:
        wait_ready(gateway)
    return gateway


def wait_ready(gateway: Gateway, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError(f"gateway exited early:\n{gateway.output()}")
        try:
            # Ready, not just live: the gateway listens while it warms up (503 until then).
            if httpx.get(f"{gateway.url}/health/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    gateway.stop(signal.SIGKILL)
    raise RuntimeError(f"gateway did not become live:\n{gateway.output()}")


def write_config(text: str) -> Path:
    path = Path(tempfile.mkstemp(prefix="gateway-test-", suffix=".yaml")[1])
    path.write_text(text)
    return path


def until(check: Callable[[], bool], timeout: float = 20) -> None:
    """Polls `check` every 0.1 s until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s")
