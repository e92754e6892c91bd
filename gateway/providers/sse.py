"""Splits a byte stream into server-sent events (the WHATWG event-stream format)."""

from __future__ import annotations

import msgspec

from gateway.api.chat import ChatCompletionChunk, ChunkChoice
from gateway.api.usage import Usage
from gateway.errors import GatewayError

_ENCODER = msgspec.json.Encoder()


class SSESplitter:
    """Feeds raw chunks, yields (event name, data) pairs; comments and id/retry are ignored.

    Only new bytes are scanned for an event's end, so an event that arrives in many small
    reads costs linear time; `buffered` says how much waits for its end (the relay caps it).
    """

    __slots__ = ("_buffer", "_cr", "_scanned")

    def __init__(self) -> None:
        self._buffer = bytearray()  # normalised to LF line ends
        self._scanned = 0  # bytes of the buffer known to hold no event boundary
        self._cr = False  # the last read ended in CR: maybe half of a CRLF

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        if self._cr:
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.find(b"\r") >= 0:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buffer = self._buffer
        if not buffer:
            if chunk.endswith(b"\n\n"):  # the usual read: whole events, nothing pending
                return _parse_blocks(chunk[:-2].split(b"\n\n"))
            start = 0
        else:
            start = max(self._scanned - 1, 0)
        buffer += chunk
        end = buffer.rfind(b"\n\n", start)
        if end < 0:
            self._scanned = len(buffer)
            return []
        blocks = bytes(buffer[:end]).split(b"\n\n")
        del buffer[: end + 2]
        self._scanned = len(buffer)
        return _parse_blocks(blocks)

    @property
    def pending(self) -> bytes:
        return bytes(self._buffer) + (b"\r" if self._cr else b"")

    @property
    def buffered(self) -> int:
        return len(self._buffer)


def _parse_blocks(blocks: list[bytes]) -> list[tuple[str | None, bytes]]:
    events = []
    for block in blocks:
        parsed = _parse_block(block)
        if parsed is not None:
            events.append(parsed)
    return events


def _parse_block(block: bytes) -> tuple[str | None, bytes] | None:
    if block.startswith(b"data: ") and block.find(b"\n") < 0:
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

    @property
    def buffered(self) -> int:
        return self._splitter.buffered


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
