"""The terminal stage: translate the call for its target, send it, and translate the answer.

Failures raise GatewayError, streams included: the failover stage decides whether another
target can still take the request, and ends a stream that has started with an error event.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from time import perf_counter

import msgspec

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
from gateway.providers.transport import Transport, UpstreamResponse

DONE = b"data: [DONE]\n\n"


class CallProvider:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def __call__(self, call: Call) -> Reply:
        target, view = call.target, call.view
        assert target is not None and view is not None
        adapter = target.provider
        request = adapter.build_request(call.upstream_endpoint, view, call.raw, target.model)
        if adapter.forwarded_headers:
            request = _forward_headers(request, adapter.forwarded_headers, call.http.headers)
        if adapter.credentials is not None:
            fresh = await adapter.credentials.headers()
            request = msgspec.structs.replace(request, headers={**request.headers, **fresh})
        timeouts = call.timeouts or adapter.timeouts
        fault = call.fault if call.fault is not None and call.fault.applies(call) else None
        if fault is not None:
            await _inject(fault, timeouts)
        sent = perf_counter()
        response = await self._transport.send(request, timeouts, adapter.name)
        streaming = False
        try:
            if not 200 <= response.status < 300:
                body = await response.read()
                raise adapter.map_error(response.status, response.headers, body)
            headers = adapter.response_headers(response.headers)
            headers["x-gateway-provider"] = adapter.name
            headers["x-gateway-model"] = target.model
            if call.stream:
                call.upstream_seconds = perf_counter() - sent
                translator = adapter.stream_translator(call.upstream_endpoint, view, target.model)
                streaming = True
                cut = fault.cut_after if fault is not None else None
                events = relay(call, adapter, translator, response, timeouts.idle, cut)
                return Reply(200, headers, events=events)
            body = await response.read()
            call.upstream_seconds = perf_counter() - sent
            parsed = adapter.parse_response(call.upstream_endpoint, view, body, target.model)
            call.usage = parsed.usage
            return Reply(response.status, headers, body=parsed.body)
        finally:
            if not streaming:
                response.close()


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


def _forward_headers(
    request: UpstreamRequest, names: frozenset[str], client: Mapping[str, str]
) -> UpstreamRequest:
    given = {name: client[name] for name in names if name in client}
    if not given:
        return request
    return msgspec.structs.replace(request, headers={**request.headers, **given})


async def relay(  # noqa: PLR0913 - the stream, its translator, and its limits
    call: Call,
    adapter: ProviderAdapter,
    translator: StreamTranslator,
    response: UpstreamResponse,
    idle: float | None,
    cut_after: int | None = None,
) -> AsyncIterator[bytes]:
    """Upstream stream -> client SSE frames, batched per read. Raises GatewayError when the
    stream fails, including one that ends without its terminator."""
    sent = 0
    try:
        async for chunk in response.chunks(idle):
            frames = translator.frames(chunk)
            if frames:
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
    finally:
        response.close()
        call.usage = translator.usage
    if not translator.finished:
        raise UpstreamUnavailable(f"provider {adapter.name} ended the stream early")
    if call.upstream_endpoint is not Endpoint.MESSAGES:  # Anthropic's ends with message_stop
        yield DONE
