"""Stage: read the body and decode it into a typed view; bad input is a 400 naming the field."""

from __future__ import annotations

import math

import msgspec

from gateway.api.anthropic import COUNT_VIEW_DECODER
from gateway.api.anthropic import VIEW_DECODER as MESSAGES_DECODER
from gateway.api.requests import (
    CHAT_DECODER,
    COMPLETION_DECODER,
    EMBEDDING_DECODER,
    EmbeddingView,
    RequestView,
)
from gateway.api.validation import invalid_body
from gateway.errors import InvalidRequest
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint

TIMEOUT_HEADER = "x-gateway-timeout"


def decode_view(endpoint: Endpoint, raw: bytes) -> RequestView:
    if endpoint is Endpoint.CHAT:
        return CHAT_DECODER.decode(raw)
    if endpoint is Endpoint.COMPLETIONS:
        return COMPLETION_DECODER.decode(raw)
    if endpoint is Endpoint.MESSAGES:
        return MESSAGES_DECODER.decode(raw)
    if endpoint is Endpoint.COUNT_TOKENS:
        return COUNT_VIEW_DECODER.decode(raw)
    return EMBEDDING_DECODER.decode(raw)


def _timeout(call: Call) -> float | None:
    value = call.http.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidRequest(
            f"Invalid {TIMEOUT_HEADER} header: expected a positive number of seconds.",
            param=TIMEOUT_HEADER,
            code="invalid_value",
        )
    return seconds


class Parse:
    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        call.timeout = _timeout(call)
        raw = await call.http.read()
        try:
            view = decode_view(call.endpoint, raw)
        except msgspec.MsgspecError as err:
            raise invalid_body(err, raw) from None
        call.raw = raw
        call.view = view
        call.stream = not isinstance(view, EmbeddingView) and bool(view.stream)
        return await call_next(call)
