"""Anthropic answers in OpenAI's format: whole messages, and named-event streams as chunks."""

from __future__ import annotations

import time

import msgspec

from gateway.api import anthropic as wire
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
from gateway.api.usage import CompletionTokensDetails, PromptTokensDetails, Usage
from gateway.errors import UpstreamError
from gateway.providers import finish
from gateway.providers.anthropic.errors import stream_error
from gateway.providers.anthropic.request import JSON_TOOL
from gateway.providers.sse import SSEStream, chunk_frame

_ENCODER = msgspec.json.Encoder()


def to_openai_usage(usage: wire.Usage) -> Usage:
    # Anthropic's input_tokens excludes cached tokens; OpenAI's prompt_tokens includes them.
    cache_read = usage.cache_read_input_tokens or 0
    cache_write = usage.cache_creation_input_tokens or 0
    prompt = usage.input_tokens + cache_read + cache_write
    split = usage.cache_creation
    hour = min(split.ephemeral_1h_input_tokens, cache_write) if split is not None else 0
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=usage.output_tokens,
        total_tokens=prompt + usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=cache_read, cache_write_tokens=cache_write, cache_write_1h_tokens=hour
        ),
        completion_tokens_details=CompletionTokensDetails(),
    )


def finish_reason(stop_reason: str | None, *, json_mode: bool) -> str:
    reason = finish.ANTHROPIC.get(stop_reason or "", "stop")
    return "stop" if json_mode and reason == "tool_calls" else reason


def to_chat_completion(body: bytes, provider: str) -> tuple[bytes, Usage, str | None]:
    try:
        message = wire.RESPONSE_DECODER.decode(body)
    except msgspec.MsgspecError:
        raise UpstreamError(
            f"provider {provider} returned a body that is not an Anthropic message", status=502
        ) from None
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[ToolCall] = []
    json_mode = False
    for raw in message.content:
        block = wire.decode_block(raw)
        if isinstance(block, wire.TextBlock):
            texts.append(block.text)
        elif isinstance(block, wire.ToolUseBlock):
            arguments = _ENCODER.encode(block.input).decode()
            if block.name == JSON_TOOL:
                json_mode = True
                texts.append(arguments)
            else:
                calls.append(
                    ToolCall(
                        id=block.id, function=FunctionCall(name=block.name, arguments=arguments)
                    )
                )
        elif isinstance(block, wire.ThinkingBlock):
            thinking.append(block.thinking)
    usage = to_openai_usage(message.usage)
    completion = ChatCompletion(
        id=message.id,
        object="chat.completion",
        created=int(time.time()),
        model=message.model,
        choices=[
            Choice(
                index=0,
                message=OutMessage(
                    content="".join(texts) if texts else None,
                    tool_calls=calls or None,
                    reasoning_content="".join(thinking) if thinking else None,
                ),
                finish_reason=finish_reason(message.stop_reason, json_mode=json_mode),
            )
        ],
        usage=usage,
    )
    return _ENCODER.encode(completion), usage, message.model or None


