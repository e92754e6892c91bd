"""Stage: serve /v1/messages (Anthropic's API) from any model.

An Anthropic target takes the request as it is. For any other target the request is translated
to a chat completion here, and the answer translated back on its way out, so the stages after
this one only ever see OpenAI's format. Only the pipeline behind Anthropic's routes has this
stage (server/app.py), so every call it sees is for /v1/messages or its count_tokens.
"""

from __future__ import annotations

import msgspec

from gateway.api import anthropic as wire
from gateway.api.requests import CHAT_DECODER
from gateway.api.validation import decode_request
from gateway.frontdoor.messages_request import to_openai_body
from gateway.frontdoor.messages_response import EventWriter, to_message
from gateway.metering.tokens import count_request
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint

_ENCODER = msgspec.json.Encoder()


class AnthropicFrontDoor:
    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        assert call.target is not None
        if call.target.provider.supports(call.endpoint):
            return await call_next(call)
        if call.endpoint is Endpoint.COUNT_TOKENS:
            return _count_tokens(call.raw, call.target.model)
        request = decode_request(wire.REQUEST_DECODER, call.raw)
        raw = to_openai_body(request, stream=call.stream)
        call.raw = raw
        call.view = CHAT_DECODER.decode(raw)
        call.upstream_endpoint = Endpoint.CHAT
        reply = await call_next(call)
        if reply.events is not None:
            reply.events = EventWriter(request.model).convert(reply.events)
        elif reply.body is not None:
            reply.body = to_message(reply.body)
        return reply


def _count_tokens(raw: bytes, model: str) -> Reply:
    """Providers without a counting endpoint get the gateway's count: exact for OpenAI models
    (their tokenizer, with OpenAI's per-message overhead), else an o200k_base estimate. The
    header says which."""
    decode_request(wire.COUNT_DECODER, raw)  # a malformed body is the client's 400
    tokens, exact = count_request(raw, model)
    body = _ENCODER.encode({"input_tokens": tokens})
    return Reply(200, {"x-gateway-token-count": "counted" if exact else "estimate"}, body=body)
