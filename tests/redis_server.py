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


def start_redis(port: int | None = None, *extra: str) -> RedisServer:
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
         "--dir", directory, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = RedisServer(port, process, directory)
    if not _answers(port):
        server.stop()
        pytest.fail(f"redis-server did not start on port {port}")
    return server


@dataclass
class RedisCluster:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(masters: int = 3, replicas: int = 0, *extra: str) -> RedisCluster:
    """A Redis Cluster of `masters` primaries (each with `replicas` replicas) on free ports,
    made with redis-cli; `extra` options go to every node (e.g. a short cluster-node-timeout,
    so a stopped master's replica is promoted within seconds)."""
    binary = shutil.which("redis-server")
    cli = shutil.which("redis-cli")
    if binary is None or cli is None:
        pytest.fail("redis-server and redis-cli are needed (apt-get install redis-server)")
    nodes = []
    for _ in range(masters * (1 + replicas)):
        port = free_port()
        while port > 55535 or not _free(port + 10000):  # the bus port is port + 10000
            port = free_port()
        directory = tempfile.mkdtemp(prefix="gateway-redis-cluster-")
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--cluster-enabled", "yes", "--cluster-config-file", f"{directory}/nodes.conf",
             "--dir", directory, *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        nodes.append(RedisServer(port, process, directory))
    cluster = RedisCluster(nodes)
    if not all(_answers(node.port) for node in nodes):
        cluster.stop()
        pytest.fail("a redis-server of the cluster did not start")
    made = subprocess.run(
        [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
         "--cluster-replicas", str(replicas), "--cluster-yes"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if made.returncode != 0:
        cluster.stop()
        pytest.fail(f"redis-cli --cluster create failed: {made.stdout}{made.stderr}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = subprocess.run([cli, "-p", str(nodes[0].port), "cluster", "info"],
                              capture_output=True, text=True).stdout  # fmt: skip
        if "cluster_state:ok" in info:
            return cluster
        time.sleep(0.1)
    cluster.stop()
    pytest.fail("the Redis Cluster never reached cluster_state:ok")


def _answers(port: int) -> bool:
    """Whether a Redis on the port answers PING within 10 seconds."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return True
        except OSError:
            time.sleep(0.05)
    return False


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Sentinel:
    """A primary, its replica and one sentinel watching them as `mymaster` (quorum 1)."""

    primary: RedisServer
    replica: RedisServer
    sentinel: RedisServer

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.sentinel.port}/mymaster/0"

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.primary):
            if server.process.poll() is None:
                server.process.send_signal(18)  # SIGCONT, in case a test stopped it
            server.stop()


def start_sentinel() -> Sentinel:
    primary = start_redis()
    replica = start_redis(None, "--replicaof", "127.0.0.1", str(primary.port))
    port = free_port()
    directory = tempfile.mkdtemp(prefix="gateway-sentinel-")
    conf = f"{directory}/sentinel.conf"
    with open(conf, "w") as out:
        out.write(
            f"port {port}\nbind 127.0.0.1\ndir {directory}\n"
            f"sentinel monitor mymaster 127.0.0.1 {primary.port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
        )
    binary = shutil.which("redis-server")
    assert binary is not None
    process = subprocess.Popen([binary, conf, "--sentinel"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    sentinel = RedisServer(port, process, directory)
    made = Sentinel(primary, replica, sentinel)
    if not _answers(port):
        made.stop()
        pytest.fail(f"redis-server --sentinel did not start on port {port}")
    return made
