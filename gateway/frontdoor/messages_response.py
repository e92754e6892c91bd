"""OpenAI answers as Anthropic Messages: whole messages, and chunk streams as named events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from gateway.api import anthropic as wire
from gateway.api.chat import CHUNK_DECODER, ChatCompletionChunk, read_completion
from gateway.api.usage import Usage
from gateway.errors import GatewayError

_ENCODER = msgspec.json.Encoder()
_ARGS = msgspec.json.Decoder(dict[str, Any])
_ERROR_BODY = msgspec.json.Decoder(dict[str, Any])
STOP_REASON = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_id(openai_id: str) -> str:
    return openai_id if openai_id.startswith("msg_") else f"msg_{openai_id}"


def to_anthropic_usage(usage: Usage | None) -> wire.Usage:
    if usage is None:
        return wire.Usage()
    cached = usage.cached_tokens
    details = usage.prompt_tokens_details
    written = details.cache_write_tokens if details is not None else 0
    hour = details.hour_writes if details is not None else 0
    return wire.Usage(
        input_tokens=max(usage.prompt_tokens - cached - written, 0),
        output_tokens=usage.completion_tokens,
        cache_read_input_tokens=cached,
        cache_creation_input_tokens=written,
        cache_creation=wire.CacheCreation(
            ephemeral_5m_input_tokens=written - hour, ephemeral_1h_input_tokens=hour
        ),
    )


def _arguments(text: str) -> dict[str, Any]:
    try:
        return _ARGS.decode(text or "{}")
    except msgspec.MsgspecError:
        return {"_raw_arguments": text}  # keep what the model said rather than lose it


def to_message(body: bytes) -> bytes:
    completion, choice = read_completion(body)
    blocks: list[wire.Block] = []
    if choice.message.content:
        blocks.append(wire.TextBlock(text=choice.message.content))
    for call in choice.message.tool_calls or ():
        blocks.append(
            wire.ToolUseBlock(
                id=call.id, name=call.function.name, input=_arguments(call.function.arguments)
            )
        )
    message = wire.MessageOut(
        id=message_id(completion.id),
        model=completion.model,
        content=blocks,
        stop_reason=STOP_REASON.get(choice.finish_reason or "stop", "end_turn"),
        usage=to_anthropic_usage(completion.usage),
    )
    return _ENCODER.encode(message)


class EventWriter:
    """Turns the OpenAI SSE frames the pipeline produces into Anthropic's event sequence."""

    def __init__(self, model: str) -> None:
        self._model = model
        self._started = False
        self._open: int | None = None  # index of the open content block
        self._open_kind = ""
        self._blocks = 0
        self._tool_blocks: dict[int, int] = {}  # OpenAI tool-call index -> block index
        self._stop_reason = "end_turn"
        self._usage: Usage | None = None

    async def convert(self, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for batch in frames:
            out: list[bytes] = []
            for frame in batch.split(b"\n\n"):
                if frame.startswith(b"data: "):
                    out.extend(self._on_data(frame[6:]))
            if out:
                yield b"".join(out)

    def _event(self, name: str, document: dict[str, Any]) -> bytes:
        return wire.event_frame(name.encode(), _ENCODER.encode({"type": name, **document}))

    def _start(self, chunk: ChatCompletionChunk | None) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        message = wire.MessageOut(
            id=message_id(chunk.id if chunk else "gateway"),
            model=(chunk.model if chunk else "") or self._model,
            content=[],
            stop_reason=None,
            usage=wire.Usage(),
        )
        return [
            wire.event_frame(
                b"message_start",
                _ENCODER.encode({"type": "message_start", "message": message}),
            )
        ]

    def _on_data(self, payload: bytes) -> list[bytes]:
        if payload == b"[DONE]":
            return self._finish()
        if payload.startswith(b'{"error"'):
            return self._start(None) + self._error(payload)
        try:
            chunk = CHUNK_DECODER.decode(payload)
        except msgspec.MsgspecError:
            return []
        out = self._start(chunk)
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices[:1]:
            delta = choice.delta
            if delta.content:
                out += self._open_block("text", {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": delta.content}))
            for call in delta.tool_calls or ():
                out += self._tool_delta(call.index, call.id, call.function)
            if choice.finish_reason:
                self._stop_reason = STOP_REASON.get(choice.finish_reason, "end_turn")
        return out

    def _open_block(self, kind: str, block: dict[str, Any], *, force: bool = False) -> list[bytes]:
        if self._open is not None and self._open_kind == kind and not force:
            return []
        out = self._close_block()
        self._open, self._open_kind = self._blocks, kind
        self._blocks += 1
        out.append(
            self._event("content_block_start", {"index": self._open, "content_block": block})
        )
        return out

    def _close_block(self) -> list[bytes]:
        if self._open is None:
            return []
        index, self._open = self._open, None
        return [self._event("content_block_stop", {"index": index})]

    def _delta(self, delta: dict[str, Any], index: int | None = None) -> bytes:
        where = self._open if index is None else index
        return self._event("content_block_delta", {"index": where, "delta": delta})

    def _tool_delta(self, tool_index: int, call_id: str | None, function: Any) -> list[bytes]:
        out: list[bytes] = []
        block = self._tool_blocks.get(tool_index)
        if block is None:
            name = function.name if function is not None and function.name else ""
            out += self._open_block(
                "tool_use",
                {
                    "type": "tool_use",
                    "id": call_id or f"toolu_{tool_index}",
                    "name": name,
                    "input": {},
                },
                force=True,
            )
            block = self._tool_blocks[tool_index] = self._blocks - 1
        if function is not None and function.arguments:
            out.append(
                self._delta({"type": "input_json_delta", "partial_json": function.arguments}, block)
            )
        return out

    def _finish(self) -> list[bytes]:
        out = self._start(None) + self._close_block()
        usage = to_anthropic_usage(self._usage)
        out.append(
            self._event(
                "message_delta",
                {
                    "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                    "usage": {
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                        "cache_read_input_tokens": usage.cache_read_input_tokens,
                        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
                    },
                },
            )
        )
        out.append(self._event("message_stop", {}))
        return out

    def _error(self, payload: bytes) -> list[bytes]:
        try:
            detail = _ERROR_BODY.decode(payload).get("error") or {}
        except msgspec.MsgspecError:
            detail = {}
        err = GatewayError(str(detail.get("message") or "The provider's stream failed."))
        err.status = 529 if detail.get("code") == "overloaded" else 500
        err.code = detail.get("code") if isinstance(detail.get("code"), str) else None
        return [wire.error_event(err)]
