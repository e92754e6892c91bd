"""What a traced request records on the event loop: plain slots and tuples, a few hundred
nanoseconds a span. The exporter's thread turns them into OTLP protobuf (export.py)."""

from __future__ import annotations

import random
import re
import time
from time import perf_counter
from typing import Any

INTERNAL, SERVER, CLIENT = 1, 2, 3  # OTLP's SpanKind values
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_bits = random.getrandbits
_FINISH = re.compile(rb'"(?:finish|stop)_reason"\s*:\s*"([a-z_]{1,40})"')


def new_id(size: int) -> bytes:
    """A random span (8) or trace (16) id: not a secret, so the fast generator (as
    OpenTelemetry's SDK does), never all zeros."""
    return (_bits(size * 8) or 1).to_bytes(size, "big")


def parse_traceparent(value: str | None) -> tuple[bytes, bytes, bool] | None:
    """(trace id, parent span id, sampled) from a valid W3C traceparent, else None."""
    if not value:
        return None
    found = _TRACEPARENT.match(value.strip())
    if found is None or found[1] == _ZERO_TRACE or found[2] == _ZERO_SPAN:
        return None
    return bytes.fromhex(found[1]), bytes.fromhex(found[2]), bool(int(found[3], 16) & 1)


class Span:
    __slots__ = ("attributes", "end", "error", "kind", "name", "parent", "span_id", "start")

    def __init__(  # noqa: PLR0913 - one value per OTLP field
        self,
        name: str,
        span_id: bytes,
        parent: bytes | None,
        kind: int,
        start: int,
        end: int,
        attributes: dict[str, Any],
        error: str | None = None,
    ) -> None:
        self.name = name
        self.span_id = span_id
        self.parent = parent
        self.kind = kind
        self.start = start  # unix nanoseconds
        self.end = end
        self.attributes = attributes
        self.error = error


class Trace:
    """One request's spans: the root (finished last) and its children."""

    __slots__ = (
        "_perf0", "_wall0", "attempt_id", "finish_reasons", "parent", "root_id", "spans",
        "trace_id",
    )  # fmt: skip

    def __init__(self, trace_id: bytes, parent: bytes | None, started: float) -> None:
        self.trace_id = trace_id
        self.parent = parent  # the client's span, when it sent a traceparent
        self.root_id = new_id(8)
        self.attempt_id: bytes | None = None  # the upstream attempt in progress (traceparent)
        self.spans: list[Span] = []
        self.finish_reasons: list[str] = []
        self._perf0 = started
        self._wall0 = time.time_ns() - int((perf_counter() - started) * 1e9)

    def ns(self, perf: float) -> int:
        """A perf_counter() reading as unix nanoseconds."""
        return self._wall0 + int((perf - self._perf0) * 1e9)

    def child(  # noqa: PLR0913 - one value per OTLP field
        self,
        name: str,
        started: float,
        ended: float,
        attributes: dict[str, Any],
        *,
        kind: int = INTERNAL,
        span_id: bytes | None = None,
        error: str | None = None,
    ) -> None:
        self.spans.append(Span(
            name, span_id or new_id(8), self.root_id, kind, self.ns(started), self.ns(ended),
            attributes, error,
        ))  # fmt: skip

    def note_finish(self, data: bytes) -> None:
        """The finish reasons an answer (or a stream's frame) states, OpenAI's or Anthropic's.
        Each `_reason"` is found by a byte search and the key around it matched in place: a
        regex findall over the whole answer cost several times more."""
        at = data.find(b'_reason"')
        while at >= 0:
            found = _FINISH.match(data, data.rfind(b'"', max(0, at - 8), at))
            if found is not None:
                reason = found[1].decode()
                if reason not in self.finish_reasons and len(self.finish_reasons) < 8:
                    self.finish_reasons.append(reason)
            at = data.find(b'_reason"', at + 8)

    def traceparent(self) -> str | None:
        """What the provider is sent: this trace, the current attempt as its parent."""
        if self.attempt_id is None:
            return None
        return f"00-{self.trace_id.hex()}-{self.attempt_id.hex()}-01"
