"""Splits a byte stream into server-sent events (the WHATWG event-stream format)."""

from __future__ import annotations

import msgspec

from gateway.api.chat import ChatCompletionChunk, ChunkChoice
from gateway.api.usage import Usage
from gateway.errors import GatewayError

_ENCODER = msgspec.json.Encoder()


class SSESplitter:
    """Feeds raw chunks, yields (event name, data) pairs; comments and id/retry are ignored."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        buffer = self._buffer + chunk
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                # A trailing CR may be the first half of a CRLF split across reads.
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        blocks = buffer.split(b"\n\n")
        self._buffer = blocks.pop() + held
        events = []
        for block in blocks:
            parsed = _parse_block(block)
            if parsed is not None:
                events.append(parsed)
        return events

    @property
    def pending(self) -> bytes:
        return self._buffer


def _parse_block(block: bytes) -> tuple[str | None, bytes] | None:
    if block.startswith(b"data: ") and b"\n" not in block:
        return None, block[6:]  # the common case: one data line, no event name
    name: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            data.append(value)
        elif field == b"event":
            name = value.decode("utf-8", "replace")
    if not data and name is None:
        return None
    return name, b"\n".join(data)


class SSEStream:
    """Base of stream translators whose upstream speaks SSE: splits reads into events and
    hands each to `feed`, which returns the client's frames."""

    __slots__ = ("_splitter", "failure", "finished", "usage")

    def __init__(self) -> None:
        self._splitter = SSESplitter()
        self.usage: Usage | None = None
        self.finished = False
        self.failure: GatewayError | None = None

    def frames(self, chunk: bytes) -> list[bytes]:
        out: list[bytes] = []
        for name, data in self._splitter.feed(chunk):
            try:
                out.extend(self.feed(name, data))
            except GatewayError as err:
                if not out:
                    raise
                # Content that came in the same read as the error still reaches the client.
                self.failure = err
                break
        return out

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        raise NotImplementedError


def data_frame(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def chunk_frame(
    id_: str, created: int, model: str, choices: list[ChunkChoice], usage: Usage | None = None
) -> bytes:
    """One chat.completion.chunk as an SSE frame, for every translator that writes its own."""
    chunk = ChatCompletionChunk(
        id=id_,
        object="chat.completion.chunk",
        created=created,
        model=model,
        choices=choices,
        usage=usage,
    )
    return data_frame(_ENCODER.encode(chunk))
