"""The OpenAI error envelope, and the narrow view used to read errors out of upstream bodies."""

import msgspec
from msgspec import Struct


class ErrorDetail(Struct, kw_only=True):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(Struct):
    error: ErrorDetail


class UpstreamErrorDetail(Struct, kw_only=True):
    message: str | None = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class UpstreamErrorView(Struct):
    # Providers put a string, an object or nothing here; only objects are read field by field.
    error: UpstreamErrorDetail | str | None = None
    message: str | None = None


_ENCODER = msgspec.json.Encoder()
UPSTREAM_ERROR_DECODER = msgspec.json.Decoder(UpstreamErrorView)


def encode_error(message: str, type_: str, param: str | None, code: str | None) -> bytes:
    return _ENCODER.encode(
        ErrorEnvelope(ErrorDetail(message=message, type=type_, param=param, code=code))
    )


def error_event(message: str, type_: str, code: str | None) -> bytes:
    """A final SSE event for a stream that failed after its first byte (no [DONE] follows)."""
    return b"data: " + encode_error(message, type_, None, code) + b"\n\n"
