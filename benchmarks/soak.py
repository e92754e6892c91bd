"""The chaos soak (issue 22): several instances as one gateway, faults injected on a schedule,
and nothing lost.

On this machine it starts three gateway instances (two workers each) behind nginx
(`proxy_next_upstream` on connection errors and timeouts), a six-node Redis Cluster (three
masters, three replicas), a PostgreSQL server of its own (initdb; restarting it touches
nothing else) holding the ledger, keys and stored responses, and three providers with a
provider's latency (benchmarks/soak_upstream.py). A mixed workload runs at a steady rate:
chat completions streamed and not through a three-provider fallback route, exact and
semantic cache hits, PII masked by guardrails, the Responses API with follow-ups through
`previous_response_id`, the Anthropic front door, and two virtual keys pushed past their
limits (RPM, and a budget). On a schedule: `kill -9` of one instance (its process group) and
its restart; SIGSTOP of a Redis master until its replica is promoted; a PostgreSQL restart;
one provider failing half its requests, then dying.

It asserts, and reports: no client-visible failure for a request that had a healthy target
(a stream cut by its own instance's kill is counted apart); usage rows in PostgreSQL equal to
the requests answered, none lost and none doubled, after the instances drain; the RPM limit
exact outside the Redis fault (and the budget never overspent beyond what was admitted while
Redis was failing over); no lease left past its TTL; cache hits served by instances other
than the one that stored them; no PII reaching a provider; RSS per instance flat (≤ 10%
growth after warm-up); p50/p99 latency before, during and after each fault.

    python -m benchmarks.soak [--duration 600] [--rate 40]

Writes benchmarks/results/soak.md, soak.json and soak.png (the timeline).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from benchmarks.soak_upstream import MARKERS  # noqa: E402
from tests.harness import free_port  # noqa: E402
from tests.postgres import PrivatePostgres  # noqa: E402
from tests.redis_server import RedisCluster, start_cluster  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MASTER = "sk-soak-master-key-000000000000000"
APP_KEY = "sk-gw-soak-app-key-0000000000000000000001"
LIMITED_KEY = "sk-gw-soak-limited-key-00000000000000001"
BUDGET_KEY = "sk-gw-soak-budget-key-000000000000000001"
RPM = 60
BUDGET = 0.01  # US dollars; a request costs about $0.0005
LIMITED_RATE, BUDGET_RATE = 2.5, 1.0  # requests a second, beside the main workload
WEIGHTS = {  # the main workload's mix
    "chat": 26, "chat_stream": 18, "exact": 10, "semantic": 8, "pii": 8,
    "responses": 10, "anthropic": 10, "anthropic_stream": 6,
}  # fmt: skip
EXACT_POOL = [f"What is the capital of country number {i}?" for i in range(12)]
SEMANTIC_POOL = [
    "Why is the sky blue?", "How do vaccines train the immune system?",
    "What causes the seasons on Earth?", "How does a refrigerator keep food cold?",
    "Why do cats purr?", "What makes bread rise?",
]  # fmt: skip

CONFIG = """
server: {{master_key: {master}, workers: 2, shutdown_timeout: 20}}
timeouts: {{total: 30}}
redis: {{cluster: true, nodes: [{nodes}]}}
usage: {{store: "{pg}", flush_interval: 0.5}}
providers:
  alpha: {{type: openai-compatible, api_key: sk-soak-alpha, base_url: "http://127.0.0.1:{alpha}/v1"}}
  beta: {{type: anthropic, api_key: sk-soak-beta, base_url: "http://127.0.0.1:{beta}"}}
  gamma: {{type: openai-compatible, api_key: sk-soak-gamma, base_url: "http://127.0.0.1:{gamma}/v1"}}
pricing:
  alpha/m-alpha: {{input: 10, output: 30}}
  beta/claude-soak: {{input: 10, output: 30}}
  gamma/m-gamma: {{input: 10, output: 30}}
guardrails:
  policies:
    pii: {{kinds: [email, phone], action: mask, direction: input}}
  attach: [pii]
governance:
  keys:
    - {{id: app, key: {app}, rpm_limit: 1000000, tpm_limit: 1000000000, max_budget: 100000, budget_duration: 1mo}}
    - {{id: limited, key: {limited}, rpm_limit: {rpm}}}
    - {{id: budget, key: {budget}, max_budget: {budget_usd}, budget_duration: 1mo}}