class ChunkStream(SSEStream):
    """Anthropic's event sequence as OpenAI chunks: the role once, tool calls numbered densely
    from 0 (never by content-block index), a finish chunk, then usage if the client asked."""

    __slots__ = (
        "_arguments_seen",
        "_created",
        "_id",
        "_json_block",
        "_model",
        "_provider",
        "_tool_index",
        "_usage_in",
        "_wants_usage",
        "served_model",
    )

    def __init__(self, provider: str, model: str, *, wants_usage: bool) -> None:
        super().__init__()
        self.served_model: str | None = None
        self._provider = provider
        self._wants_usage = wants_usage
        self._id = "chatcmpl-anthropic"
        self._model = model
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}  # content-block index -> tool-call index
        self._arguments_seen: set[int] = set()
        self._json_block = -1
        self._usage_in = wire.Usage()

    def _chunk(self, delta: Delta, finish_reason: str | None = None) -> bytes:
        choices = [ChunkChoice(index=0, delta=delta, finish_reason=finish_reason)]
        return chunk_frame(self._id, self._created, self._model, choices)

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if event is not None and event not in wire.EVENT_NAMES:
            return []  # Anthropic may add event kinds; unknown ones are skipped, as its SDK does
        try:
            message = wire.EVENT_DECODER.decode(data)
        except msgspec.MsgspecError:
            if event is None or event == "error":
                raise stream_error(data, self._provider) from None
            # A known event that cannot be read: the stream is broken, not merely shorter.
            raise UpstreamError(
                f"provider {self._provider} sent a {event} event that could not be read",
                status=502,
            ) from None
        if isinstance(message, wire.ContentBlockDelta):
            return self._on_delta(message)
        if isinstance(message, wire.ContentBlockStart):
            return self._on_block_start(message)
        if isinstance(message, wire.ContentBlockStop):
            return self._on_block_stop(message.index)
        if isinstance(message, wire.MessageStart):
            self._id = message.message.id
            self._model = message.message.model or self._model
            self.served_model = message.message.model or None  # priced by it (metering)
            self._usage_in = message.message.usage
            return [self._chunk(Delta(role="assistant", content=""))]
        if isinstance(message, wire.MessageDelta):
            return self._on_message_delta(message)
        if isinstance(message, wire.MessageStop):
            self.finished = True
            return self._usage_chunk()
        if isinstance(message, wire.ErrorEvent):
            raise stream_error(data, self._provider)
        return []  # ping

    def _on_block_start(self, message: wire.ContentBlockStart) -> list[bytes]:
        block = wire.decode_block(message.content_block)
        if isinstance(block, wire.ToolUseBlock):
            if block.name == JSON_TOOL:
                self._json_block = message.index
                return []
            index = self._tool_index[message.index] = len(self._tool_index)
            call = DeltaToolCall(
                index=index,
                id=block.id,
                type="function",
                function=DeltaFunction(name=block.name, arguments=""),
            )
            return [self._chunk(Delta(tool_calls=[call]))]
        if isinstance(block, wire.TextBlock) and block.text:
            return [self._chunk(Delta(content=block.text))]
        return []

    def _on_delta(self, message: wire.ContentBlockDelta) -> list[bytes]:
        delta = message.delta
        if isinstance(delta, wire.TextDelta):
            return [self._chunk(Delta(content=delta.text))] if delta.text else []
        if isinstance(delta, wire.InputJSONDelta):
            if not delta.partial_json:
                return []
            if message.index == self._json_block:
                return [self._chunk(Delta(content=delta.partial_json))]
            index = self._tool_index.get(message.index)
            if index is None:
                return []
            self._arguments_seen.add(index)
            call = DeltaToolCall(index=index, function=DeltaFunction(arguments=delta.partial_json))
            return [self._chunk(Delta(tool_calls=[call]))]
        if isinstance(delta, wire.ThinkingDelta) and delta.thinking:
            return [self._chunk(Delta(reasoning_content=delta.thinking))]
        return []

    def _on_block_stop(self, block_index: int) -> list[bytes]:
        index = self._tool_index.get(block_index)
        if index is None or index in self._arguments_seen:
            return []
        # A tool called without arguments streams none; "" would not parse as JSON.
        call = DeltaToolCall(index=index, function=DeltaFunction(arguments="{}"))
        return [self._chunk(Delta(tool_calls=[call]))]

    def _on_message_delta(self, message: wire.MessageDelta) -> list[bytes]:
        # message_delta usage is cumulative; input counts, when present, replace the start's.
        start, late = self._usage_in, message.usage
        self._usage_in = wire.Usage(
            input_tokens=late.input_tokens or start.input_tokens,
            output_tokens=late.output_tokens,
            cache_creation_input_tokens=late.cache_creation_input_tokens
            if late.cache_creation_input_tokens is not None
            else start.cache_creation_input_tokens,
            cache_read_input_tokens=late.cache_read_input_tokens
            if late.cache_read_input_tokens is not None
            else start.cache_read_input_tokens,
            cache_creation=late.cache_creation or start.cache_creation,
        )
        self.usage = to_openai_usage(self._usage_in)
        if message.delta.stop_reason is None:
            return []
        reason = finish_reason(message.delta.stop_reason, json_mode=self._json_block >= 0)
        return [self._chunk(Delta(), reason)]

    def _usage_chunk(self) -> list[bytes]:
        if self.usage is None:
            self.usage = to_openai_usage(self._usage_in)
        if not self._wants_usage:
            return []
        return [chunk_frame(self._id, self._created, self._model, [], self.usage)]


class NativeStream(SSEStream):
    """An Anthropic stream relayed to an Anthropic client as it is, read for usage and errors."""

    __slots__ = ("_provider", "_usage_in")

    def __init__(self, provider: str) -> None:
        super().__init__()
        self._provider = provider
        self._usage_in = wire.Usage()

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if event == "error":
            raise stream_error(data, self._provider)
        if event == "message_stop":
            self.finished = True
        elif event in ("message_start", "message_delta"):
            self._read_usage(data)
        name = event.encode() if event else b"message"
        return [wire.event_frame(name, data)]

    def _read_usage(self, data: bytes) -> None:
        try:
            message = wire.EVENT_DECODER.decode(data)
        except msgspec.MsgspecError:
            return
        if isinstance(message, wire.MessageStart):
            self._usage_in = message.message.usage
        elif isinstance(message, wire.MessageDelta):
            start = self._usage_in
            self._usage_in = msgspec.structs.replace(
                start,
                output_tokens=message.usage.output_tokens,
                input_tokens=message.usage.input_tokens or start.input_tokens,
            )
        self.usage = to_openai_usage(self._usage_in)
