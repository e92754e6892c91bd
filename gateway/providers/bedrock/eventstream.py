"""AWS's binary event-stream framing (application/vnd.amazon.eventstream), as Bedrock's
ConverseStream sends it: length-prefixed messages with typed headers and CRC32 checks."""

from __future__ import annotations

import struct
import zlib
from typing import NamedTuple

from gateway.errors import UpstreamError

_PRELUDE = struct.Struct(">III")
_MAX_MESSAGE = 16 * 1024 * 1024
# Header value types: sizes of the fixed-width ones, by type code.
_FIXED = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_STRING_TYPES = (6, 7)  # byte array, string: a 2-byte length, then the bytes


class Message(NamedTuple):
    headers: dict[str, str]
    payload: bytes


def _headers(data: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    at = 0
    while at < len(data):
        size = data[at]
        name = data[at + 1 : at + 1 + size].decode("utf-8", "replace")
        at += 1 + size
        kind = data[at]
        at += 1
        if kind in _STRING_TYPES:
            (length,) = struct.unpack_from(">H", data, at)
            headers[name] = data[at + 2 : at + 2 + length].decode("utf-8", "replace")
            at += 2 + length
        elif kind in _FIXED:
            at += _FIXED[kind]  # only string headers matter here
        else:
            raise UpstreamError("Bedrock sent an event-stream header of unknown type", status=502)
    return headers


class EventStreamDecoder:
    """Feeds raw reads, returns whole messages; a corrupt frame is an upstream error."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[Message]:
        self._buffer += chunk
        messages: list[Message] = []
        while len(self._buffer) >= _PRELUDE.size + 4:
            total, header_length, prelude_crc = _PRELUDE.unpack_from(self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc or not 16 <= total <= _MAX_MESSAGE:
                raise UpstreamError("Bedrock sent a corrupt event-stream frame", status=502)
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != message_crc:
                raise UpstreamError(
                    "Bedrock sent an event-stream frame with a bad checksum", status=502
                )
            start = _PRELUDE.size
            headers = _headers(frame[start : start + header_length])
            messages.append(Message(headers, frame[start + header_length : total - 4]))
        return messages


def encode(headers: dict[str, str], payload: bytes) -> bytes:
    """One frame, as AWS writes it (used by the mock Bedrock in tests, and by replays)."""
    encoded = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in headers.items()
    )
    total = _PRELUDE.size + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))