models:
  - name: chat
    strategy: {{mode: fallback}}
    targets: &three
      - {{provider: alpha, model: m-alpha}}
      - {{provider: beta, model: claude-soak}}
      - {{provider: gamma, model: m-gamma}}
  - name: cached
    cache: {{mode: simple, namespace: soak-exact}}
    strategy: {{mode: fallback}}
    targets: *three
  - name: sem
    cache: {{mode: semantic, namespace: soak-semantic}}
    strategy: {{mode: fallback}}
    targets: *three
"""

NGINX = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream gateway {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://gateway;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout non_idempotent;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 2s;
      proxy_buffering off;
      proxy_read_timeout 60s;
      add_header x-soak-upstream $upstream_addr always;
    }}
  }}
}}
"""


@dataclass
class Result:
    kind: str
    rid: str
    start: float
    end: float = 0.0
    status: int = 0  # 0: no answer (a connection error)
    complete: bool = False  # the whole body (a stream to its end)
    echoed: bool = False  # the gateway's own x-request-id came back: it answered
    upstream: str = ""  # the instance nginx sent it to
    cache: str = ""
    error: str = ""
    created: str = ""  # a stored response's id
    text: str = ""  # the prompt, for the cache kinds
    warm: bool = False  # sent during the warm-up, outside the measurement

    @property
    def latency(self) -> float:
        return self.end - self.start


@dataclass
class Fault:
    name: str
    start: float
    end: float = 0.0
    detail: str = ""


@dataclass
class Instance:
    name: str
    port: int
    config: Path
    data: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)

    def start(self) -> None:
        env = {**os.environ, "GATEWAY_DATA_DIR": self.data}
        env.pop("REDIS_URL", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config),
                 "--port", str(self.port), "--host", "127.0.0.1"],
                cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return -9

    def sample_rss(self, now: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.process.pid:
                    continue
                status = (entry / "status").read_text()
            except (OSError, ProcessLookupError):
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        self.rss.append((now, total))


def _ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"instance on port {port} never became ready")


