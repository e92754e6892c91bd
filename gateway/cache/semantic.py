"""The semantic cache: an HNSW index (hnswlib, cosine) over embeddings of the user's turns,
one index per exact partition (caller, model, system prompt, tools and output-affecting
parameters), so a semantic hit can only ever come from an otherwise identical request.

A hit needs similarity >= the threshold and the lexical guard's agreement (guard.py).
Entries are persisted in Redis (vector, text, cache key, expiry): an instance rebuilds its index
from them on start, and picks up other instances' entries through pub/sub.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

import msgspec
import numpy as np

from gateway.api.chat import ChatRequest, text_of
from gateway.cache.guard import agree, signature
from gateway.observability import metrics
from gateway.redisbus import FAILURES, RedisWorker, follow, get_many, set_and_publish

LOG = logging.getLogger("gateway.cache")
PREFIX = "gateway:semantic:"
CHANNEL = "gateway:semantic"
_OUTPUT_PARAMS = (
    "temperature", "top_p", "n", "max_tokens", "max_completion_tokens", "stop", "seed",
    "presence_penalty", "frequency_penalty", "logit_bias", "response_format", "tool_choice",
    "parallel_tool_calls", "reasoning_effort", "logprobs", "top_logprobs",
)  # fmt: skip
_ENCODE = msgspec.json.Encoder(order="sorted")
_LOOKUP_WAIT = 0.005  # seconds
_BATCH = 1000  # entries per MGET (and per index insert) when rebuilding from Redis


class Query(NamedTuple):
    partition: str
    text: str
    vector: np.ndarray[Any, np.dtype[np.float32]]


class Candidate(NamedTuple):
    key: str
    similarity: float
    text: str


class Question(NamedTuple):
    partition: str
    text: str


def semantic_question(
    request: ChatRequest, route: str, owner: str, max_turns: int
) -> Question | None:
    """The text to embed and the exact partition it lives in; None for conversations too long
    (or too tool-laden) to match safely by meaning."""
    users: list[str] = []
    others: list[str] = []
    for message in request.messages:
        if message.role == "user":
            users.append(text_of(message.content))
        elif message.role in ("system", "developer"):
            others.append("s:" + text_of(message.content))
        else:
            return None  # assistant or tool turns: the answer depends on more than the question
    if not users or len(users) > max_turns:
        return None
    params = msgspec.to_builtins(request)
    fixed = {name: params.get(name) for name in _OUTPUT_PARAMS if params.get(name) is not None}
    fixed["tools"] = params.get("tools")
    material = _ENCODE.encode([owner, route, others, fixed])
    return Question(hashlib.sha256(material).hexdigest()[:32], "\n".join(users))


class _Partition:
    __slots__ = ("entries", "index", "labels", "next_label")

    def __init__(self, dimensions: int) -> None:
        # Imported with the first partition: a gateway caching nothing by meaning never
        # loads the extension (built for the CPU it runs on: no valgrind under it).
        import hnswlib  # noqa: PLC0415

        self.index = hnswlib.Index(space="cosine", dim=dimensions)
        self.index.init_index(
            max_elements=64, ef_construction=100, M=16, allow_replace_deleted=True
        )
        self.index.set_ef(50)
        self.entries: dict[int, tuple[str, str, float]] = {}  # label -> key, text, expires
        self.labels: dict[str, int] = {}
        self.next_label = 0


class SemanticIndex:
    def __init__(self, max_entries: int) -> None:
        self._partitions: dict[str, _Partition] = {}
        self._max_entries = max_entries
        self.size = 0
        # Inserts, growth and sweeps run on one thread of their own, never on the event loop;
        # a lookup waits at most a few milliseconds for it (one insert), else counts as a miss.
        self._lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="semantic-index")
        self.pending = 0  # inserts queued for the writer thread and not yet done
        self._pending_lock = threading.Lock()

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def search(self, query: Query, threshold: float, guard: bool = True) -> Candidate | None:
        if not self._lock.acquire(timeout=_LOOKUP_WAIT):
            metrics.labelled(metrics.CACHE_DEGRADED, "index_busy").inc()
            return None
        try:
            return self._search(query, threshold, guard)
        finally:
            self._lock.release()

    def _search(self, query: Query, threshold: float, guard: bool) -> Candidate | None:
        part = self._partitions.get(query.partition)
        if part is None or not part.entries or part.index.dim != len(query.vector):
            return None
        k = min(4, len(part.entries))
        labels, distances = part.index.knn_query(query.vector, k=k)
        now = time.time()
        mine = signature(query.text) if guard else None
        for label, distance in zip(labels[0], distances[0], strict=True):
            found = part.entries.get(int(label))
            if found is None:
                continue
            key, text, expires = found
            if expires <= now:
                self._remove(part, int(label))
                continue
            similarity = 1.0 - float(distance)
            if similarity < threshold:
                break  # nearest first: the rest are further away
            if mine is None or agree(mine, signature(text)):
                return Candidate(key, similarity, text)
        return None

    def nearest(self, query: Query) -> Candidate | None:
        """The closest entry whatever its similarity (shadow mode measures with it)."""
        return self.search(query, threshold=-1.0, guard=True)

    def add(self, query: Query, key: str, expires: float) -> Future[None]:
        """Queues the insert for the index's own thread."""
        with self._pending_lock:
            self.pending += 1
        future = self._writer.submit(self.add_now, query, key, expires)
        future.add_done_callback(self._done)
        return future

    def add_batch(self, items: Sequence[tuple[Query, str, float]]) -> Future[None]:
        """Queues a bulk insert (a rebuild from Redis) for the index's own thread."""
        with self._pending_lock:
            self.pending += 1
        future = self._writer.submit(self.add_many, items)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future[None]) -> None:
        with self._pending_lock:  # runs on the writer thread
            self.pending -= 1

    def add_now(self, query: Query, key: str, expires: float) -> None:
        with self._lock:
            self._add(query.partition, [(query, key, expires)])

    def add_many(self, items: Sequence[tuple[Query, str, float]]) -> None:
        """A bulk insert (a snapshot load, a Redis rebuild): one hnswlib batch per partition,
        built on all cores. Blocks: call it off the event loop; lookups meanwhile count as
        misses."""
        by_partition: dict[str, list[tuple[Query, str, float]]] = {}
        for item in items:
            by_partition.setdefault(item[0].partition, []).append(item)
        with self._lock:
            for partition, group in by_partition.items():
                self._add(partition, group)

    def sweep(self) -> Future[int]:
        """Queues the removal of every expired entry; the future holds how many went."""
        return self._writer.submit(self._sweep)

    def _sweep(self) -> int:
        now = time.time()
        removed = 0
        with self._lock:
            for part in self._partitions.values():
                for label in [label for label, (_, _, exp) in part.entries.items() if exp <= now]:
                    self._remove(part, label)
                    removed += 1
        return removed

    def records(self) -> list[Record]:
        """Every live entry with its vector, for a snapshot (called off the event loop)."""
        out: list[Record] = []
        now = time.time()
        with self._lock:
            for name, part in self._partitions.items():
                live = [(label, e) for label, e in part.entries.items() if e[2] > now]
                if not live:
                    continue
                vectors = part.index.get_items([label for label, _ in live], return_type="numpy")
                for (_, (key, text, expires)), vector in zip(live, vectors, strict=True):
                    data = np.asarray(vector, dtype=np.float32).tobytes()
                    out.append(Record(name, key, text, data, expires))
        return out

    def _add(self, partition: str, items: Sequence[tuple[Query, str, float]]) -> None:
        part = self._partitions.get(partition)
        if part is None:
            part = self._partitions[partition] = _Partition(len(items[0][0].vector))
        accepted: list[tuple[Query, str, float]] = []
        for query, key, expires in items:
            if len(query.vector) != part.index.dim:
                continue  # another embedder's vectors (a config change): not comparable
            if key in part.labels:
                self._remove(part, part.labels[key])
            if self.size + len(accepted) >= self._max_entries:
                break
            accepted.append((query, key, expires))
        if not accepted:
            return
        capacity = part.index.get_max_elements()
        needed = part.index.get_current_count() + len(accepted)
        if needed > capacity:
            # Amortised: doubling keeps one-by-one adds O(log n); a batch gets what it needs.
            part.index.resize_index(max(needed, capacity * 2))
        first = part.next_label
        vectors = np.stack([query.vector for query, _, _ in accepted])
        labels = np.arange(first, first + len(accepted))
        part.index.add_items(vectors, labels, replace_deleted=True)
        for label, (query, key, expires) in enumerate(accepted, start=first):
            part.entries[label] = (key, query.text, expires)
            part.labels[key] = label
        part.next_label = first + len(accepted)
        self.size += len(accepted)
        metrics.CACHE_INDEX_SIZE.set(self.size)

    def _remove(self, part: _Partition, label: int) -> None:
        found = part.entries.pop(label, None)
        if found is None:
            return
        part.labels.pop(found[0], None)
        with contextlib.suppress(RuntimeError):
            part.index.mark_deleted(label)
        self.size -= 1
        metrics.CACHE_INDEX_SIZE.set(self.size)


