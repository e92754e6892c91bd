"""Reserve, then settle, across every instance: one Redis script per admitted request.

Reserves issued in the same event-loop tick go to Redis in one pipeline; settles are queued and
written by a background flusher in pipelines of up to 256, so a request costs the loop about one
round trip's share. A slow or dead Redis costs at most `timeout` once (then its breaker opens
and decisions are local at once): rate rules fall back to the local limiter at limit / live
instances; a budget rule with `on_store_error: closed` refuses instead. What was admitted while
Redis was away is charged to it when it returns (its settles wait in the queue). The local
limiter is told what each scope had left at every answer, so a fallback in the middle of a
window never admits what Redis had already given out, nor spends more of a budget than
Redis last said was left.

Holds are short leases that this instance renews while their requests live (one pipeline a
second at most, for the holds due), so a killed instance's holds expire within a lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from gateway.governance import scripts
from gateway.governance.local import LocalLimiter
from gateway.governance.rules import Lease, Refusal, Rule, Window
from gateway.observability import metrics
from gateway.redisbus import CLUSTER, FAILURES, RedisBreaker, RedisWorker

LOG = logging.getLogger("gateway.governance")
_INSTANCES = "gw:instances"
HARD_TIMEOUT = 1.0  # seconds a reserve may wait on a slow Redis while its breaker is closed
_MAX_SETTLES = 200_000  # queued while Redis is away; past this the oldest are dropped
# A hold is renewed for at most this long: one whose settle never came (a bug, not a request)
# ends like any lease instead of holding its quota for ever.
_MAX_RENEWED = 3600.0


class Unavailable(Exception):
    """Redis could not decide in time."""


class RedisLimiter:
    def __init__(self, url: str, *, timeout_ms: int, local: LocalLimiter) -> None:
        self._worker = RedisWorker(url, timeout=max(timeout_ms / 1000, 0.05))
        self._timeout = timeout_ms / 1000
        self.local = local
        self.breaker = RedisBreaker("limiter", log=LOG)
        self.instance = secrets.token_hex(6)
        self._sha: dict[str, str] = {}
        self._pending: list[tuple[list[Any], asyncio.Future[Any]]] = []
        self._settles: deque[list[Any]] = deque()
        # Live holds made here: id -> [scopes, lease ms, when last pushed on, when made].
        self._live: dict[str, list[Any]] = {}
        self._wake = asyncio.Event()
        self.degraded = False
        self.cluster = url.startswith(CLUSTER)

    @property
    def redis(self) -> Any:
        return self._worker.redis

    async def start(self) -> None:
        self._worker.connect()
        self.breaker.redis = self.redis
        # Connections and scripts made now, not inside the first requests' deadline.
        try:
            async with asyncio.timeout(2.0):
                for name, source in (("reserve", scripts.RESERVE), ("settle", scripts.SETTLE)):
                    self._sha[name] = await self.redis.script_load(source)
                await asyncio.gather(*(self.redis.ping() for _ in range(8)))
        except (*FAILURES, TimeoutError) as err:
            LOG.warning("limiter: Redis unreachable at start (%s); limits per instance", err)
        self._worker.spawn(self._flush_settles(), "limiter-settle")
        self._worker.spawn(self._heartbeat(), "limiter-heartbeat")
        self._worker.spawn(self._renew(), "limiter-renew")

    async def stop(self) -> None:
        # What is still queued is written now if Redis answers quickly.
        if self._settles and not self.breaker.open:
            with contextlib.suppress(*FAILURES, asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    while self._settles:
                        await self._write_settles()
        await self.breaker.stop()
        await self._worker.stop()

    async def _run(self, pipe: Any, name: str, source: str, calls: list[list[Any]]) -> list[Any]:
        """EVALSHA each call in one pipeline; loads the script once when Redis lacks it."""
        sha = self._sha.get(name)
        if sha is None:
            sha = self._sha[name] = await self.redis.script_load(source)
        for args in calls:
            pipe.execute_command("EVALSHA", sha, *args)
        results = list(await pipe.execute(raise_on_error=False))
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # Redis restarted or was flushed: load the script, redo only those
            self._sha[name] = await self.redis.script_load(source)
            again = await self._run(
                self.redis.pipeline(transaction=False), name, source, [calls[i] for i in missing]
            )
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        for result in results:
            if isinstance(result, ResponseError):
                raise result
        return results

    # reserve --------------------------------------------------------------------------

    async def reserve(  # noqa: PLR0913 - what one reservation is
        self,
        rid: str,
        rules: Sequence[Rule],
        tokens: int,
        cost: int,
        lease_ms: int,
        count: int = 1,
    ) -> Lease | Refusal:
        """Raises Unavailable when Redis cannot answer within the timeout (or is known down)."""
        if not self.breaker.allow():
            raise Unavailable
        if self.cluster and len(rules) > 1:
            return await self._reserve_per_scope(rid, rules, tokens, cost, lease_ms, count)
        result = await self._reserve(rid, rules, tokens, cost, lease_ms, count)
        learn = self.local.learn
        if result[0] == 0:
            reason = result[2].decode() if isinstance(result[2], bytes) else str(result[2])
            refusal = Refusal(rules[int(result[1]) - 1], reason, int(result[3]))
            # (A chunk that did not fit says nothing of what one request would find.)
            if count == 1 and reason == "requests":
                learn(refusal.rule.scope, 0, refusal.retry_after_ms, -1, 0)
            elif count == 1 and reason == "tokens":
                learn(refusal.rule.scope, -1, 0, 0, refusal.retry_after_ms)
            elif count == 1 and reason == "budget":
                self.local.learn_budget(refusal.rule, 0)
            return refusal
        windows = tuple(
            Window(rule, int(result[2 + i * 5]), int(result[3 + i * 5]),
                   int(result[4 + i * 5]), int(result[5 + i * 5]))
            for i, rule in enumerate(rules)
        )  # fmt: skip
        for i, window in enumerate(windows):
            learn(window.rule.scope, window.requests_left, window.requests_reset_ms,
                  window.tokens_left, window.tokens_reset_ms)  # fmt: skip
            if window.rule.budget >= 0:
                self.local.learn_budget(window.rule, int(result[6 + i * 5]))
        live = self._live.get(rid)
        if live is None:
            now = time.monotonic()
            self._live[rid] = [[r.scope for r in rules], lease_ms, now, now]
        else:  # a cluster's scopes, reserved one by one
            live[0].extend(r.scope for r in rules)
        return Lease(rid, tuple(rules), tokens, cost, windows, False)

    async def _reserve_per_scope(  # noqa: PLR0913 - as reserve
        self, rid: str, rules: Sequence[Rule], tokens: int, cost: int, lease_ms: int, count: int
    ) -> Lease | Refusal:
        """On a Redis Cluster each scope's keys are in their own slot, so one script cannot
        hold them all: every scope is reserved at once (one pipeline, split by node), and if
        any refuses, those that admitted are released (their request count given back)."""
        parts = await asyncio.gather(
            *(self.reserve(rid, (rule,), tokens, cost, lease_ms, count) for rule in rules)
        )
        leases = [p for p in parts if isinstance(p, Lease)]
        if len(leases) == len(parts):
            windows = tuple(w for lease in leases for w in lease.windows)
            return Lease(rid, tuple(rules), tokens, cost, windows, False)
        for lease in leases:
            self.settle(lease, 0, 0, requests=0)
        return next(p for p in parts if isinstance(p, Refusal))

    async def _reserve(  # noqa: PLR0913 - as reserve
        self, rid: str, rules: Sequence[Rule], tokens: int, cost: int, lease_ms: int, count: int
    ) -> Any:
        args: list[Any] = [len(rules) * 5]
        for rule in rules:
            args += scripts.keys_of(rule.scope)
        args += [rid, tokens, cost, lease_ms, len(rules), count]
        for rule in rules:
            args += [rule.rpm, rule.tpm, rule.parallel, rule.budget, rule.period]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._send_reserves)
        self._pending.append((args, future))
        try:
            result = await future
        except asyncio.CancelledError:
            # The caller went away; Redis may still have made the hold: release it.
            self.release(rid, rules)
            raise
        if result is None:
            # Timed out: the script may have run after all, so its hold is released (a no-op
            # if it never ran) before the request is decided locally.
            self.release(rid, rules)
            raise Unavailable
        return result

    def release(self, rid: str, rules: Sequence[Rule]) -> None:
        """Undoes a reservation that may or may not exist (settles are idempotent)."""
        self.settle(Lease(rid, tuple(rules), 0, 0, (), False), 0, 0, requests=0)

    def _send_reserves(self) -> None:
        batch, self._pending = self._pending, []
        asyncio.get_running_loop().create_task(self._reserve_batch(batch))

    async def _reserve_batch(self, batch: list[tuple[list[Any], asyncio.Future[Any]]]) -> None:
        """A Redis slower than `timeout` counts as a failure, but the batch keeps waiting for
        its answer (a slow Redis still decides exactly) until the breaker opens, which cancels
        every batch in flight at once (then requests are decided locally), or HARD_TIMEOUT."""
        started = time.perf_counter()
        task = asyncio.current_task()
        assert task is not None
        slow = asyncio.get_running_loop().call_later(
            self._timeout, self.breaker.failed, TimeoutError("limiter reserve")
        )
        self.breaker.inflight.add(task)
        try:
            async with asyncio.timeout(max(self._timeout, HARD_TIMEOUT)):
                pipe = self.redis.pipeline(transaction=False)
                results = await self._run(pipe, "reserve", scripts.RESERVE, [a for a, _ in batch])
        except (TimeoutError, asyncio.CancelledError, *FAILURES) as err:
            if not isinstance(err, asyncio.CancelledError):
                self.breaker.failed(err)
            results = [None] * len(batch)
        else:
            if time.perf_counter() - started < self._timeout:
                self.breaker.succeeded()
        finally:
            slow.cancel()
            self.breaker.inflight.discard(task)
        metrics.observe_limiter_redis(time.perf_counter() - started, len(batch))
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    # settle ---------------------------------------------------------------------------

    def settle(self, lease: Lease, tokens: int, cost: int, requests: int = 1) -> None:
        """Queued; written in the next batch. A lease admitted locally is charged to Redis."""
        self._live.pop(lease.id, None)
        groups = [(rule,) for rule in lease.rules] if self.cluster else [lease.rules]
        for rules in groups:
            args: list[Any] = [len(rules) * 5]
            for rule in rules:
                args += scripts.keys_of(rule.scope)
            args += [lease.id, tokens, cost, len(rules), "1" if lease.local else "0", requests]
            args += [rule.period for rule in rules]
            self._queue_settle(args)

    def _queue_settle(self, args: list[Any]) -> None:
        if len(self._settles) >= _MAX_SETTLES:
            self._settles.popleft()
            metrics.LIMITER_SETTLES_DROPPED.inc()
        self._settles.append(args)
        self._wake.set()

    async def _flush_settles(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.002)  # let the tick's other settles join the batch
            while self._settles:
                await self.breaker.wait()
                try:
                    await self._write_settles()
                except (TimeoutError, *FAILURES) as err:
                    self.breaker.failed(err)
                    await asyncio.sleep(0.1)
                else:
                    self.breaker.succeeded()

    async def _write_settles(self) -> None:
        batch = [self._settles[i] for i in range(min(256, len(self._settles)))]
        async with asyncio.timeout(max(self._timeout * 10, 1.0)):
            await self._run(self.redis.pipeline(transaction=False), "settle", scripts.SETTLE, batch)
        for _ in batch:
            self._settles.popleft()
        metrics.LIMITER_SETTLES.inc(len(batch))
        metrics.LIMITER_ROUND_TRIPS.inc()

    @property
    def queued(self) -> int:
        return len(self._settles)

    # liveness -------------------------------------------------------------------------

    async def _renew(self) -> None:
        """Pushes on every live hold a third of its lease before it would end; a push that
        fails is tried again the next second."""
        while True:
            await asyncio.sleep(1.0)
            if not self._live or self.breaker.open:
                continue
            now = time.monotonic()
            for rid in [rid for rid, live in self._live.items() if now - live[3] > _MAX_RENEWED]:
                del self._live[rid]
            live_now = self._live.items()
            due = [(rid, live) for rid, live in live_now if now - live[2] >= live[1] / 3000]
            by_scope: dict[str, list[Any]] = {}
            for rid, (scopes, lease_ms, _, _) in due:
                for scope in scopes:
                    by_scope.setdefault(scope, []).extend((rid, lease_ms))
            if not by_scope:
                continue
            calls = []
            for scope, args in by_scope.items():
                keys = scripts.keys_of(scope)
                calls.append([2, keys[1], keys[2], *args])
            pipe = self.redis.pipeline(transaction=False)
            try:
                async with asyncio.timeout(max(self._timeout * 10, 1.0)):
                    await self._run(pipe, "renew", scripts.RENEW, calls)
            except (TimeoutError, *FAILURES) as err:
                LOG.debug("limiter: renewing holds failed (%s)", err)
                continue
            for _, live in due:
                live[2] = now

    async def _heartbeat(self) -> None:
        while True:
            try:
                async with asyncio.timeout(1.0):
                    live = await self.redis.eval(scripts.HEARTBEAT, 1, _INSTANCES, self.instance)
                self.local.share = max(1, int(live))
                if self.degraded and not self.breaker.open:
                    self.degraded = False
                    metrics.LIMITER_DEGRADED.set(0)
            except (TimeoutError, *FAILURES):
                pass
            await asyncio.sleep(1.0)

    async def inspect(self, rule: Rule) -> tuple[int, int, int, int, int, str]:
        keys = scripts.keys_of(rule.scope)
        async with asyncio.timeout(1.0):
            found = await self.redis.eval(scripts.INSPECT, 5, *keys, rule.period)
        period = found[5].decode() if isinstance(found[5], bytes) else str(found[5])
        return int(found[0]), int(found[1]), int(found[2]), int(found[3]), int(found[4]), period
