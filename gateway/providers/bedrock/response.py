"""Bedrock Converse answers in OpenAI's format, ConverseStream events as chunks, and errors."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import msgspec

from gateway.api.chat import (
    ChatCompletion,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCall,
    OutMessage,
    ToolCall,
)
from gateway.api.usage import PromptTokensDetails, Usage
from gateway.errors import GatewayError, UpstreamError
from gateway.providers import finish
from gateway.providers.bedrock import wire
from gateway.providers.bedrock.eventstream import EventStreamDecoder
from gateway.providers.sse import chunk_frame

_ENCODER = msgspec.json.Encoder()
# Bedrock names its errors in a header (x-amzn-errortype) and in stream exception events.
_ERRORS: dict[str, tuple[int, str | None]] = {
    "ValidationException": (400, None),
    "AccessDeniedException": (403, "permission_denied"),
    "UnrecognizedClientException": (401, "invalid_api_key"),
    "ResourceNotFoundException": (404, "model_not_found"),
    "ThrottlingException": (429, "rate_limit_exceeded"),
    "ServiceQuotaExceededException": (429, "rate_limit_exceeded"),
    "ModelTimeoutException": (504, "upstream_timeout"),
    "ServiceUnavailableException": (503, "overloaded"),
    "InternalServerException": (500, None),
    "ModelErrorException": (502, None),
    "ModelStreamErrorException": (502, None),
    "ModelNotReadyException": (503, "overloaded"),
}
_CONTEXT_PHRASES = ("input is too long", "too many input tokens", "prompt is too long")


def to_usage(usage: wire.Usage | None) -> Usage | None:
    if usage is None:
        return None
    # Converse reports inputTokens without the cached ones, like Anthropic.
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_write_input_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=usage.cache_read_input_tokens,
            cache_write_tokens=usage.cache_write_input_tokens,
        ),
    )


def to_chat_completion(body: bytes, provider: str, model: str) -> tuple[bytes, Usage | None]:
    try:
        response = wire.RESPONSE.decode(body)
    except msgspec.MsgspecError:
        raise UpstreamError(
            f"provider {provider} returned a body that is not a Converse response", status=502
        ) from None
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[ToolCall] = []
    message = response.output.message
    for block in message.content if message else ():
        if block.text is not None:
            texts.append(block.text)
        elif block.tool_use is not None:
            arguments = _ENCODER.encode(block.tool_use.input).decode()
            function = FunctionCall(name=block.tool_use.name, arguments=arguments)
            calls.append(ToolCall(id=block.tool_use.tool_use_id, function=function))
        elif block.reasoning_content and block.reasoning_content.reasoning_text:
            thoughts.append(block.reasoning_content.reasoning_text.text)
    usage = to_usage(response.usage)
    completion = ChatCompletion(
        id=f"chatcmpl-{os.urandom(12).hex()}",
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=0,
                message=OutMessage(
                    content="".join(texts) if texts else None,
                    tool_calls=calls or None,
                    reasoning_content="".join(thoughts) if thoughts else None,
                ),
                finish_reason=finish.BEDROCK.get(response.stop_reason or "", "stop"),
            )
        ],
        usage=usage,
    )
    return _ENCODER.encode(completion), usage


def to_upstream_error(
    status: int, kind: str, message: str, headers: Mapping[str, str]
) -> UpstreamError:
    mapped_status, code = _ERRORS.get(kind, (status, None))
    message = message or f"Bedrock returned HTTP {status}"
    if "security token" in message.lower() or "invalid api key" in message.lower():
        mapped_status, code = 401, "invalid_api_key"
    if mapped_status == 400 and any(p in message.lower() for p in _CONTEXT_PHRASES):
        code = "context_length_exceeded"
    if not 400 <= mapped_status <= 599:
        mapped_status = 502
    passed = {"retry-after": headers["retry-after"]} if "retry-after" in headers else {}
    return UpstreamError(message, status=mapped_status, code=code, headers=passed)


def map_error(status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
    kind = headers.get("x-amzn-errortype", "").split(":", 1)[0]
    try:
        detail = wire.ERROR.decode(body)
        message = detail.message or detail.Message or ""
    except msgspec.MsgspecError:
        message = body[:300].decode("utf-8", "replace").strip()
    return to_upstream_error(status, kind, message, headers)


class ChunkStream:
    """ConverseStream's binary events as OpenAI chunks; tool calls numbered from 0."""

    __slots__ = (
        "_created",
        "_decoder",
        "_id",
        "_model",
        "_tool_index",
        "_wants_usage",
        "failure",
        "finished",
        "usage",
    )

    def __init__(self, model: str, *, wants_usage: bool) -> None:
        self._decoder = EventStreamDecoder()
        self._model = model
        self._wants_usage = wants_usage
        self._created = int(time.time())
        self._id = f"chatcmpl-{os.urandom(12).hex()}"
        self._tool_index: dict[int, int] = {}  # content-block index -> tool-call index
        self.usage: Usage | None = None
        self.finished = False
        self.failure: GatewayError | None = None

    def _chunk(self, delta: Delta | None, reason: str | None = None) -> bytes:
        choices = [] if delta is None else [ChunkChoice(index=0, delta=delta, finish_reason=reason)]
        usage = self.usage if delta is None else None
        return chunk_frame(self._id, self._created, self._model, choices, usage)

    def frames(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        for message in self._decoder.feed(chunk):
            headers = message.headers
            if headers.get(":message-type") == "exception":
                error = self._exception(headers.get(":exception-type", ""), message.payload)
                if not out:
                    raise error
                self.failure = error  # what came before it in this read still goes out
                break
            try:
                payload = wire.PAYLOAD.decode(message.payload)
            except msgspec.MsgspecError:
                # An event that cannot be read is a failed stream, never a silent gap.
                error = UpstreamError("Bedrock sent a stream event that is not JSON", status=502)
                if not out:
                    raise error from None
                self.failure = error
                break
            out.extend(self._event(headers.get(":event-type", ""), payload))
        return out

    @property
    def buffered(self) -> int:
        return self._decoder.buffered

    def _exception(self, kind: str, payload: bytes) -> UpstreamError:
        kind = kind[:1].upper() + kind[1:]  # stream events spell them throttlingException
        try:
            text = wire.ERROR.decode(payload).message or ""
        except msgspec.MsgspecError:
            text = ""
        return to_upstream_error(502, kind, text or "Bedrock's stream failed", {})

    def _event(self, kind: str, payload: wire.StreamPayload) -> list[bytes]:
        if kind == "messageStart":
            return [self._chunk(Delta(role="assistant", content=""))]
        if kind == "contentBlockStart" and payload.start and payload.start.tool_use:
            use = payload.start.tool_use
            index = self._tool_index[payload.content_block_index] = len(self._tool_index)
            head = DeltaToolCall(
                index=index,
                id=use.tool_use_id,
                type="function",
                function=DeltaFunction(name=use.name, arguments=""),
            )
            return [self._chunk(Delta(tool_calls=[head]))]
        if kind == "contentBlockDelta" and payload.delta:
            return self._delta(payload.content_block_index, payload.delta)
        if kind == "messageStop":
            self.finished = True
            reason = finish.BEDROCK.get(payload.stop_reason or "", "stop")
            return [self._chunk(Delta(), reason)]
        if kind == "metadata" and payload.usage is not None:
            self.usage = to_usage(payload.usage)
            return [self._chunk(None)] if self._wants_usage else []
        return []

    def _delta(self, block: int, delta: wire.BlockDelta) -> list[bytes]:
        if delta.text:
            return [self._chunk(Delta(content=delta.text))]
        if delta.tool_use is not None and delta.tool_use.input and block in self._tool_index:
            part = DeltaToolCall(
                index=self._tool_index[block],
                function=DeltaFunction(arguments=delta.tool_use.input),
            )
            return [self._chunk(Delta(tool_calls=[part]))]
        if delta.reasoning_content is not None and delta.reasoning_content.text:
            return [self._chunk(Delta(reasoning_content=delta.reasoning_content.text))]
        return []
