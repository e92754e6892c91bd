"""The terminal stage: translate the call for its target, send it, and translate the answer.

Failures raise GatewayError, streams included: the failover stage decides whether another
target can still take the request, and ends a stream that has started with an error event.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from time import perf_counter
from typing import NamedTuple

import msgspec

from gateway.api.requests import wants_usage
from gateway.cache.replay import replay
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.pipeline.call import Call, Reply
from gateway.pipeline.faults import Fault
from gateway.providers.base import (
    Endpoint,
    ProviderAdapter,
    StreamTranslator,
    Timeouts,
    UpstreamRequest,
)
from gateway.providers.redact import request_secrets, scrub
from gateway.providers.transport import Transport, UpstreamResponse

LOG = logging.getLogger("gateway.upstream")
DONE = b"data: [DONE]\n\n"


class CallProvider:
    def __init__(self, transport: Transport, *, max_event_bytes: int = 1 << 20) -> None:
        self._transport = transport
        self._max_event_bytes = max_event_bytes
        self._warned: set[str] = set()  # providers already logged as answering streams with JSON

    async def __call__(self, call: Call) -> Reply:
        target, view = call.target, call.view
        assert target is not None and view is not None
        adapter = target.provider
        request = adapter.build_request(call.upstream_endpoint, view, call.raw, target.model)
        # Traced: this attempt's span is the provider's parent; else the client's, passed on.
        own = call.trace.traceparent() if call.trace is not None else None
        trace = own or call.http.headers.get("traceparent")
        if adapter.forwarded_headers or adapter.credentials is not None or call.stream or trace:
            fresh = await adapter.credentials.headers() if adapter.credentials is not None else None
            request = _with_headers(request, adapter, call, trace, own is not None, fresh)
        timeouts = call.timeouts or adapter.timeouts
        fault = call.fault if call.fault is not None and call.fault.applies(call) else None
        streaming = False
        try:
            if fault is not None:
                await _inject(fault, timeouts)
            sent = perf_counter()
            response = await self._transport.send(request, timeouts, adapter.name)
            try:
                if not 200 <= response.status < 300:
                    body = await response.read()
                    raise adapter.map_error(response.status, response.headers, body)
                headers = adapter.response_headers(response.headers)
                headers["x-gateway-provider"] = adapter.name
                headers["x-gateway-model"] = target.model
                if call.stream and _is_json(response.headers):
                    return await self._replayed(call, adapter, response, headers)
                if call.stream:
                    call.upstream_seconds = perf_counter() - sent
                    endpoint = call.upstream_endpoint
                    translator = adapter.stream_translator(endpoint, view, target.model)
                    streaming = True
                    limits = _StreamLimits(timeouts.idle, self._max_event_bytes, request, adapter)
                    cut = fault.cut_after if fault is not None else None
                    events = relay(call, adapter, translator, response, limits, cut)
                    return Reply(200, headers, events=events)
                body = await response.read()
                call.upstream_seconds = perf_counter() - sent
                parsed = adapter.parse_response(call.upstream_endpoint, view, body, target.model)
                call.usage = parsed.usage
                if parsed.usage is None:
                    call.unreported = parsed.body  # counted, if metering asks (record.py)
                call.served_model, call.service_tier = parsed.served, parsed.tier
                return Reply(response.status, headers, body=parsed.body)
            finally:
                if not streaming:
                    response.close()
        except UpstreamError as err:
            # Whatever the provider answered, nothing of the request's credentials goes back.
            raise scrub(err, request_secrets(request.headers, adapter.secrets)) from None

    async def _replayed(
        self,
        call: Call,
        adapter: ProviderAdapter,
        response: UpstreamResponse,
        headers: dict[str, str],
    ) -> Reply:
        """A provider that answers a stream request with a whole JSON answer (some
        OpenAI-compatible servers ignore `stream`): a chat completion is replayed as the
        stream the client asked for; anything else is an error no retry can fix."""
        target, view = call.target, call.view
        assert target is not None and view is not None
        body = await response.read()
        if call.upstream_endpoint is Endpoint.CHAT:
            parsed = adapter.parse_response(call.upstream_endpoint, view, body, target.model)
            try:
                events = replay(parsed.body, include_usage=wants_usage(view))
                first = await anext(events)
            except (msgspec.MsgspecError, StopAsyncIteration):
                pass
            else:
                call.usage = parsed.usage
                call.first_token_at = perf_counter()
                self._warn_once(adapter.name, "answered a stream request with JSON; replayed")
                return Reply(200, headers, events=_frames(first))
        self._warn_once(adapter.name, "answered a stream request with JSON; refused")
        raise UpstreamError(
            f"provider {adapter.name} answered a stream request with a JSON body, not a stream",
            status=502,
            code="upstream_not_streaming",
            headers={"x-should-retry": "false"},
        )

    def _warn_once(self, provider: str, what: str) -> None:
        if provider not in self._warned:
            self._warned.add(provider)
            LOG.warning("provider %s %s", provider, what)


async def _frames(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _is_json(headers: Mapping[str, str]) -> bool:
    return headers.get("content-type", "").lower().startswith("application/json")


class _StreamLimits(NamedTuple):
    idle: float | None  # the longest silence between two reads
    max_event_bytes: int  # the most one event may buffer before its end arrives
    request: UpstreamRequest  # what was sent: its credentials are scrubbed from any error
    adapter: ProviderAdapter


def _with_headers(  # noqa: PLR0913 - the request and each source of its extra headers
    request: UpstreamRequest,
    adapter: ProviderAdapter,
    call: Call,
    trace: str | None,
    own: bool,
    fresh: Mapping[str, str] | None,
) -> UpstreamRequest:
    """The request with the client headers the adapter forwards, fresh credentials, the
    media type a stream request accepts, and the trace context (`own`: the gateway's, made
    well-formed; a client's is checked first)."""
    extra: dict[str, str] = {}
    if adapter.forwarded_headers:
        client = call.http.headers
        extra.update({name: client[name] for name in adapter.forwarded_headers if name in client})
    if fresh:
        extra.update(fresh)
    if call.stream:
        extra["accept"] = adapter.stream_accept
    if trace is not None and (own or _TRACEPARENT.match(trace)):
        # W3C trace context, passed on so the provider's side joins the client's trace.
        extra["traceparent"] = trace
        state = call.http.headers.get("tracestate")
        if state is not None and _TRACESTATE.match(state):
            extra["tracestate"] = state
    return msgspec.structs.replace(request, headers={**request.headers, **extra})


_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_TRACESTATE = re.compile(r"^[A-Za-z0-9_\-*/@=,. ]{1,512}$")


async def _inject(fault: Fault, timeouts: Timeouts) -> None:
    """Acts out a drill's failure as the provider would have: a status, or a stall that the
    first-byte deadline cuts short."""
    if fault.stall is not None:
        try:
            async with asyncio.timeout(timeouts.first_byte):
                await asyncio.sleep(fault.stall)
        except TimeoutError:
            raise UpstreamTimeout(
                "fault injection: the provider stalled past the deadline"
            ) from None
    if fault.status is not None:
        headers = {"retry-after": fault.retry_after} if fault.retry_after else {}
        raise UpstreamError(
            f"fault injection: the provider answered HTTP {fault.status}",
            status=fault.status,
            headers=headers,
        )


def _kept(
    call: Call, translator: StreamTranslator, relayed: list[bytes], frames: list[bytes]
) -> None:
    """Frames kept for counting should no usage arrive; usage as soon as it does, for the
    usage chunk's cost (gateway/metering/usage_chunk.py)."""
    relayed.extend(frames)
    if call.usage is None and translator.usage is not None:
        _answered(call, translator)


def _answered(call: Call, translator: StreamTranslator) -> None:
    """What a stream's translator has read of its answer: usage, the model that served it
    and at which tier (the ones metering prices by)."""
    call.usage = translator.usage
    call.served_model = getattr(translator, "served_model", None)
    call.service_tier = getattr(translator, "service_tier", None)


async def relay(  # noqa: PLR0913 - the stream, its translator, and its limits
    call: Call,
    adapter: ProviderAdapter,
    translator: StreamTranslator,
    response: UpstreamResponse,
    limits: _StreamLimits,
    cut_after: int | None = None,
) -> AsyncIterator[bytes]:
    """Upstream stream -> client SSE frames, batched per read. Raises GatewayError when the
    stream fails, including one that ends without its terminator or sends an event larger
    than the limit; an error from the provider leaves with no secret in it."""
    sent = 0
    relayed = call.frames = []  # kept by reference, read only if no usage arrives
    try:
        async for chunk in response.chunks(limits.idle):
            frames = translator.frames(chunk)
            if frames:
                _kept(call, translator, relayed, frames)
                if cut_after is not None:
                    if sent + len(frames) > cut_after:
                        if cut_after > sent:
                            yield b"".join(frames[: cut_after - sent])
                        raise UpstreamUnavailable("fault injection: the provider cut the stream")
                    sent += len(frames)
                if call.first_token_at is None:
                    call.first_token_at = perf_counter()
                yield frames[0] if len(frames) == 1 else b"".join(frames)
            if translator.failure is not None:
                raise translator.failure
            if translator.buffered > limits.max_event_bytes:
                raise UpstreamUnavailable(
                    f"provider {adapter.name} sent a stream event larger than"
                    f" {limits.max_event_bytes} bytes"
                )
    except UpstreamError as err:
        secrets = request_secrets(limits.request.headers, limits.adapter.secrets)
        raise scrub(err, secrets) from None
    finally:
        response.close()
        _answered(call, translator)
    if not translator.finished:
        raise UpstreamUnavailable(f"provider {adapter.name} ended the stream early")
    # Anthropic's ends with message_stop, OpenAI's Responses with response.completed.
    if call.upstream_endpoint not in (Endpoint.MESSAGES, Endpoint.RESPONSES):
        yield DONE
