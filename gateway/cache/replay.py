"""Streams and whole answers as one another: a streamed answer is assembled as it passes, so it
can be stored as a chat completion; a stored completion is replayed as a proper SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing

import msgspec

from gateway.api.chat import (
    CHUNK_DECODER,
    COMPLETION_DECODER,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCall,
    OutMessage,
    ToolCall,
)
from gateway.api.usage import Usage
from gateway.providers.sse import chunk_frame

_ENCODE = msgspec.json.Encoder()
_PIECE = 64  # characters of content per replayed chunk


class _Choice:
    __slots__ = ("calls", "content", "finish", "reasoning")

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, list[str]] = {}  # index -> [id, name, arguments...]
        self.finish: str | None = None


class StreamAssembler:
    """Reads the OpenAI chunks going to the client and rebuilds the whole answer."""

    __slots__ = ("_buffer", "_choices", "_created", "_id", "_model", "done", "usage")

    def __init__(self) -> None:
        self._buffer = b""
        self._choices: dict[int, _Choice] = {}
        self._id = ""
        self._model = ""
        self._created = 0
        self.usage: Usage | None = None
        self.done = False

    def feed(self, batch: bytes) -> None:
        frames = (self._buffer + batch).split(b"\n\n")
        self._buffer = frames.pop()
        for frame in frames:
            if not frame.startswith(b"data: "):
                continue
            payload = frame[6:]
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                chunk = CHUNK_DECODER.decode(payload)
            except msgspec.MsgspecError:
                continue
            self._take(chunk)

    def _take(self, chunk: ChatCompletionChunk) -> None:
        self._id = self._id or chunk.id
        self._model = self._model or chunk.model
        self._created = self._created or chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            state = self._choices.setdefault(choice.index, _Choice())
            delta = choice.delta
            if delta.content:
                state.content.append(delta.content)
            if delta.reasoning_content:
                state.reasoning.append(delta.reasoning_content)
            for call in delta.tool_calls or ():
                parts = state.calls.setdefault(call.index, ["", ""])
                if call.id:
                    parts[0] = call.id
                if call.function is not None:
                    if call.function.name:
                        parts[1] = call.function.name
                    if call.function.arguments:
                        parts.append(call.function.arguments)
            if choice.finish_reason:
                state.finish = choice.finish_reason

    def completion(self) -> bytes:
        choices = []
        for index in sorted(self._choices):
            state = self._choices[index]
            calls = [
                ToolCall(
                    id=parts[0], function=FunctionCall(name=parts[1], arguments="".join(parts[2:]))
                )
                for _, parts in sorted(state.calls.items())
            ]
            message = OutMessage(
                content="".join(state.content) if state.content or not calls else None,
                tool_calls=calls or None,
                reasoning_content="".join(state.reasoning) if state.reasoning else None,
            )
            choices.append(
                Choice(index=index, message=message, finish_reason=state.finish or "stop")
            )
        completion = ChatCompletion(
            id=self._id,
            object="chat.completion",
            created=self._created,
            model=self._model,
            choices=choices,
            usage=self.usage,
        )
        return _ENCODE.encode(completion)


async def replay(body: bytes, *, include_usage: bool) -> AsyncIterator[bytes]:
    """A stored completion as the stream OpenAI would have sent for it."""
    completion = COMPLETION_DECODER.decode(body)

    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
        return chunk_frame(completion.id, completion.created, completion.model, choices, usage)

    frames: list[bytes] = []
    for choice in completion.choices:
        index, message = choice.index, choice.message
        frames.append(chunk([ChunkChoice(index=index, delta=Delta(role="assistant", content=""))]))
        if message.reasoning_content:
            delta = Delta(reasoning_content=message.reasoning_content)
            frames.append(chunk([ChunkChoice(index=index, delta=delta)]))
        content = message.content or ""
        for at in range(0, len(content), _PIECE):
            delta = Delta(content=content[at : at + _PIECE])
            frames.append(chunk([ChunkChoice(index=index, delta=delta)]))
        for k, call in enumerate(message.tool_calls or ()):
            function = DeltaFunction(name=call.function.name, arguments=call.function.arguments)
            head = DeltaToolCall(index=k, id=call.id, type="function", function=function)
            frames.append(chunk([ChunkChoice(index=index, delta=Delta(tool_calls=[head]))]))
        reason = choice.finish_reason or "stop"
        frames.append(chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=reason)]))
    if include_usage and completion.usage is not None:
        frames.append(chunk([], completion.usage))
    frames.append(b"data: [DONE]\n\n")
    yield b"".join(frames)


async def assembling(
    events: AsyncIterator[bytes],
    ended: Callable[[StreamAssembler], None],
    whole: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """Relays a stream while assembling it; `ended` gets the assembler once the stream has
    ended with [DONE] and `whole()` agrees (no failure met on the way)."""
    assembler = StreamAssembler()
    async with aclosing(events):  # type: ignore[type-var]
        async for batch in events:
            assembler.feed(batch)
            yield batch
    if assembler.done and whole():
        ended(assembler)
