"""Stage: answer from the response cache, and store what providers answer.

Runs after the route is known (a model may have its own cache policy) and before failover, so
a hit costs no upstream attempt. Controls per request: `x-gateway-cache: no-cache | no-store |
refresh`, `x-gateway-cache-ttl`, `x-gateway-cache-namespace`. The reply says what happened in
`x-gateway-cache` (HIT, MISS, BYPASS, REFRESH) and `x-gateway-cache-key` (a hash, never content).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from time import perf_counter

import msgspec

from gateway.api.requests import ChatView
from gateway.cache.key import cache_key, partition
from gateway.cache.replay import StreamAssembler, replay
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
_CACHEABLE = (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS)
_CONTROLS = ("", "no-cache", "no-store", "refresh")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class ResponseCache:
    def __init__(self, store: CacheStore, default: CachePolicyCfg) -> None:
        self.store = store
        self._default = default

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        route = call.route
        assert route is not None
        policy = route.cache or self._default
        if policy.mode == "off" or call.endpoint not in _CACHEABLE:
            return await call_next(call)
        headers = call.http.headers
        control = headers.get(CONTROL, "").strip().lower()
        if control not in _CONTROLS:
            raise InvalidRequest(
                f"Invalid {CONTROL} header: expected no-cache, no-store or refresh.", param=CONTROL
            )
        if call.stream and call.endpoint is not Endpoint.CHAT:
            return _marked(await call_next(call), "BYPASS", None)
        try:
            digest = cache_key(call.endpoint.value, route.name, call.raw)
        except msgspec.MsgspecError:
            return _marked(await call_next(call), "BYPASS", None)
        key = f"{_partition(call, policy)}:{digest}"
        model = call.model_label
        if control in ("no-cache", "refresh"):
            result = "REFRESH" if control == "refresh" else "BYPASS"
        else:
            started = perf_counter()
            entry = await self.store.get(key)
            metrics.CACHE_LOOKUP_SECONDS.observe(perf_counter() - started)
            if entry is not None:
                metrics.CACHE_LOOKUPS.labels(model, "hit").inc()
                return self._hit(call, entry, digest)
            result = "MISS"
        metrics.CACHE_LOOKUPS.labels(model, result.lower()).inc()
        reply = await call_next(call)
        if control != "no-store" and 200 <= reply.status < 300:
            expires = time.time() + _ttl(headers.get(TTL), policy.max_age)
            if reply.body is not None:
                self.store.put(key, _entry(call, reply, reply.body, expires))
            elif reply.events is not None:
                reply.events = self._store_stream(call, reply, reply.events, key, expires)
        return _marked(reply, result, digest)

    def _hit(self, call: Call, entry: Entry, digest: str) -> Reply:
        headers = {
            CONTROL: "HIT",
            "x-gateway-cache-key": digest,
            "x-gateway-provider": entry.provider,
            "x-gateway-model": entry.model,
        }
        if entry.usage is not None:
            metrics.CACHE_TOKENS_SAVED.labels(call.model_label, "prompt").inc(
                entry.usage.prompt_tokens
            )
            metrics.CACHE_TOKENS_SAVED.labels(call.model_label, "completion").inc(
                entry.usage.completion_tokens
            )
        if call.stream:
            view = call.view
            wants = isinstance(view, ChatView) and bool(
                view.stream_options and view.stream_options.include_usage
            )
            return Reply(200, headers, events=replay(entry.body, include_usage=wants))
        return Reply(200, headers, body=entry.body)

    async def _store_stream(  # noqa: PLR0913 - the reply, its events, and where they go
        self, call: Call, reply: Reply, events: AsyncIterator[bytes], key: str, expires: float
    ) -> AsyncIterator[bytes]:
        """Relays the stream, assembling it; only a stream that ended normally is stored."""
        assembler = StreamAssembler()
        async with aclosing(events):  # type: ignore[type-var]
            async for batch in events:
                assembler.feed(batch)
                yield batch
        if assembler.done and call.stream_error is None:
            self.store.put(key, _entry(call, reply, assembler.completion(), expires, assembler))


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


def _marked(reply: Reply, result: str, digest: str | None) -> Reply:
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
