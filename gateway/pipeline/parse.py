"""Stage: read the body and decode it into a typed view; bad input is a 400 naming the field."""

from __future__ import annotations

import math

import msgspec

from gateway._native import jsonscan
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
from gateway.responses import wire as responses

TIMEOUT_HEADER = "x-gateway-timeout"
MAX_MODEL_NAME = 256
MAX_JSON_DEPTH = 128


def decode_view(endpoint: Endpoint, raw: bytes) -> RequestView:
    if endpoint is Endpoint.CHAT:
        return CHAT_DECODER.decode(raw)
    if endpoint is Endpoint.COMPLETIONS:
        return COMPLETION_DECODER.decode(raw)
    if endpoint is Endpoint.MESSAGES:
        return MESSAGES_DECODER.decode(raw)
    if endpoint is Endpoint.COUNT_TOKENS:
        return COUNT_VIEW_DECODER.decode(raw)
    if endpoint is Endpoint.RESPONSES:
        return responses.VIEW_DECODER.decode(raw)
    if endpoint is Endpoint.INPUT_TOKENS:
        return responses.INPUT_TOKENS_DECODER.decode(raw)
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


def check_structure(raw: bytes, where: str | None = None) -> None:
    """Refuses JSON nested deeper than MAX_JSON_DEPTH (every decoder after this one recurses)
    and, in a body, a top-level key given twice (the gateway would act on one value and a
    provider might read the other). `where` names a header holding the JSON; None is the body."""
    problem, key = jsonscan.inspect(raw, MAX_JSON_DEPTH)
    if problem == jsonscan.OK:
        return
    if problem == jsonscan.TOO_DEEP:
        at = f" under '{key}'" if key and where is None else ""
        what = f"The {where} header" if where else "The request body"
        raise InvalidRequest(
            f"{what} is nested more than {MAX_JSON_DEPTH} levels deep{at}.",
            param=where or key,
            code="json_too_deep",
        )
    if where is None:
        raise InvalidRequest(
            f"The request body gives the key '{key}' more than once.",
            param=key,
            code="duplicate_key",
        )


def _check_model(model: str) -> None:
    """A model name reaches URLs, headers, log lines and labels: control characters (CR, LF,
    NUL...) and line or paragraph separators are refused here, before any of them."""
    if len(model) > MAX_MODEL_NAME:
        raise InvalidRequest(
            f"Invalid 'model': longer than {MAX_MODEL_NAME} characters.",
            param="model",
            code="invalid_value",
        )
    if not model.isprintable():
        raise InvalidRequest(
            "Invalid 'model': it contains control characters.", param="model", code="invalid_value"
        )


class Parse:
    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        call.timeout = _timeout(call)
        raw = await call.http.read()
        check_structure(raw)
        try:
            view = decode_view(call.endpoint, raw)
        except msgspec.MsgspecError as err:
            raise invalid_body(err, raw) from None
        call.view = view  # first: the access log names what was asked for, even if refused
        _check_model(view.model)
        call.raw = raw
        call.stream = not isinstance(view, EmbeddingView) and bool(view.stream)
        return await call_next(call)