class Soak:
    def __init__(self, duration: float, rate: float, work: Path) -> None:
        self.duration = duration
        self.rate = rate
        self.work = work
        self.results: list[Result] = []
        self.faults: list[Fault] = []
        self.counter = 0
        self.t0 = 0.0
        self.instances: list[Instance] = []
        self.upstreams: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        self.cluster: RedisCluster | None = None
        self.pg: PrivatePostgres | None = None
        self.nginx: subprocess.Popen[bytes] | None = None
        self.nginx_port = 0
        self.warming = False
        self.alpha_stats: dict[str, int] = {}

    # ---- the systems -------------------------------------------------------------------------

    def start(self) -> None:
        self.cluster = start_cluster(3, 1, "--cluster-node-timeout", "2000")
        self.pg = PrivatePostgres()
        for name in ("alpha", "beta", "gamma"):
            port = free_port()
            process = subprocess.Popen([sys.executable, "-m", "benchmarks.soak_upstream", "--port", str(port)],
                                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            self.upstreams[name] = (port, process)
        nodes = ", ".join(f'"127.0.0.1:{n.port}"' for n in self.cluster.nodes)
        config = self.work / "gateway.yaml"
        config.write_text(CONFIG.format(
            master=MASTER, nodes=nodes, pg=self.pg.url, app=APP_KEY, limited=LIMITED_KEY,
            budget=BUDGET_KEY, rpm=RPM, budget_usd=BUDGET,
            **{name: port for name, (port, _) in self.upstreams.items()},
        ))  # fmt: skip
        for i in range(3):
            instance = Instance(f"gateway-{i + 1}", free_port(), config, str(self.work / f"data-{i + 1}"),
                                self.work / f"gateway-{i + 1}.log")  # fmt: skip
            self.instances.append(instance)
        # One instance first: it creates the schema; the others then start together.
        self.instances[0].start()
        _ready(self.instances[0].port)
        for instance in self.instances[1:]:
            instance.start()
        for instance in self.instances[1:]:
            _ready(instance.port)
        self._start_nginx()

    def _start_nginx(self) -> None:
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(nginx).exists():
            raise RuntimeError("the soak needs nginx as its load balancer: apt-get install nginx")
        directory = self.work / "nginx"
        directory.mkdir()
        self.nginx_port = free_port()
        servers = "\n".join(f"    server 127.0.0.1:{i.port} max_fails=1 fail_timeout=2s;" for i in self.instances)
        conf = directory / "nginx.conf"
        conf.write_text(NGINX.format(dir=directory, servers=servers, port=self.nginx_port,
                                     user="user root;" if os.geteuid() == 0 else ""))  # fmt: skip
        self.nginx = subprocess.Popen([nginx, "-p", str(directory), "-c", str(conf)], start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        _ready(self.nginx_port)

    def stop(self) -> None:
        for instance in self.instances:
            if instance.process is not None and instance.process.poll() is None:
                with _quiet():
                    os.killpg(instance.process.pid, signal.SIGKILL)
        if self.nginx is not None:  # its master and worker
            with _quiet():
                os.killpg(self.nginx.pid, signal.SIGKILL)
            self.nginx.wait(10)
        for _, process in self.upstreams.values():
            process.kill()
            process.wait(10)
        if self.cluster is not None:
            for node in self.cluster.nodes:
                with _quiet():
                    os.kill(node.process.pid, signal.SIGCONT)
            self.cluster.stop()
        if self.pg is not None:
            self.pg.stop()

    # ---- the workload ------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _rid(self, kind: str) -> str:
        self.counter += 1
        return f"soak-{kind}-{self.counter}"

    async def request(self, session: aiohttp.ClientSession, kind: str, previous: str = "") -> Result:
        rid = self._rid(kind)
        path, headers, body, text = _compose(kind, rid, previous)
        stream = bool(body.get("stream"))
        result = Result(kind, rid, self.now(), text=text if kind in ("exact", "semantic") else "",
                        warm=self.warming)  # fmt: skip
        try:
            async with session.post(f"http://127.0.0.1:{self.nginx_port}{path}", json=body,
                                    headers=headers) as reply:  # fmt: skip
                result.status = reply.status
                result.echoed = reply.headers.get("x-request-id") == rid
                result.upstream = reply.headers.get("x-soak-upstream", "")
                result.cache = reply.headers.get("x-gateway-cache", "")
                if stream and reply.status == 200:
                    end = b"data: [DONE]" if not kind.startswith("anthropic") else b"event: message_stop"
                    async for line in reply.content:
                        if line.startswith(end):
                            result.complete = True
                else:
                    data = await reply.read()
                    result.complete = True
                    if reply.status == 200 and kind == "responses":
                        result.created = json.loads(data)["id"]
                    elif reply.status != 200:
                        result.error = data[:300].decode(errors="replace")
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            result.error = f"{type(err).__name__}: {err}"
        result.end = self.now()
        self.results.append(result)
        return result

    async def _follow_up(self, session: aiohttp.ClientSession, created: str) -> None:
        await asyncio.sleep(random.uniform(1.0, 2.0))  # a person reads the answer first
        await self.request(session, "responses", previous=created)

    async def _main_load(self, session: aiohttp.ClientSession, until: float) -> None:
        kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
        tasks: set[asyncio.Task[Any]] = set()

        async def one(kind: str) -> None:
            result = await self.request(session, kind)
            if result.created and random.random() < 0.5:
                await self._follow_up(session, result.created)

        next_at = self.now()
        while self.now() < until:
            next_at += random.expovariate(self.rate)
            await asyncio.sleep(max(0.0, next_at - self.now()))
            task = asyncio.create_task(one(random.choices(kinds, weights)[0]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)

    async def _paced(self, session: aiohttp.ClientSession, kind: str, rate: float, until: float) -> None:
        tasks: set[asyncio.Task[Any]] = set()
        next_at = self.now()
        while self.now() < until:
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - self.now()))
            task = asyncio.create_task(self.request(session, kind))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)

    # ---- the faults --------------------------------------------------------------------------

    async def _faults(self) -> None:
        d = self.duration
        victim = self.instances[0]
        await self._at(0.20 * d)
        fault = Fault("instance killed", self.now(), detail=f"kill -9 of {victim.name}'s process group")
        victim.kill()
        await self._at(0.30 * d)
        victim.start()
        victim.restarts += 1
        await asyncio.to_thread(_ready, victim.port)
        fault.end = self.now()
        self.faults.append(fault)

        await self._at(0.40 * d)
        self.faults.append(await asyncio.to_thread(self._redis_failover))

        await self._at(0.55 * d)
        fault = Fault("postgres restart", self.now())
        assert self.pg is not None
        await asyncio.to_thread(self.pg._ctl, "stop", "-m", "fast")
        await asyncio.sleep(min(10.0, max(3.0, 0.01 * d)))
        await asyncio.to_thread(self.pg._ctl, "start")
        fault.end = self.now()
        fault.detail = f"down {fault.end - fault.start:.1f} s"
        self.faults.append(fault)

        await self._at(0.70 * d)
        fault = Fault("provider failing 50%", self.now(), detail="alpha answers half its requests 500")
        await _post(self.upstreams["alpha"][0], "/__soak/fault", {"fail_ratio": 0.5})
        await self._at(0.85 * d)
        fault.end = self.now()
        self.faults.append(fault)
        fault = Fault("provider dead", self.now(), detail="alpha's process killed")
        self.alpha_stats = await _get(self.upstreams["alpha"][0], "/__soak/stats")
        self.upstreams["alpha"][1].kill()
        await self._at(d)
        fault.end = self.now()
        self.faults.append(fault)

    async def _at(self, t: float) -> None:
        await asyncio.sleep(max(0.0, t - self.now()))

    def _redis_failover(self) -> Fault:
        """SIGSTOP a master until the cluster has promoted its replica, then SIGCONT it (it
        rejoins as a replica)."""
        assert self.cluster is not None
        masters = [n for n in self.cluster.nodes if _role(n.port) == "master"]
        victim = masters[0]
        fault = Fault("redis master stopped", self.now(), detail=f"SIGSTOP of the master on :{victim.port}")
        os.kill(victim.process.pid, signal.SIGSTOP)
        other = next(n for n in self.cluster.nodes if n is not victim)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            nodes = _cluster_nodes(other.port)
            promoted = "fail" in nodes.get(victim.port, "") and _slots_covered(other.port)
            if promoted:
                break
            time.sleep(0.1)
        else:
            fault.detail += "; the replica was never promoted"
        promoted_after = self.now() - fault.start
        os.kill(victim.process.pid, signal.SIGCONT)
        fault.end = self.now()
        fault.detail += f"; replica promoted after {promoted_after:.1f} s"
        return fault

    # ---- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=400, limit_per_host=400)
        timeout = aiohttp.ClientTimeout(total=40)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            self.t0 = time.monotonic()
            self.warming = True  # every path at the full rate, outside the measurement
            await self._main_load(session, min(10.0, 0.05 * self.duration))
            self.warming = False
            self.t0 = time.monotonic()
            sampler = asyncio.create_task(self._sample_rss())
            faults = asyncio.create_task(self._faults())
            await asyncio.gather(
                self._main_load(session, self.duration),
                self._paced(session, "limited", LIMITED_RATE, self.duration),
                self._paced(session, "budget", BUDGET_RATE, self.duration),
                faults,
            )  # fmt: skip
            sampler.cancel()
            # The killed instance's holds expire a lease (15 s) after its kill; a request on
            # each key then reaps them.
            kill = next(f for f in self.faults if f.name == "instance killed")
            await self._at(kill.start + 15 + 1)
            for kind in ("chat", "limited", "budget"):
                await self.request(session, kind)

    async def _sample_rss(self) -> None:
        while True:
            for instance in self.instances:
                instance.sample_rss(self.now())
            await asyncio.sleep(2.0)

    def drain(self) -> list[int]:
        codes = [instance.stop() for instance in self.instances]
        return codes


