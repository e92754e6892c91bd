"""Stages: serve /v1/responses (OpenAI's Responses API) from any model.

The front door (after Parse) turns the request into a chat completion, the conversation it
continues included, so every stage after it (routing, guardrails, limits, the cache, metering)
sees a chat call; the answer is turned back into a Response on its way out. Per attempt, a
target with its own Responses API (OpenAI, Azure) is sent the client's body instead, and its
answer passes through untouched (unless a stage changed the chat body or reads the answer as
chat: masked input, output guardrails).
Only the pipeline behind /v1/responses has these stages (server/app.py).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from gateway.api.validation import decode_request
from gateway.errors import GatewayError, InvalidRequest
from gateway.metering.tokens import count_request
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers import direct
from gateway.providers.base import Endpoint, Timeouts
from gateway.providers.transport import Transport
from gateway.responses import wire
from gateway.responses.exchange import Exchange
from gateway.responses.state import Conversations, Stored, partition_of
from gateway.routing.plan import Target

_ENCODER = msgspec.json.Encoder()


_COUNT_TIMEOUTS = Timeouts(connect=2.0, first_byte=5.0, idle=None, total=10.0)
LOG = logging.getLogger("gateway.responses")


class ResponsesFrontDoor:
    def __init__(self, conversations: Conversations) -> None:
        self._conversations = conversations

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        request = decode_request(wire.REQUEST_DECODER, call.raw)
        exchange = await self._exchange(call, request)
        call.exchange = exchange
        call.raw, call.view = exchange.chat_body, exchange.chat_view
        if call.endpoint is Endpoint.INPUT_TOKENS:
            # Counted at the end of the pipeline (ResponsesPassThrough): the guardrails, the
            # key's allow-list and its limits see the input first, as for the request itself.
            return await call_next(call)
        call.endpoint = call.upstream_endpoint = Endpoint.CHAT
        try:
            reply = await call_next(call)
        finally:
            # What the ledger and the access log name; and no stage outside this one reads
            # the answer as chat (the usage chunk's cost is a chat stream's).
            call.endpoint = Endpoint.RESPONSES
            call.view = exchange.native_view
        if not 200 <= reply.status < 300:
            return reply
        provider = call.target.provider.name if call.target is not None else ""
        keep = self._conversations.keep
        if reply.events is not None:
            reply.events = exchange.events(reply.events, provider, keep)
        elif reply.body is not None:
            reply.body = exchange.body(reply.body, provider, keep)
        return reply

    async def _exchange(self, call: Call, request: wire.ResponsesRequest) -> Exchange:
        partition = partition_of(call.principal)
        previous: Stored | None = None
        if request.previous_response_id:
            previous = await self._conversations.find(request.previous_response_id, partition)
            if previous is None:
                raise InvalidRequest(
                    f"Previous response with id '{request.previous_response_id[:100]}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
        return Exchange(request, call.raw, partition, previous, self._conversations.enabled)


# A target's override_params name chat fields: these have a Responses equivalent.
_OVERRIDES = {
    "temperature": "temperature", "top_p": "top_p", "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens", "parallel_tool_calls": "parallel_tool_calls",
    "user": "user",
}  # fmt: skip


def native_override(override: dict[str, Any] | None) -> dict[str, Any] | None:
    """The override in Responses fields, or None when one has no equivalent (that attempt is
    then translated, so the override still applies)."""
    if not override:
        return {}
    if any(name not in _OVERRIDES for name in override):
        return None
    return {_OVERRIDES[name]: value for name, value in override.items()}


class ResponsesPassThrough:
    """Per attempt: the target's own Responses API when it has one, else the chat body; and
    /v1/responses/input_tokens, answered here."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        exchange, target = call.exchange, call.target
        assert exchange is not None and target is not None
        if call.endpoint is Endpoint.INPUT_TOKENS:
            return await self._input_tokens(call, exchange, target)
        provider = target.provider
        override = native_override(call.override)
        if provider.supports(Endpoint.RESPONSES) and not call.chat_only and override is not None:
            exchange.native = True
            call.raw = exchange.native_body(provider.name, override)
            call.view = exchange.native_view
            call.upstream_endpoint = Endpoint.RESPONSES
        else:
            exchange.refuse_hosted(provider.name, provider.supports(Endpoint.RESPONSES))
            exchange.native = False
        return await call_next(call)

    async def _input_tokens(self, call: Call, exchange: Exchange, target: Target) -> Reply:
        """POST /v1/responses/input_tokens: asked of the target's provider when it has the
        endpoint (OpenAI's own count, `x-gateway-token-count: provider`), else counted by the
        gateway (exact for OpenAI models, an o200k_base estimate for others); the header says
        which. A provider that fails to answer is counted for, and so is an input a guardrail
        changed (the masked chat form is what may leave)."""
        adapter = target.provider
        asked = adapter.supports(Endpoint.RESPONSES) and adapter.vendor == "openai"
        if asked and not call.chat_only:
            body = exchange.native_body(adapter.name, {})
            request = adapter.build_request(
                Endpoint.INPUT_TOKENS, exchange.native_view, body, target.model
            )
            try:
                answer = await direct.call(adapter, self._transport, request, _COUNT_TIMEOUTS)
            except GatewayError as err:
                LOG.debug("input_tokens: %s did not answer (%s); counted here", adapter.name, err)
            else:
                headers = {"x-gateway-token-count": "provider", "content-type": "application/json"}
                return Reply(200, headers, body=answer)
        tokens, exact = count_request(call.raw, target.model)
        body = _ENCODER.encode({"object": "response.input_tokens", "input_tokens": tokens})
        return Reply(200, {"x-gateway-token-count": "counted" if exact else "estimate"}, body=body)
