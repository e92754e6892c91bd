"""A lean HTTP/1.1 client connection on an asyncio protocol, parsed by httptools (llhttp).

One request at a time per connection; transport.py pools them. Bodies arrive as a queue of
chunks with flow control: reading pauses while too much is buffered, so a slow client slows the
upstream instead of filling memory.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Hashable

import httptools

from gateway.deadline import Deadline

_HIGH_WATER = 256 * 1024


class ConnectionLost(Exception):
    """The peer closed the connection or sent bytes that are not HTTP/1.1."""


class DeadlineExceeded(Exception):
    """The deadline armed on the connection passed before the response (or its head) did."""


class IdleExceeded(Exception):
    """Nothing arrived for longer than a stream's idle limit."""


class HTTP1Connection(asyncio.Protocol):
    __slots__ = (
        "_buffered", "_chunks", "_complete", "_deadline", "_error", "_head", "_headers", "_loop",
        "_parser", "_paused", "_waiter", "closed", "idle_since", "keep_alive", "pool_key",
        "received", "status", "transport",
    )  # fmt: skip

    def __init__(self, loop: asyncio.AbstractEventLoop, pool_key: Hashable) -> None:
        self._loop = loop
        self.pool_key = pool_key  # which idle list this connection returns to
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        # One timer per connection instead of asyncio.timeout() per await: deadlines are armed
        # here and fail the waiting read, which costs a fraction of a cancel scope.
        self._deadline = Deadline(loop, self._expire)
        # llhttp resets itself after each message, so one parser serves the whole keep-alive life.
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: collections.deque[bytes] = collections.deque()
        self._reset()

    def _reset(self) -> None:
        # The containers live as long as the connection: a response's headers are copied out
        # (headers()) and its body taken before the next request is sent on it.
        self._head: asyncio.Future[None] = self._loop.create_future()
        self._headers.clear()
        self._chunks.clear()
        self._waiter: asyncio.Future[None] | None = None
        self._buffered = 0
        self._paused = False
        self._complete = False
        self._error: BaseException | None = None
        self.status = 0
        self.keep_alive = False
        self.received = False  # any byte of the current response arrived

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionLost(f"invalid HTTP response: {exc}"))
            self.abort()

    def eof_received(self) -> bool | None:
        return False  # let the transport close; connection_lost finishes the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._deadline.stop()
        if self._complete:
            return
        if self._head.done() and self._reads_until_close():
            self.on_message_complete()  # a body delimited by the connection closing
            self.keep_alive = False
        else:
            self._fail(ConnectionLost("connection closed before the response was complete"))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if not self._head.done():
            self._head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    # used by the transport

    def send(self, data: bytes) -> asyncio.Future[None]:
        """Writes a whole request; the returned future resolves when the response head arrives."""
        self._reset()
        assert self.transport is not None
        self.transport.write(data)
        return self._head

    def arm(self, when: float) -> None:
        """Fails the current request with DeadlineExceeded at loop time `when`."""
        self._deadline.arm(when)

    def disarm(self) -> None:
        self._deadline.clear()

    def _expire(self) -> None:
        if not self._complete:
            self._fail(DeadlineExceeded())

    def headers(self) -> dict[str, str]:
        return {n.decode("latin-1").lower(): v.decode("latin-1") for n, v in self._headers}

    async def read_chunk(self, idle: float | None = None) -> bytes:
        """The next piece of the body; b"" once the body is complete. With `idle`, waiting
        longer than that for the next piece raises IdleExceeded."""
        while not self._chunks:
            if self._complete:
                return b""
            if self._error is not None:
                raise self._error
            waiter = self._waiter = self._loop.create_future()
            idle_timer = None if idle is None else self._loop.call_later(idle, _idle, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                if idle_timer is not None:
                    idle_timer.cancel()
        return self._take()

    def take_body(self) -> bytes | None:
        """The whole body if it has all arrived (the usual case for a small answer: it came
        with the head), else None and the caller reads it piece by piece."""
        return self._take() if self._complete else None

    def _take(self) -> bytes:
        # Everything already buffered goes out as one piece: when the upstream is faster than the
        # client, the relay then makes one write per batch instead of one per upstream chunk.
        chunks = self._chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:  # the buffer was just emptied
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return self._complete and self.keep_alive and not self.closed

    def abort(self) -> None:
        self.closed = True
        self._deadline.stop()
        if self.transport is not None:
            self.transport.abort()

    def _reads_until_close(self) -> bool:
        names = {n.lower() for n, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        if not self._head.done():
            self._head.set_exception(exc)
            self._head.exception()  # retrieved, so asyncio does not warn if nobody awaits it
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


def _idle(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(IdleExceeded())