def _compose(kind: str, rid: str, previous: str) -> tuple[str, dict[str, str], dict[str, Any], str]:
    """A request of the kind: its path, headers, body, and the prompt."""
    key = {"limited": LIMITED_KEY, "budget": BUDGET_KEY}.get(kind, APP_KEY)
    headers = {"x-request-id": rid, "content-type": "application/json"}
    text = f"Tell me something new ({rid})."
    stream = kind.endswith("_stream")
    if kind.startswith("anthropic"):
        headers |= {"x-api-key": key, "anthropic-version": "2023-06-01"}
        body: dict[str, Any] = {"model": "chat", "max_tokens": 32, "stream": stream,
                                "messages": [{"role": "user", "content": text}]}  # fmt: skip
        return "/v1/messages", headers, body, text
    headers["authorization"] = f"Bearer {key}"
    if kind == "responses":
        body = {"model": "chat", "input": text, "max_output_tokens": 32}
        if previous:
            body |= {"previous_response_id": previous, "input": "And then what?"}
        return "/v1/responses", headers, body, text
    if kind == "exact":
        text = random.choice(EXACT_POOL)
    elif kind == "semantic":
        text = random.choice(SEMANTIC_POOL)
        if random.random() < 0.5:  # the same question, said a little differently
            text = text.lower().rstrip("?")
    elif kind == "pii":
        text = f"Write to {MARKERS[0]} or call {MARKERS[1]} about my order ({rid})."
    model = {"exact": "cached", "semantic": "sem"}.get(kind, "chat")
    body = {"model": model, "max_tokens": 32, "stream": stream,
            "messages": [{"role": "user", "content": text}]}  # fmt: skip
    if stream:
        body["stream_options"] = {"include_usage": True}
    return "/v1/chat/completions", headers, body, text


