"""Stage: start the request's trace (gateway/tracing), right inside Account, which ends it
when the answer is done. Present only with `tracing.enabled`."""

from __future__ import annotations

from gateway.pipeline.call import Call, Handler, Reply
from gateway.tracing import Tracer


class TraceRequest:
    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        self._tracer.begin(call)
        return await call_next(call)
