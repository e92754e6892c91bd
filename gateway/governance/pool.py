"""Quota borrowed in chunks for hot rule sets, so most of their requests need no Redis at all
(TensorZero's pool design, kept within an accuracy bound).

A rule set that has made at least HOT requests on this instance in the last second, with no
concurrency rule, and limits large enough that 2% of each holds several requests, borrows a
chunk: one reservation of N requests, N requests' tokens and N requests' cost (N: what the set
used in the last second, at most 2% of each limit), held in Redis like any other hold. Its
requests are admitted from the chunk in memory. After CHUNK_LIFE seconds, or when it runs out,
the chunk retires; when its last request has ended it is settled to what its requests used,
so what they did not use goes back to every instance. Nothing is admitted that Redis did not
reserve: the bound is one-sided, other instances may see up to 2% of a limit less than it for
as long as a chunk lives.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Sequence

from gateway.governance.limiter import RedisLimiter
from gateway.governance.rules import Lease, Refusal, Rule

HOT = 20  # requests in the last second that make a rule set worth pooling
SHARE = 0.02  # of each limit, at most, in one chunk
CHUNK_LIFE = 1.0  # seconds a chunk admits requests
MIN_REQUESTS = 4  # a chunk smaller than this is not worth its inaccuracy


class Chunk:
    __slots__ = (
        "cost", "expires", "inflight", "lease", "requests", "retired", "tokens",
        "used_cost", "used_requests", "used_tokens",
    )  # fmt: skip

    def __init__(self, lease: Lease, requests: int) -> None:
        self.lease = lease
        self.requests = requests
        self.tokens = lease.tokens
        self.cost = lease.cost
        self.expires = time.monotonic() + CHUNK_LIFE
        self.inflight = 0
        self.retired = False
        self.used_requests = self.used_tokens = self.used_cost = 0


class _Set:
    """One rule set's traffic on this instance, and its current chunk."""

    __slots__ = ("borrowing", "chunk", "count", "since")

    def __init__(self) -> None:
        self.since = time.monotonic()
        self.count = 0
        self.chunk: Chunk | None = None
        self.borrowing: asyncio.Future[None] | None = None


class Pool:
    def __init__(self, limiter: RedisLimiter) -> None:
        self._limiter = limiter
        self._sets: dict[tuple[Rule, ...], _Set] = {}

    async def take(
        self, rid: str, rules: Sequence[Rule], tokens: int, cost: int, lease_ms: int
    ) -> Lease | None:
        """A lease from this rule set's chunk (borrowing one if it is hot), or None: reserve
        this request on its own."""
        key = rules if isinstance(rules, tuple) else tuple(rules)
        found = self._sets.get(key)
        if found is None:
            if len(self._sets) > 10_000:
                self._retire_all()
            found = self._sets[key] = _Set()
        now = time.monotonic()
        rate = found.count
        if now - found.since >= 1.0:
            found.since, found.count = now, 0
        found.count += 1
        for _ in range(2):
            lease = self._from_chunk(found, rid, tokens, cost, now)
            if lease is not None:
                return lease
            if found.borrowing is not None:
                await asyncio.shield(found.borrowing)
                continue
            size = _chunk_size(rules, tokens, cost, max(rate, found.count))
            if size is None or (rate < HOT and found.count < HOT):
                return None
            await self._borrow(found, rules, size, tokens, cost, lease_ms)
        return None

    def _from_chunk(
        self, found: _Set, rid: str, tokens: int, cost: int, now: float
    ) -> Lease | None:
        chunk = found.chunk
        if chunk is None:
            return None
        if now >= chunk.expires or chunk.requests < 1 or chunk.tokens < tokens or chunk.cost < cost:
            found.chunk = None
            self._retire(chunk)
            return None
        chunk.requests -= 1
        chunk.tokens -= tokens
        chunk.cost -= cost
        chunk.inflight += 1
        # Its windows are the chunk's (window_headers adds what the chunk has left).
        return Lease(rid, chunk.lease.rules, tokens, cost, (), False, chunk)

    async def _borrow(  # noqa: PLR0913 - the set, and the chunk's shape
        self,
        found: _Set,
        rules: Sequence[Rule],
        size: int,
        tokens: int,
        cost: int,
        lease_ms: int,
    ) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        found.borrowing = future
        try:
            decision = await self._limiter.reserve(
                "chunk-" + secrets.token_hex(6), rules, tokens * size, cost * size,
                lease_ms + int(CHUNK_LIFE * 1000), count=size,
            )  # fmt: skip
            if isinstance(decision, Lease):
                found.chunk = Chunk(decision, size)
            elif isinstance(decision, Refusal):
                found.count = 0  # near a limit: reserve request by request (exact) for a while
        finally:
            found.borrowing = None
            future.set_result(None)

    def settle(self, lease: Lease, tokens: int, cost: int) -> None:
        chunk = lease.chunk
        assert isinstance(chunk, Chunk)
        chunk.inflight -= 1
        chunk.used_requests += 1
        chunk.used_tokens += tokens
        chunk.used_cost += cost
        if not chunk.retired:
            # What this request did not use may serve the chunk's next ones.
            chunk.tokens += max(0, lease.tokens - tokens)
            chunk.cost += max(0, lease.cost - cost)
        elif chunk.inflight == 0:
            self._settle(chunk)

    def _retire(self, chunk: Chunk) -> None:
        chunk.retired = True
        if chunk.inflight == 0:
            self._settle(chunk)

    def _settle(self, chunk: Chunk) -> None:
        self._limiter.settle(chunk.lease, chunk.used_tokens, chunk.used_cost, chunk.used_requests)

    def _retire_all(self) -> None:
        for found in self._sets.values():
            if found.chunk is not None:
                self._retire(found.chunk)
        self._sets.clear()

    def stop(self) -> None:
        """Unused quota goes back before the instance stops."""
        self._retire_all()


def _chunk_size(rules: Sequence[Rule], tokens: int, cost: int, rate: int) -> int | None:
    """Requests one chunk may admit: what the set used in a second, within 2% of each limit."""
    size = max(rate, MIN_REQUESTS)
    for rule in rules:
        if rule.parallel >= 0:
            return None
        if rule.rpm >= 0:
            size = min(size, int(rule.rpm * SHARE))
        if rule.tpm >= 0:
            size = min(size, int(rule.tpm * SHARE) // max(tokens, 1))
        if rule.budget >= 0:
            size = min(size, int(rule.budget * SHARE) // max(cost, 1))
    return size if size >= MIN_REQUESTS else None