async def _get(port: int, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as reply:
        found: dict[str, Any] = await reply.json()
        return found


async def _post(port: int, path: str, body: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session, session.post(f"http://127.0.0.1:{port}{path}", json=body) as reply:
        await reply.read()


def _cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True,
                          timeout=10).stdout  # fmt: skip


def _role(port: int) -> str:
    return _cli(port, "role").split("\n")[0].strip()


def _cluster_nodes(port: int) -> dict[int, str]:
    """Each node's flags as this node sees them, by port."""
    out = {}
    for line in _cli(port, "cluster", "nodes").splitlines():
        parts = line.split()
        if len(parts) > 2:
            out[int(parts[1].split("@")[0].rsplit(":", 1)[1])] = parts[2]
    return out


def _slots_covered(port: int) -> bool:
    return "cluster_state:ok" in _cli(port, "cluster", "info")


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (OSError, ProcessLookupError))  # type: ignore[arg-type]


# ---- what the soak asserts ---------------------------------------------------------------------

MAIN = set(WEIGHTS)


async def _ledger(url: str) -> tuple[dict[str, int], int]:
    """Rows per request id, and what the budget key spent (nano-dollars)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        rows = {r[0]: r[1] for r in await conn.fetch(
            "SELECT request_id, count(*) FROM usage_rows WHERE request_id LIKE 'soak-%' GROUP BY 1")}  # fmt: skip
        spent = await conn.fetchval("SELECT COALESCE(SUM(cost), 0) FROM usage_rows WHERE key_id = 'budget'")
    finally:
        await conn.close()
    return rows, int(spent)


def _leases(cluster: RedisCluster) -> tuple[int, int, int, int]:
    """The limiter's holds after the drain: how many are left (a killed instance's requests,
    until their lease ends), how many are past their lease (a leak: a reserve on the scope
    reaps them), the budget amounts held, and what those holds reserved (they must agree:
    a held amount with no hold behind it would refuse budget for ever)."""
    import redis

    live = expired = held = reserved = 0
    for node in cluster.nodes:
        client = redis.Redis(port=node.port)
        if client.execute_command("ROLE")[0] != b"master":
            continue
        now_ms = int(client.time()[0]) * 1000
        for name in client.scan_iter(match="gw:*:b", count=1000):
            held += sum(int(v) for f, v in client.hgetall(name).items() if f.startswith(b"h:"))
        for name in client.scan_iter(match="gw:*:h", count=1000):
            holds = client.hgetall(name[:-1] + b"a")
            for rid, deadline in client.zrange(name, 0, -1, withscores=True):
                live += 1
                expired += deadline <= now_ms
                fields = holds.get(rid, b"").split(b"|")
                reserved += int(fields[3]) if len(fields) == 5 else 0
        client.close()
    return live, expired, held, reserved


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _fault_at(faults: list[Fault], t: float, after: float = 3.0) -> Fault | None:
    for fault in faults:
        if fault.start <= t < fault.end + after:
            return fault
    return None


def _ok(r: Result) -> bool:
    if r.kind in ("limited", "budget"):  # a refusal is the right answer past a limit
        return r.complete and r.status in (200, 429)
    return r.complete and r.status == 200


class Verdict:
    """Each check of the soak: what it found (`facts`, for the report and soak.json) and what
    failed (`failures`)."""

    def __init__(self, soak: Soak) -> None:
        self.soak = soak
        self.failures: list[str] = []
        self.facts: dict[str, Any] = {}
        self.measured = [r for r in soak.results if not r.warm]
        self.kill = next(f for f in soak.faults if f.name == "instance killed")
        self.redis = next(f for f in soak.faults if f.name == "redis master stopped")

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def cut_by_kill(self, r: Result) -> bool:
        return r.start <= self.kill.start + 0.5 and r.end >= self.kill.start - 0.5 and not r.complete

    def answers(self) -> None:
        bad = [r for r in self.measured if not _ok(r) and not self.cut_by_kill(r)]
        self.facts |= {"requests": len(self.measured), "answered_ok": sum(map(_ok, self.measured)),
                       "failures": len(bad), "cut_by_kill": sum(map(self.cut_by_kill, self.measured))}  # fmt: skip
        if bad:
            self.fail(f"{len(bad)} client-visible failures, e.g. " + "; ".join(
                f"{r.kind} {r.status} {r.error[:120]!r} at {r.start:.1f}s" for r in bad[:5]))  # fmt: skip

    def ledger(self, rows: dict[str, int]) -> None:
        """Every answered request has one row: none lost, none doubled."""
        answered = {r.rid for r in self.soak.results if r.echoed and r.complete}
        lost = sorted(answered - rows.keys())
        doubled = sorted(rid for rid, n in rows.items() if n > 1)
        unknown = sorted(rows.keys() - {r.rid for r in self.soak.results})
        self.facts |= {"answered": len(answered), "rows": sum(rows.values()), "lost": len(lost),
                       "doubled": len(doubled), "rows_of_cut": len(rows.keys() - answered - set(unknown))}  # fmt: skip
        if lost:
            self.fail(f"{len(lost)} answered requests have no usage row, e.g. {lost[:5]}")
        if doubled:
            self.fail(f"{len(doubled)} requests have more than one usage row, e.g. {doubled[:5]}")
        if unknown:
            self.fail(f"{len(unknown)} usage rows for requests never sent: {unknown[:5]}")

    def rate_limit(self) -> None:
        """Admitted in any 55 s (whole 5 s buckets of the sliding minute) ≤ RPM, outside the
        Redis fault (there each instance admits its share of what it last knew was left)."""
        admitted = sorted(r.start for r in self.measured if r.kind == "limited" and r.status == 200)
        worst = clean = 0
        for i, t in enumerate(admitted):
            n = sum(1 for u in admitted[i:] if u < t + 55)
            worst = max(worst, n)
            if not (t < self.redis.end + 10 and t + 55 > self.redis.start):
                clean = max(clean, n)
        refused = sum(1 for r in self.measured if r.kind == "limited" and r.status == 429)
        self.facts |= {"rpm_admitted": len(admitted), "rpm_refused": refused, "rpm_worst_clean": clean,
                       "rpm_worst": worst}  # fmt: skip
        if clean > RPM:
            self.fail(f"the RPM limit admitted {clean} > {RPM} in 55 s outside the Redis fault")
        if not admitted:
            self.fail("the RPM-limited key was never admitted")
        if not refused:
            self.fail("the RPM-limited key was never refused")

    def budget(self, spent: int) -> None:
        """Never beyond it, but for what was admitted while Redis failed over (budgets admit
        then: on_store_error: open)."""
        estimate = (24 * 10 + 32 * 30) * 1000  # nano-dollars: input + max_tokens at $10/$30 per M
        in_outage = sum(1 for r in self.measured if r.kind == "budget" and r.status == 200
                        and self.redis.start - 1 <= r.start <= self.redis.end + 10)  # fmt: skip
        refused = sum(1 for r in self.measured if r.kind == "budget" and r.status == 429)
        self.facts |= {"budget_spent": spent / 1e9, "budget_refused": refused, "budget_in_outage": in_outage}
        if spent > BUDGET * 1e9 + in_outage * estimate:
            self.fail(f"the budget key spent ${spent / 1e9:.5f} > ${BUDGET} (+ {in_outage} admitted in the Redis fault)")

    def leases(self, found: tuple[int, int, int, int]) -> None:
        live, expired, held, reserved = found
        self.facts |= {"holds_left": live, "holds_expired": expired, "held": held / 1e9, "reserved": reserved / 1e9}
        if live:  # the instances drained; the killed one's holds ended with their lease, reaped
            self.fail(f"{live} limiter holds left after the drain ({expired} past their lease)")
        if held != reserved:
            self.fail(f"${held / 1e9:.5f} of budget held, but the holds left reserve ${reserved / 1e9:.5f}")

    def caches(self) -> None:
        """Exact hits served by an instance other than the one that stored the entry."""
        first_miss: dict[str, str] = {}
        cross = hits = 0
        exact = sorted((r for r in self.soak.results if r.kind == "exact" and r.status == 200), key=lambda r: r.start)
        for r in exact:
            if r.cache == "MISS" and r.text not in first_miss:
                first_miss[r.text] = r.upstream
            elif r.cache == "HIT":
                hits += 1
                cross += bool(first_miss.get(r.text)) and first_miss[r.text] != r.upstream
        semantic = sum(1 for r in self.measured if r.kind == "semantic" and r.cache == "SEMANTIC_HIT")
        self.facts |= {"exact_hits": hits, "cross_instance_hits": cross, "semantic_hits": semantic}
        if not cross:
            self.fail("no exact-cache hit was served by another instance than the one that stored it")
        if not semantic:
            self.fail("no semantic cache hit")

    def pii(self, stats: dict[str, dict[str, int]]) -> None:
        leaked = sum(s.get("leaked", 0) for s in stats.values())
        self.facts["pii_leaked"] = leaked
        if leaked:
            self.fail(f"{leaked} requests reached a provider with the PII unmasked")

    def memory(self) -> list[tuple[str, int, int, float, bool]]:
        """RSS of each instance from after the warm-up (the restarted one: after its restart)."""
        found = []
        for instance in self.soak.instances:
            warm = max(0.15 * self.soak.duration, 20.0)  # caches and indexes fill in the first seconds
            since = self.kill.end + warm if instance.restarts else warm
            base = [v for t, v in instance.rss if v and t >= since]
            if len(base) < 2:
                continue
            growth = max(base[-3:]) / base[0] - 1
            found.append((instance.name, base[0], max(base[-3:]), growth, bool(instance.restarts)))
            if growth > 0.10 and not instance.restarts:
                self.fail(f"{instance.name}'s RSS grew {growth:.0%} after the warm-up")
        return found

    def phases(self) -> dict[str, list[Result]]:
        """The main workload by phase: before the faults, during each, and after it."""
        phases: dict[str, list[Result]] = {}
        for r in self.measured:
            if r.kind not in MAIN:
                continue
            fault = _fault_at(self.soak.faults, r.start)
            if fault is not None:
                label = f"during: {fault.name}"
            else:
                before = [f for f in self.soak.faults if f.end <= r.start]
                label = f"after: {before[-1].name}" if before else "before the faults"
            phases.setdefault(label, []).append(r)
        return phases


def evaluate(soak: Soak, rows: dict[str, int], spent: int, leases: tuple[int, int, int, int],
             stats: dict[str, dict[str, int]]) -> tuple[list[str], list[str], dict[str, Any]]:  # fmt: skip
    """The report's lines, the failed checks, and the numbers (soak.json)."""
    v = Verdict(soak)
    v.answers()
    v.ledger(rows)
    v.rate_limit()
    v.budget(spent)
    v.leases(leases)
    v.caches()
    v.pii(stats)
    rss = v.memory()
    phases = v.phases()
    f = v.facts
    lines = [
        f"Duration {soak.duration:.0f} s at {soak.rate:g} req/s (plus {LIMITED_RATE:g} and {BUDGET_RATE:g} req/s on the"
        " limited keys); three instances × two workers behind nginx; Redis Cluster 3+3; PostgreSQL.",
        "",
        "| fault | at | lasted | detail |", "|---|---:|---:|---|",
        *(f"| {x.name} | {x.start:.1f} s | {x.end - x.start:.1f} s | {x.detail} |" for x in soak.faults),
        "",
        "| check | result |", "|---|---|",
        f"| requests sent (after warm-up) | {f['requests']:,} ({f['answered_ok']:,} answered as expected) |",
        f"| client-visible failures with a healthy target | **{f['failures']}** |",
        f"| streams cut by their own instance's kill -9 | {f['cut_by_kill']} |",
        f"| usage rows = requests answered | {f['answered']:,} answered, {f['rows']:,} rows; lost **{f['lost']}**,"
        f" doubled **{f['doubled']}**, rows for cut requests {f['rows_of_cut']} |",
        f"| RPM {RPM} (admitted in any 55 s) | {f['rpm_worst_clean']} outside the Redis fault, {f['rpm_worst']} at"
        f" most; {f['rpm_admitted']} admitted, {f['rpm_refused']} refused |",
        f"| budget ${BUDGET} | spent ${f['budget_spent']:.5f}; {f['budget_refused']} refused;"
        f" {f['budget_in_outage']} admitted during the Redis fault |",
        f"| limiter holds after the drain | **{f['holds_left']}** ({f['holds_expired']} past their lease); budget"
        f" held ${f['held']:.5f}, reserved by holds ${f['reserved']:.5f} |",
        f"| exact-cache hits | {f['exact_hits']} ({f['cross_instance_hits']} served by another instance than the one"
        " that stored it) |",
        f"| semantic-cache hits | {f['semantic_hits']} |",
        f"| PII reaching a provider | **{f['pii_leaked']}** |",
        "",
        "| instance | RSS after warm-up | RSS at the end | growth |", "|---|---:|---:|---:|",
        *(f"| {n}{' (restarted)' if rs else ''} | {a / 2**20:.0f} MiB | {b / 2**20:.0f} MiB | {g:+.1%} |"
          for n, a, b, g, rs in rss),
        "",
        "| phase (main workload) | requests | p50 ms | p99 ms | failures |", "|---|---:|---:|---:|---:|",
    ]  # fmt: skip
    for label in sorted(phases, key=lambda k: min(r.start for r in phases[k])):
        got = phases[label]
        latencies = [r.latency * 1000 for r in got if _ok(r)]
        failed = sum(1 for r in got if not _ok(r) and not v.cut_by_kill(r))
        lines.append(f"| {label} | {len(got)} | {_pct(latencies, 0.5):.1f} | {_pct(latencies, 0.99):.1f} | {failed} |")
    lines += ["", "Failed checks: " + ("none" if not v.failures else "; ".join(v.failures))]
    summary = {"duration": soak.duration, "rate": soak.rate, **f,
               "faults": [asdict(x) for x in soak.faults], "failed_checks": v.failures,
               "rss": {i.name: i.rss for i in soak.instances}}  # fmt: skip
    return lines, v.failures, summary


