"""The terminal stage: translate the call for its target, send it, and translate the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from time import perf_counter

import msgspec

from gateway.api.anthropic import error_event as anthropic_error_event
from gateway.api.envelope import error_event
from gateway.errors import GatewayError, UpstreamUnavailable, error_type
from gateway.pipeline.call import Call, Reply
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
        timeouts = _effective(adapter.timeouts, call.timeout)
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
                return Reply(200, headers, events=relay(call, adapter, translator, response))
            body = await response.read()
            call.upstream_seconds = perf_counter() - sent
            parsed = adapter.parse_response(call.upstream_endpoint, view, body, target.model)
            call.usage = parsed.usage
            return Reply(response.status, headers, body=parsed.body)
        finally:
            if not streaming:
                response.close()


def _forward_headers(
    request: UpstreamRequest, names: frozenset[str], client: Mapping[str, str]
) -> UpstreamRequest:
    given = {name: client[name] for name in names if name in client}
    if not given:
        return request
    return msgspec.structs.replace(request, headers={**request.headers, **given})


def _effective(timeouts: Timeouts, total: float | None) -> Timeouts:
    if total is None:
        return timeouts
    return Timeouts(
        connect=min(timeouts.connect, total),
        first_byte=min(timeouts.first_byte, total),
        total=total,
    )


async def relay(
    call: Call,
    adapter: ProviderAdapter,
    translator: StreamTranslator,
    response: UpstreamResponse,
) -> AsyncIterator[bytes]:
    """Upstream stream -> OpenAI SSE frames, batched per read. A stream that fails or ends
    without its terminator gets a final error event and no [DONE], so clients see the cut."""
    failure: GatewayError | None = None
    try:
        async for chunk in response.chunks():
            frames = translator.frames(chunk)
            if frames:
                if call.first_token_at is None:
                    call.first_token_at = perf_counter()
                yield frames[0] if len(frames) == 1 else b"".join(frames)
    except GatewayError as err:
        failure = err
    finally:
        response.close()
    call.usage = translator.usage
    if failure is None and not translator.finished:
        failure = UpstreamUnavailable(f"provider {adapter.name} ended the stream early")
    anthropic = call.upstream_endpoint is Endpoint.MESSAGES
    if failure is not None:
        call.stream_error = failure
        if anthropic:
            yield anthropic_error_event(failure)
        else:
            yield error_event(failure.message, error_type(failure), failure.code)
        return
    if not anthropic:  # Anthropic's format ends with its own message_stop event
        yield DONE
