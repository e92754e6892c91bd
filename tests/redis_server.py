"""A private redis-server for tests that restart, share or kill it (never the machine's own)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

from tests.harness import free_port


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    directory: str

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def start_redis(port: int | None = None) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(
            "redis-server is not installed: these tests start a Redis of their own. "
            "Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis)."
        )
    port = port or free_port()
    directory = tempfile.mkdtemp(prefix="gateway-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return RedisServer(port, process, directory)
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(f"redis-server did not start on port {port}")
