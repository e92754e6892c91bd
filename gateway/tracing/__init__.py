"""OpenTelemetry traces: a span per request in OpenTelemetry's GenAI conventions, with a
child for the cache lookup and one per upstream attempt (retries and fallbacks visible), the
client's W3C `traceparent` continued, and each attempt's span sent to the provider as its
parent. Recorded on the event loop as plain objects (spans.py), encoded (_native/otlp.py)
and exported by a thread (export.py); sampling is parent-based, else by `sample_ratio` of
the trace id."""

from __future__ import annotations

from random import getrandbits
from time import perf_counter
from typing import TYPE_CHECKING

from gateway.config.schema import TracingCfg
from gateway.tracing.export import Exporter
from gateway.tracing.spans import CLIENT, SERVER, Span, Trace, parse_traceparent

if TYPE_CHECKING:
    from gateway.pipeline.call import Call

# gen_ai.operation.name for each endpoint (others keep their path as the name).
OPERATIONS = {
    "chat/completions": "chat", "messages": "chat", "completions": "text_completion",
    "embeddings": "embeddings",
}  # fmt: skip


class Tracer:
    def __init__(self, cfg: TracingCfg) -> None:
        self._cutoff = int(cfg.sample_ratio * (1 << 64))
        self._exporter = Exporter(cfg)

    def begin(self, call: Call) -> None:
        """The request's trace, when sampled: the client's sampled parent decides, else the
        trace id against the sample ratio (as OpenTelemetry's TraceIdRatioBased)."""
        parent = parse_traceparent(call.http.headers.get("traceparent"))
        if parent is not None:
            trace_id, parent_id, sampled = parent
            if not sampled:
                return
        else:
            low = getrandbits(64)  # the trace id's low half decides, before the id is made
            if low >= self._cutoff:
                return
            trace_id, parent_id = ((getrandbits(64) << 64) | low or 1).to_bytes(16, "big"), None
        call.trace = Trace(trace_id, parent_id, call.started)

    def finish(self, call: Call) -> None:
        """The root span, once the answer is done (a stream when it ends)."""
        trace = call.trace
        if trace is None:
            return
        view, usage, target = call.view, call.usage, call.target
        endpoint = call.endpoint.value
        operation = OPERATIONS.get(endpoint, endpoint)
        model = view.model if view is not None else None
        status = call.status
        attributes = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": model,
            "gen_ai.provider.name": target.provider.name if target is not None else None,
            "gen_ai.response.model": call.served_model
            or (target.model if target is not None else None),
            "gen_ai.usage.input_tokens": usage.prompt_tokens if usage is not None else None,
            "gen_ai.usage.output_tokens": usage.completion_tokens if usage is not None else None,
            "gen_ai.response.finish_reasons": trace.finish_reasons or None,
            "http.response.status_code": status,
            "gateway.request_id": call.request_id,
            "gateway.attempts": call.attempts,
            "gateway.fallback_path": call.fallback_path or None,
            "gateway.cache": call.cache_result,
            "gateway.guardrails": call.guardrails,
            "error.type": call.error if status >= 400 else None,
        }
        name = f"{operation} {model}" if model else operation
        error = call.error if status >= 500 else None
        root = Span(
            name[:200], trace.root_id, trace.parent, SERVER, trace.ns(call.started),
            trace.ns(perf_counter()), attributes, error,
        )  # fmt: skip
        self._exporter.submit(trace, root)

    async def start(self) -> None:
        self._exporter.start()

    async def stop(self) -> None:
        self._exporter.stop()


__all__ = ["CLIENT", "Trace", "Tracer"]
