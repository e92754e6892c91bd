"""OTLP's ExportTraceServiceRequest, encoded straight to protobuf bytes: the specification of
_otlp_c.pyx, which must write the same bytes.

opentelemetry-proto's generated types cost ~100 µs a trace to build and serialise here, in a
thread that shares the GIL with the event loop (a third off throughput at 100% sampling,
benchmarks/RESULTS.md); this costs ~28 µs, the compiled twin a fraction of that. The field
numbers are opentelemetry-proto's (trace/v1/trace.proto, common/v1), and the tests decode what
both write with the official types. A span is anything with the slots of
gateway/tracing/spans.py's Span; a trace, of its Trace."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

_FIXED64 = struct.Struct("<Q").pack
_DOUBLE = struct.Struct("<d").pack
_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


@lru_cache(maxsize=4096)
def _string(number: int, value: str) -> bytes:
    return _field(number, value.encode())


@lru_cache(maxsize=4096)
def _key(key: str) -> bytes:
    return _string(1, key)  # KeyValue.key


def _any(value: object) -> bytes:
    """AnyValue: string 1, bool 2, int64 3, double 4, array 5."""
    if isinstance(value, str):
        return _string(1, value)
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE(value)
    if isinstance(value, (list, tuple)):
        return _field(5, b"".join(_field(1, _string(1, str(v))) for v in value))
    return _string(1, str(value))


@lru_cache(maxsize=16384, typed=True)
def _attribute(number: int, key: str, value: str | int | float | bool) -> bytes:
    """One framed KeyValue; most of a gateway's attributes repeat (operation, provider,
    model, status), so their encodings are remembered whole."""
    return _field(number, _key(key) + _field(2, _any(value)))


def attributes(number: int, items: Iterable[tuple[str, object]]) -> bytes:
    return b"".join([
        _attribute(number, key, value)
        if not isinstance(value, (list, tuple))
        else _field(number, _key(key) + _field(2, _any(value)))
        for key, value in items
        if value is not None
    ])  # fmt: skip


def span(trace_id: bytes, s: Any) -> bytes:
    body = [
        b"\x0a\x10", trace_id,  # 1: trace_id (16 bytes)
        b"\x12\x08", s.span_id,  # 2: span_id (8 bytes)
    ]  # fmt: skip
    if s.parent:
        body += (b"\x22\x08", s.parent)  # 4: parent_span_id
    body += (
        _string(5, s.name),
        b"\x30", _varint(s.kind),  # 6: kind
        b"\x39", _FIXED64(s.start),  # 7: start_time_unix_nano
        b"\x41", _FIXED64(s.end),  # 8: end_time_unix_nano
        attributes(9, s.attributes.items()),
    )  # fmt: skip
    if s.error:
        body.append(_field(15, _string(2, s.error[:200]) + b"\x18" + _varint(_ERROR)))
    return _field(2, b"".join(body))  # ScopeSpans.spans


def export_request(
    batch: Iterable[tuple[Any, Any]], resource: dict[str, str], scope: tuple[str, str]
) -> bytes:
    """ExportTraceServiceRequest with one ResourceSpans holding one ScopeSpans."""
    spans = b"".join(
        span(trace.trace_id, each) for trace, root in batch for each in (*trace.spans, root)
    )
    scope_spans = _field(1, _string(1, scope[0]) + _string(2, scope[1])) + spans
    resource_spans = _field(1, attributes(1, resource.items())) + _field(2, scope_spans)
    return _field(1, resource_spans)
