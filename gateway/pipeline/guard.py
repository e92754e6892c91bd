"""Stage: the guardrails (gateway/guardrails). Input is scanned before the cache and the
provider see it, masked or refused; the answer, whole or streamed, from the cache or a
provider, is scanned on its way out."""

from __future__ import annotations

from time import perf_counter

from gateway.errors import InvalidRequest
from gateway.guardrails.answer import AnthropicStream, OpenAIStream, guard_body, withhold
from gateway.guardrails.detector import Numbering
from gateway.guardrails.policy import HEADER, Guardrail, Guardrails, Plan
from gateway.guardrails.report import Report
from gateway.guardrails.request import RequestGuard
from gateway.guardrails.restore import Restorer, restorer_for
from gateway.guardrails.texts import answer_texts, decode, encode
from gateway.observability import metrics
from gateway.pipeline.call import Call, Handler, Reply
from gateway.pipeline.parse import decode_view
from gateway.providers.base import COUNTING, Endpoint


class Guard:
    def __init__(self, guardrails: Guardrails) -> None:
        self._guardrails = guardrails

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        plan = self._plan(call)
        inputs, outputs, judges = plan.inputs, plan.outputs, plan.answer_judges
        if call.endpoint in COUNTING:
            outputs = judges = ()  # a count is no answer to scan
        if not inputs and not outputs and not judges:
            return await call_next(call)
        started = perf_counter()
        numbering: Numbering | None = None
        report: Report | None = None
        restorer = None
        # The common case skips the rest: no input guardrail finds anything in the body.
        if inputs and not (plan.scan_only and not any(g.detector.quick(call.raw) for g in inputs)):
            numbering, report = {}, Report()
            await self._request(call, plan, numbering, report)
            restorer = restorer_for(numbering) if plan.restore else None
        exchange = call.exchange
        if exchange is not None and inputs:
            unscanned = exchange.unscanned_json()
            if unscanned and any(
                g.input and g.scans and g.detector.quick(unscanned) for g in inputs
            ):
                # What a hosted tool's item, a reasoning summary or a prompt's variables hold
                # is not in the chat form the scan read: the request goes as that chat form,
                # without them (or is refused when it needs them), rather than unscanned.
                call.chat_only = True
        spent = perf_counter() - started
        if outputs or restorer is not None or judges:
            call.chat_only = True  # the answer is read as chat
        if not outputs and restorer is None and not judges:
            metrics.observe_guardrail_seconds(spent)
            reply = await call_next(call)
        else:
            reply = await call_next(call)
            if reply.status == 200:
                started = perf_counter()
                if numbering is None or report is None:
                    numbering, report = {}, Report()
                self._answer(call, reply, outputs, numbering, report, restorer)
                if judges and reply.body is not None:
                    await self._judge_answer(call, reply, judges, report)
                spent += perf_counter() - started
            metrics.observe_guardrail_seconds(spent)
        if report:
            reply.headers[HEADER] = call.guardrails = report.header()
        return reply

    @staticmethod
    async def _request(call: Call, plan: Plan, numbering: Numbering, report: Report) -> None:
        assert call.view is not None
        guard = RequestGuard(call.body_endpoint, numbering, report)
        raw = guard.run(call.raw, call.view.model, plan.inputs)
        if guard.changed:
            call.chat_only = True  # the masked body is the one to send
            call.raw = raw
            call.view = decode_view(call.body_endpoint, raw)
        for g in plan.judges:
            assert g.judge is not None
            await g.judge.check(g, guard.texts(raw), report)

    @staticmethod
    async def _judge_answer(
        call: Call, reply: Reply, judges: tuple[Guardrail, ...], report: Report
    ) -> None:
        """A whole answer's judges (a stream's answer is not judged: it is sent as it comes)."""
        endpoint = call.endpoint
        body = reply.body
        if endpoint not in (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.MESSAGES) or not body:
            return
        texts = [t if isinstance(t, str) else t.decode() for t in answer_texts(body) or ()]
        for g in judges:
            assert g.judge is not None
            if await g.judge.check_answer(g, texts, report):
                doc = decode(body)
                withhold(endpoint, doc)
                reply.body = encode(doc)
                return

    def _plan(self, call: Call) -> Plan:
        route = call.route
        model = route.name if route is not None and route.configured else None
        principal = call.principal
        key_policy = principal.key.guardrails if principal is not None else None
        try:
            return self._guardrails.plan(model, key_policy, call.http.headers.get(HEADER))
        except LookupError as err:
            raise InvalidRequest(
                f"Unknown guardrail in the {HEADER} header: {str(err)[:64]!r}.",
                param=HEADER,
                code="unknown_guardrail",
            ) from None

    def _answer(
        self,
        call: Call,
        reply: Reply,
        outputs: tuple[Guardrail, ...],
        numbering: Numbering,
        report: Report,
        restorer: Restorer | None,
    ) -> None:
        endpoint = call.endpoint
        if endpoint not in (Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.MESSAGES):
            return
        window = self._guardrails.window
        if reply.events is not None:
            args = (outputs, numbering, report, window, restorer)
            if endpoint is Endpoint.MESSAGES:
                reply.events = AnthropicStream(*args).convert(reply.events)
            else:
                reply.events = OpenAIStream(endpoint, *args).convert(reply.events)
        elif reply.body is not None:
            reply.body = guard_body(endpoint, reply.body, outputs, numbering, report, restorer)