class Record(msgspec.Struct, array_like=True):
    partition: str
    key: str
    text: str
    vector: bytes
    expires: float

    def query(self) -> Query:
        return Query(self.partition, self.text, np.frombuffer(self.vector, dtype=np.float32))


_RECORD_ENCODE = msgspec.msgpack.Encoder()
_RECORD_DECODE = msgspec.msgpack.Decoder(Record)


class SemanticSync:
    """Keeps the index in Redis: writes each entry, rebuilds from Redis on start, and adds what
    other instances write. Never on the request path: writes are queued, reads are background."""

    def __init__(
        self, url: str, index: SemanticIndex, queue: int, warm_timeout: float = 300.0
    ) -> None:
        self._index = index
        self._queue: asyncio.Queue[Record] = asyncio.Queue(queue)
        self._worker = RedisWorker(url, timeout=0.5)
        self._redis: Any = None
        self._warm_timeout = warm_timeout
        # Set once the index holds what Redis held at start (or Redis could not be read).
        self.warm = asyncio.Event()

    async def start(self) -> None:
        """Starts following Redis and waits, up to `warm_timeout`, until the index is rebuilt
        from it: until then the gateway is warming (readiness 503), so a paraphrase asked as
        soon as it is ready finds the answer stored before the restart. A Redis that cannot be
        read does not hold the start: the cache is degraded, as it would be later."""
        self._worker.connect()
        self._redis = self._worker.redis
        self._worker.spawn(self._write_forever(), "semantic-writer")
        self._worker.spawn(
            follow(self._redis, CHANNEL, resync=self._resync, handle=self._load, lost=self._lost),
            "semantic-follower",
        )
        try:
            await asyncio.wait_for(self.warm.wait(), self._warm_timeout)
        except TimeoutError:
            LOG.warning(
                "semantic index: still rebuilding from Redis after %.0f s; serving meanwhile"
                " (lookups miss until it is done)", self._warm_timeout,
            )  # fmt: skip

    def _lost(self, err: BaseException) -> None:
        if not self.warm.is_set():
            LOG.warning("semantic index: Redis unreadable at start (%s); starting empty",
                        type(err).__name__)  # fmt: skip
            self.warm.set()

    async def stop(self) -> None:
        await self._worker.stop()

    def save(self, query: Query, key: str, expires: float) -> None:
        record = Record(query.partition, key, query.text, query.vector.tobytes(), expires)
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            metrics.labelled(metrics.CACHE_DEGRADED, "dropped_write").inc()

    async def _write_forever(self) -> None:
        while True:
            record = await self._queue.get()
            ttl_ms = int((record.expires - time.time()) * 1000)
            if ttl_ms <= 0:
                continue
            name = f"{PREFIX}{record.partition}:{record.key}"
            try:
                encoded = _RECORD_ENCODE.encode(record)
                await set_and_publish(self._redis, name, encoded, ttl_ms, CHANNEL, name, 2.0)
            except FAILURES:
                metrics.labelled(metrics.CACHE_DEGRADED, "redis_write").inc()

    async def _resync(self) -> None:
        """Rebuilds from what Redis holds (on start and after an outage): names scanned and
        read in batches of _BATCH, each batch handed to the index's thread while the next is
        read; done when the index has taken the last one."""
        started = time.perf_counter()
        batch: list[bytes] = []
        added: list[Future[None]] = []
        entries = 0
        async for name in self._redis.scan_iter(match=PREFIX + "*", count=_BATCH):
            batch.append(name)
            if len(batch) == _BATCH:
                entries += self._take(await get_many(self._redis, batch), added)
                batch = []
        if batch:
            entries += self._take(await get_many(self._redis, batch), added)
        for future in added:
            await asyncio.wrap_future(future)
        seconds = time.perf_counter() - started
        if not self.warm.is_set() or entries:
            LOG.info("semantic index: %d entries rebuilt from Redis in %.2f s (%.0f/s)",
                     entries, seconds, entries / seconds if seconds > 0 else 0.0)  # fmt: skip
        self.warm.set()

    async def _load(self, name: bytes) -> None:
        self._take([await self._redis.get(name)], [])

    def _take(self, payloads: list[bytes | None], added: list[Future[None]]) -> int:
        now = time.time()
        items = []
        for payload in payloads:
            if payload is None:
                continue
            try:
                record = _RECORD_DECODE.decode(payload)
            except msgspec.MsgspecError:
                continue
            if record.expires > now:
                items.append((record.query(), record.key, record.expires))
        if items:
            added.append(self._index.add_batch(items))
        return len(items)
