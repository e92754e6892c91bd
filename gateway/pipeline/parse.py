"""Stage: read the body and decode it into a typed view; bad input is a 400 naming the field."""

from __future__ import annotations

import math
import re

import msgspec

from gateway.api.requests import (
    CHAT_DECODER,
    COMPLETION_DECODER,
    EMBEDDING_DECODER,
    EmbeddingView,
    RequestView,
)
from gateway.errors import InvalidRequest, MalformedJSON
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint

_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
TIMEOUT_HEADER = "x-gateway-timeout"


def _decode(endpoint: Endpoint, raw: bytes) -> RequestView:
    if endpoint is Endpoint.CHAT:
        return CHAT_DECODER.decode(raw)
    if endpoint is Endpoint.COMPLETIONS:
        return COMPLETION_DECODER.decode(raw)
    return EMBEDDING_DECODER.decode(raw)


def invalid_body(err: msgspec.MsgspecError, raw: bytes) -> InvalidRequest:
    if not isinstance(err, msgspec.ValidationError):  # ValidationError subclasses DecodeError
        if not raw.strip():
            return MalformedJSON("The request body is empty; expected a JSON object.")
        return MalformedJSON(f"We could not parse the JSON body of your request: {err}.")
    match = _PATH.match(str(err))
    assert match is not None
    problem, path = match["problem"], match["path"] or None
    missing = _MISSING.match(problem)
    if missing:
        field = f"{path}.{missing['field']}" if path else missing["field"]
        return InvalidRequest(
            f"Missing required parameter: '{field}'.",
            param=field,
            code="missing_required_parameter",
        )
    expected = _EXPECTED.match(problem)
    if expected:
        where = f"'{path}'" if path else "the request body"
        return InvalidRequest(
            f"Invalid type for {where}: expected {expected['expected']}, got {expected['got']}.",
            param=path,
            code="invalid_type",
        )
    where = f" for '{path}'" if path else ""
    return InvalidRequest(f"Invalid value{where}: {problem}", param=path, code="invalid_value")


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
            view = _decode(call.endpoint, raw)
        except msgspec.MsgspecError as err:
            raise invalid_body(err, raw) from None
        call.raw = raw
        call.view = view
        call.stream = not isinstance(view, EmbeddingView) and bool(view.stream)
        return await call_next(call)
