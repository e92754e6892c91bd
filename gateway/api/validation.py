"""Turns msgspec decode errors into 400s that name the offending field, as OpenAI does."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec

from gateway.errors import InvalidRequest, MalformedJSON

T = TypeVar("T")
_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")


def invalid_body(err: msgspec.MsgspecError, raw: bytes) -> InvalidRequest:
    if not isinstance(err, msgspec.ValidationError):  # ValidationError subclasses DecodeError
        if not raw.strip():
            return MalformedJSON("The request body is empty; expected a JSON object.")
        return MalformedJSON(f"We could not parse the JSON body of your request: {err}.")
    match = _PATH.match(str(err))
    assert match is not None
    problem, path = match["problem"], match["path"] or None
    unknown = _UNKNOWN.match(problem)
    if unknown:
        field = f"{path}.{unknown['field']}" if path else unknown["field"]
        return InvalidRequest(
            f"Unknown parameter: '{field}'.", param=field, code="unknown_parameter"
        )
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


def decode_request(decoder: msgspec.json.Decoder[T], raw: bytes) -> T:
    try:
        return decoder.decode(raw)
    except msgspec.MsgspecError as err:
        raise invalid_body(err, raw) from None