def chart(soak: Soak, path: Path) -> bool:
    """p50 and p99 per second of the main workload, the faults shaded, failures marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    buckets: dict[int, list[float]] = {}
    failed: dict[int, int] = {}
    for r in soak.results:
        if r.kind not in MAIN or r.warm:
            continue
        second = int(r.start)
        if r.complete and r.status == 200:
            buckets.setdefault(second, []).append(r.latency * 1000)
        else:
            failed[second] = failed.get(second, 0) + 1
    xs = sorted(buckets)
    fig, (ax, mem) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=(3, 1.3))
    ax.plot(xs, [_pct(buckets[x], 0.5) for x in xs], label="p50", lw=1.2)
    ax.plot(xs, [_pct(buckets[x], 0.99) for x in xs], label="p99", lw=1.0, alpha=0.8)
    for fault in soak.faults:
        ax.axvspan(fault.start, fault.end, alpha=0.15, color="tab:red")
        ax.text(fault.start, ax.get_ylim()[1] * 0.9 if ax.get_ylim()[1] else 1, fault.name, fontsize=7, rotation=90,
                va="top")  # fmt: skip
    if failed:
        ax.scatter(list(failed), [1] * len(failed), marker="x", color="red", label="failures (count per s)")
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms (log)")
    ax.set_title("Chaos soak: three instances behind nginx, faults shaded")
    ax.legend(loc="upper right", fontsize=8)
    for instance in soak.instances:  # RSS of each instance's process group
        points = [(t, v / 2**20) for t, v in instance.rss if v]
        mem.plot([t for t, _ in points], [v for _, v in points], lw=1, label=instance.name)
    for fault in soak.faults:
        mem.axvspan(fault.start, fault.end, alpha=0.15, color="tab:red")
    mem.set_ylabel("RSS, MiB")
    mem.set_xlabel("seconds")
    mem.legend(loc="lower right", fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run(duration: float, rate: float, out: Path) -> list[str]:
    """Runs the soak; returns the failed checks (none: it passed). Writes soak.md/json/png."""
    work = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    soak = Soak(duration, rate, work)
    try:
        soak.start()
        asyncio.run(soak.run())
        stats = {"alpha": soak.alpha_stats}
        for name in ("beta", "gamma"):
            stats[name] = asyncio.run(_get(soak.upstreams[name][0], "/__soak/stats"))
        codes = soak.drain()
        assert soak.pg is not None and soak.cluster is not None
        rows, spent = asyncio.run(_ledger(soak.pg.url))
        leases = _leases(soak.cluster)
    finally:
        soak.stop()
    lines, failures, summary = evaluate(soak, rows, spent, leases, stats)
    if any(code != 0 for code in codes):
        failures.append(f"instances exited with {codes} after SIGTERM")
        lines[-1] = "Failed checks: " + "; ".join(failures)
    out.mkdir(parents=True, exist_ok=True)
    drawn = chart(soak, out / "soak.png")
    (out / "soak.md").write_text("\n".join(["# Chaos soak", "", "`python -m benchmarks.soak "
                                 f"--duration {duration:g} --rate {rate:g}`", "", *lines,
                                 *(["", "![timeline](soak.png)"] if drawn else [])]) + "\n")  # fmt: skip
    (out / "soak.json").write_text(json.dumps(summary, indent=1))
    if failures:
        for instance in soak.instances:
            tail = instance.log.read_text(errors="replace")[-3000:]
            print(f"--- {instance.name} log tail ---\n{tail}", file=sys.stderr)
    shutil.rmtree(work, ignore_errors=True)
    print("\n".join(lines))
    return failures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 10 minutes)")
    parser.add_argument("--rate", type=float, default=40, help="main workload, requests a second")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sys.exit(1 if run(args.duration, args.rate, args.out) else 0)


if __name__ == "__main__":
    main()
