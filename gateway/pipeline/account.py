"""Stage: record every request's outcome, latency, tokens and cost, when its response is done.

A whole answer is recorded once the edge has written it (Reply.after), a stream when it ends:
bookkeeping never sits between the provider's answer and the client.

Outermost, so that errors raised by any later stage are counted too. For streams the record is
written when the stream ends, whether it completed, failed, or the client went away.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from functools import partial
from time import perf_counter

from gateway.api.requests import wants_usage
from gateway.errors import GatewayError, error_type, fault_of
from gateway.metering.bodies import BodyLog
from gateway.metering.record import Metering
from gateway.metering.usage_chunk import with_cost
from gateway.observability import metrics
from gateway.observability.access import AccessLog
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint

CLIENT_CLOSED = 499  # nginx's convention for "the client went away before the answer"


COST_HEADER = "x-gateway-cost"
GUARDRAILS_HEADER = "x-gateway-guardrails"  # a block's verdicts, kept in its ledger row


# OpenTelemetry's gen_ai.operation.name for each endpoint the GenAI series count.
_OPERATIONS = {
    Endpoint.CHAT: "chat",
    Endpoint.MESSAGES: "chat",
    Endpoint.RESPONSES: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
}


class Account:
    def __init__(
        self,
        access_log: AccessLog | None,
        metering: Metering | None = None,
        genai: bool = False,
        outcome: Callable[[int], None] | None = None,
        finish: Callable[[Call], None] | None = None,
        bodies: BodyLog | None = None,
        begin: Callable[[Call], None] | None = None,
    ) -> None:
        self._access_log = access_log
        self._metering = metering
        self._genai = genai  # the GenAI convention series (metrics.genai)
        self._outcome = outcome  # each answer's status, for the alerts' error rate
        self._finish = finish  # ends the request's trace (gateway/tracing)
        self._bodies = bodies  # request logs with bodies, where asked (metering/bodies.py)
        # Starts the request's trace (gateway/tracing): here rather than in a stage of its
        # own, which cost every traced request a coroutine layer.
        self._begin = begin

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        metrics.LEDGER.started()
        if self._begin is not None:
            self._begin(call)
        try:
            reply = await call_next(call)
        except GatewayError as err:
            call.status = err.status
            call.error = error_type(err)
            call.error_fault = fault = fault_of(err)
            if call.guardrails is None:
                call.guardrails = err.headers.get(GUARDRAILS_HEADER)
            metrics.observe_error(fault)
            self._record(call)
            raise
        except asyncio.CancelledError:
            call.status = CLIENT_CLOSED
            call.error_fault = "caller"
            self._record(call)
            raise
        except BaseException:
            call.status = 500
            call.error_fault = "gateway"
            self._record(call)
            raise
        call.status = reply.status
        metering = self._metering
        bodies = self._bodies
        logged = bodies is not None and bodies.wanted(call)
        if reply.events is None:
            if metering is not None and 200 <= reply.status < 300:
                cost = metering.header(call)
                if cost is not None:
                    reply.headers[COST_HEADER] = cost
            if logged and bodies is not None and reply.body is not None:
                bodies.capture(call, reply.body)
            if call.trace is not None and reply.body is not None:
                call.trace.note_finish(reply.body)
            reply.after = partial(self._record, call)
        else:
            events = reply.events
            if metering is not None and call.view is not None and wants_usage(call.view):
                events = with_cost(call, metering, events)
            reply.events = self._recorded_after(call, events, bodies if logged else None)
        return reply

    async def _recorded_after(
        self, call: Call, events: AsyncIterator[bytes], bodies: BodyLog | None = None
    ) -> AsyncIterator[bytes]:
        try:
            async with aclosing(events):  # type: ignore[type-var]
                trace = call.trace
                async for chunk in events:
                    if bodies is not None:
                        bodies.capture(call, chunk)
                    if trace is not None:
                        trace.note_finish(chunk)
                    yield chunk
        except (asyncio.CancelledError, GeneratorExit, ConnectionError):
            call.status = CLIENT_CLOSED
            call.error_fault = "caller"
            raise
        finally:
            self._record(call)

    def _record(self, call: Call) -> None:
        metrics.LEDGER.ended()
        now = perf_counter()
        model, provider = call.model_label, call.provider_label
        first_token = call.first_token_at - call.started if call.first_token_at else None
        metrics.observe_request(
            model, provider, call.status, now - call.started, first_token, call.upstream_seconds
        )
        if call.usage is not None:
            metrics.observe_usage(model, provider, call.usage)
        operation = _OPERATIONS.get(call.endpoint) if self._genai else None
        if operation is not None and call.target is not None:
            metrics.observe_genai(
                operation, provider, model, now - call.started, first_token, call.usage
            )
        if call.stream_error is not None:
            metrics.observe_stream_error(model, provider)
        if self._metering is not None:
            bodies = self._bodies
            texts = (
                bodies.texts(call) if bodies is not None and bodies.wanted(call) else (None, None)
            )
            self._metering.record(call, model, now - call.started, first_token, texts)
        if call.on_end is not None:
            call.on_end(call)
        if self._outcome is not None:
            self._outcome(call.status)
        if self._finish is not None:
            self._finish(call)
        log = self._access_log
        if log is not None:
            usage = call.usage
            view = call.view
            log.request((
                time.time(),
                call.request_id,
                call.endpoint.value,
                view.model if view is not None else None,  # what was asked, not the label
                provider,
                call.status,
                (now - call.started) * 1000,
                usage.prompt_tokens if usage else 0,
                usage.completion_tokens if usage else 0,
                call.stream_error is not None,
            ))  # fmt: skip
