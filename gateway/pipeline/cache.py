"""Stage: answer from the response cache, and store what providers answer.

Runs after the route is known (a model may have its own cache policy) and before failover, so
a hit costs no upstream attempt. Controls per request: `x-gateway-cache: no-cache | no-store |
refresh`, `x-gateway-cache-ttl`, `x-gateway-cache-namespace`. The reply says what happened in
`x-gateway-cache` (HIT, MISS, BYPASS, REFRESH) and `x-gateway-cache-key` (a hash, never content).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from time import perf_counter

import msgspec

from gateway.api.chat import CHAT_REQUEST_DECODER, COMPLETION_DECODER
from gateway.api.requests import wants_usage
from gateway.api.usage import Usage
from gateway.cache.embedders import Embedder
from gateway.cache.key import cache_key, partition
from gateway.cache.replay import StreamAssembler, assembling, replay
from gateway.cache.semantic import (
    Candidate,
    Query,
    SemanticIndex,
    SemanticSync,
    semantic_question,
)
from gateway.cache.store import CacheStore, Entry
from gateway.config.cache import CachePolicyCfg
from gateway.errors import InvalidRequest
from gateway.observability import metrics
from gateway.pipeline.authenticate import presented_key
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint

CONTROL = "x-gateway-cache"
TTL = "x-gateway-cache-ttl"
NAMESPACE = "x-gateway-cache-namespace"
THRESHOLD = "x-gateway-cache-threshold"
SIMILARITY = "x-gateway-cache-similarity"
_CACHEABLE = (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS)
_CONTROLS = ("", "no-cache", "no-store", "refresh")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


# Nano-dollars a cache hit saved: (provider, model, usage) -> cost, None when unpriced.
SavedCost = Callable[[str, str, Usage], int | None]


class ResponseCache:
    def __init__(
        self,
        store: CacheStore,
        default: CachePolicyCfg,
        semantic: SemanticIndex,
        embedder: Embedder,
        sync: SemanticSync | None = None,
        prices: SavedCost | None = None,
    ) -> None:
        self.store = store
        self._prices = prices
        self._default = default
        self.semantic = semantic
        self._embedder = embedder
        self.sync = sync
        self._judging: set[asyncio.Task[None]] = set()  # shadow judgements of ended streams

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        route = call.route
        assert route is not None
        policy = route.cache or self._default
        if policy.mode == "off" or call.endpoint not in _CACHEABLE:
            return await call_next(call)
        headers = call.http.headers
        control = _control(headers.get(CONTROL))
        digest = _digest(call, route.name)
        if digest is None:
            return _marked(call, await call_next(call), "BYPASS", None)
        owner = _partition(call, policy)
        key = f"{owner}:{digest}"
        model = call.model_label
        # The question is embedded only once the exact lookup has missed (or is skipped):
        # exact hits in semantic mode cost no decode, embedding or guard.
        shadow: Candidate | None = None
        started = perf_counter()
        if control in ("no-cache", "refresh"):
            result = "REFRESH" if control == "refresh" else "BYPASS"
        else:
            entry = await self.store.get(key)
            if entry is not None:
                metrics.CACHE_LOOKUP_SECONDS.observe(perf_counter() - started)
                metrics.labelled(metrics.CACHE_LOOKUPS, model, "hit").inc()
                _traced(call, started, "hit")
                return self._hit(call, entry, digest, "HIT")
            result = "MISS"
        query = None
        if policy.mode == "semantic" and call.endpoint is Endpoint.CHAT:
            query = await self._query(call, route.name, owner, policy.max_turns)
        if result == "MISS":
            if query is not None:
                default = policy.similarity_threshold or self._embedder.threshold
                threshold = _threshold(headers.get(THRESHOLD), default)
                found = self.semantic.search(query, threshold)
                if policy.shadow:
                    shadow = _measured(self.semantic, query, found)
                elif found is not None and (entry := await self.store.get(found.key)) is not None:
                    metrics.CACHE_LOOKUP_SECONDS.observe(perf_counter() - started)
                    metrics.labelled(metrics.CACHE_LOOKUPS, model, "semantic_hit").inc()
                    _traced(call, started, "semantic_hit")
                    reply = self._hit(call, entry, found.key.rpartition(":")[2], "SEMANTIC_HIT")
                    reply.headers[SIMILARITY] = f"{found.similarity:.4f}"
                    return reply
            metrics.CACHE_LOOKUP_SECONDS.observe(perf_counter() - started)
        metrics.labelled(metrics.CACHE_LOOKUPS, model, result.lower()).inc()
        _traced(call, started, result.lower())
        reply = await call_next(call)
        judged = (model, shadow) if policy.shadow and query is not None else None
        if judged is not None and reply.body is not None:
            await self._judge_shadow(model, shadow, reply.body)
            judged = None
        # An answer in the provider's own Responses format is not a chat answer to share.
        native = call.upstream_endpoint is Endpoint.RESPONSES
        kept = control != "no-store" and 200 <= reply.status < 300 and not native
        expires = time.time() + _ttl(headers.get(TTL), policy.max_age)
        self._keep(call, reply, (key if kept else None, expires, query), judged)
        return _marked(call, reply, result, digest)

    def _keep(
        self,
        call: Call,
        reply: Reply,
        where: tuple[str | None, float, Query | None],
        judged: tuple[str, Candidate | None] | None,
    ) -> None:
        """Stores the answer where `where` names a key: a body now, a stream once it ended
        whole (and judges that stream in shadow mode, as a body was judged above)."""
        key, expires, query = where
        if reply.body is not None and key is not None:
            self._put(key, _entry(call, reply, reply.body, expires), query)
        elif reply.events is not None and (key is not None or judged is not None):
            reply.events = self._store_stream(call, reply, where, judged)

    async def _query(self, call: Call, route: str, owner: str, max_turns: int) -> Query | None:
        try:
            request = CHAT_REQUEST_DECODER.decode(call.raw)
        except msgspec.MsgspecError:
            return None  # e.g. a content part kind the typed view does not know: exact only
        question = semantic_question(request, route, owner, max_turns)
        if question is None:
            return None
        vector = await self._embedder.embed(question.text)
        return Query(question.partition, question.text, vector) if vector is not None else None

    def _put(self, key: str, entry: Entry, query: Query | None) -> None:
        self.store.put(key, entry)
        if query is not None:
            self.semantic.add(query, key, entry.expires)
            if self.sync is not None:
                self.sync.save(query, key, entry.expires)

    async def _judge_shadow(self, model: str, candidate: Candidate | None, body: bytes) -> None:
        """Shadow mode: would the semantic hit have given the same answer as the provider?"""
        if candidate is None:
            metrics.labelled(metrics.CACHE_SHADOW, model, "miss").inc()
            return
        entry = await self.store.get(candidate.key)
        if entry is None:
            metrics.labelled(metrics.CACHE_SHADOW, model, "miss").inc()
            return
        same = _answer(entry.body) == _answer(body)
        metrics.labelled(
            metrics.CACHE_SHADOW, model, "would_hit_same" if same else "would_hit_different"
        ).inc()

    def _hit(self, call: Call, entry: Entry, digest: str, result: str) -> Reply:
        headers = {
            CONTROL: result,
            "x-gateway-cache-key": digest,
            "x-gateway-provider": entry.provider,
            "x-gateway-model": entry.model,
        }
        usage = entry.usage
        if usage is not None:
            label = call.model_label
            metrics.labelled(metrics.CACHE_TOKENS_SAVED, label, "prompt").inc(usage.prompt_tokens)
            metrics.labelled(metrics.CACHE_TOKENS_SAVED, label, "completion").inc(
                usage.completion_tokens
            )
            cost = self._prices(entry.provider, entry.model, usage) if self._prices else None
            if cost:
                metrics.labelled(metrics.CACHE_COST_SAVED, label).inc(cost / 1e9)
        call.cache_result = result
        call.saved_usage = usage
        call.cached_provider = entry.provider
        call.cached_model = entry.model
        if call.stream:
            assert call.view is not None
            events = replay(entry.body, include_usage=wants_usage(call.view))
            return Reply(200, headers, events=events)
        return Reply(200, headers, body=entry.body)

    def _store_stream(
        self,
        call: Call,
        reply: Reply,
        where: tuple[str | None, float, Query | None],
        judged: tuple[str, Candidate | None] | None,
    ) -> AsyncIterator[bytes]:
        """Relays the stream, assembling it; a stream that ended normally is stored (when
        `where` names a key) and, in shadow mode, judged like a whole answer."""
        assert reply.events is not None
        key, expires, query = where

        def ended(assembler: StreamAssembler) -> None:
            body = assembler.completion()
            if key is not None:
                self._put(key, _entry(call, reply, body, expires, assembler), query)
            if judged is not None:
                task = asyncio.get_running_loop().create_task(self._judge_shadow(*judged, body))
                self._judging.add(task)
                task.add_done_callback(self._judging.discard)

        return assembling(reply.events, ended, lambda: call.stream_error is None)  # one layer


def _entry(
    call: Call, reply: Reply, body: bytes, expires: float, stream: StreamAssembler | None = None
) -> Entry:
    return Entry(
        body=body,
        expires=expires,
        provider=reply.headers.get("x-gateway-provider", ""),
        model=reply.headers.get("x-gateway-model", ""),
        usage=stream.usage if stream is not None else call.usage,
    )


def _control(header: str | None) -> str:
    control = (header or "").strip().lower()
    if control not in _CONTROLS:
        raise InvalidRequest(
            f"Invalid {CONTROL} header: expected no-cache, no-store or refresh.", param=CONTROL
        )
    return control


def _digest(call: Call, route: str) -> str | None:
    """The exact key's hash, or None when this request is not cached (streamed legacy
    completions, bodies that are not JSON objects)."""
    if call.stream and call.endpoint is not Endpoint.CHAT:
        return None
    try:
        return cache_key(call.endpoint.value, route, call.raw)
    except msgspec.MsgspecError:
        return None


def _measured(index: SemanticIndex, query: Query, found: Candidate | None) -> Candidate | None:
    nearest = found or index.nearest(query)
    if nearest is not None:
        metrics.CACHE_SHADOW_SIMILARITY.observe(nearest.similarity)
    return found


def _answer(body: bytes) -> object:
    try:
        completion = COMPLETION_DECODER.decode(body)
    except msgspec.MsgspecError:
        return body
    return [(c.message.content, c.message.tool_calls) for c in completion.choices]


def _threshold(header: str | None, default: float) -> float:
    if header is None:
        return default
    try:
        value = float(header)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1:
        raise InvalidRequest(
            f"Invalid {THRESHOLD} header: expected a number in (0, 1].", param=THRESHOLD
        )
    return value


def _traced(call: Call, started: float, result: str) -> None:
    trace = call.trace
    if trace is not None:
        trace.child("cache lookup", started, perf_counter(), {"gateway.cache.result": result})


def _marked(call: Call, reply: Reply, result: str, digest: str | None) -> Reply:
    call.cache_result = result
    reply.headers[CONTROL] = result
    if digest is not None:
        reply.headers["x-gateway-cache-key"] = digest
    return reply


def _partition(call: Call, policy: CachePolicyCfg) -> str:
    sub = call.http.headers.get(NAMESPACE)
    if sub is not None and not _NAMESPACE.match(sub):
        raise InvalidRequest(
            f"Invalid {NAMESPACE} header: 1-64 letters, digits, '.', '_' or '-'.", param=NAMESPACE
        )
    return partition(presented_key(call.http.headers), policy.namespace, sub)


def _ttl(header: str | None, default: float) -> float:
    if header is None:
        return default
    try:
        seconds = float(header)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidRequest(f"Invalid {TTL} header: expected positive seconds.", param=TTL)
    return seconds
