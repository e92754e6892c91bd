"""A lean HTTP/1.1 server on asyncio protocols, parsing with httptools (llhttp).

The gateway's edge does one thing per request: hand a buffered body to the pipeline and write
back a JSON body or an SSE stream. A general web framework spends most of a proxied request's
CPU on its own request and response objects (measured in benchmarks/RESULTS.md), so the edge is
this module instead: keep-alive, pipelining in order, chunked request bodies, Expect:
100-continue, size limits, slow-client timeouts, back-pressure on streams, a client that goes
away cancelling its request, and draining on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from gateway.deadline import Deadline
from gateway.headers import header_lines
from gateway.pipeline.call import Reply

LOG = logging.getLogger("gateway.server")

MAX_URL = 8190
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADERS = 128
MAX_PIPELINED = 16  # requests parsed ahead of the one being answered before reading pauses

_LINGER = 2.0  # seconds a refused client's remaining input is drained before closing
_REASONS = {status.value: status.phrase for status in HTTPStatus}
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class Request:
    """One request, with its body already read (the gateway needs all of it to route)."""

    __slots__ = ("body", "headers", "keep_alive", "method", "path", "query_string", "version")

    def __init__(  # noqa: PLR0913 - what the parser found
        self,
        method: str,
        path: str,
        query_string: str,
        headers: CIMultiDictProxy[str],
        version: str,
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.path = path
        self.query_string = query_string
        self.headers = headers
        self.version = version
        self.keep_alive = keep_alive
        self.body = b""

    async def read(self) -> bytes:
        return self.body

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string, keep_blank_values=True))

    @property
    def query_pairs(self) -> list[tuple[str, str]]:
        """Every parameter in order, repeats included (`group_by=a&group_by=b`)."""
        return parse_qsl(self.query_string, keep_blank_values=True)


Handler = Callable[[Request], Awaitable[Reply]]
# The reply to a request the server itself refuses: (status, message, code, its headers if
# they were read) -> Reply.
Refusal = Callable[[int, str, str, "CIMultiDictProxy[str] | None"], Reply]


class _Clock:
    """The Date header, formatted once a second rather than once a request."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = b"date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        return self._value


_CLOCK = _Clock()


_STATUS_LINES = {
    status: b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode()) for status, phrase in _REASONS.items()
}


def _head(status: int, headers: dict[str, str], framing: bytes, keep_alive: bool) -> bytes:
    fields = header_lines(headers)
    return b"".join((
        _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
        fields.encode("latin-1"), _CLOCK.date(), framing,
        b"\r\n" if keep_alive else b"connection: close\r\n\r\n",
    ))  # fmt: skip


class HttpConnection(asyncio.Protocol):
    """One client connection: parses requests and answers them one at a time, in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._queue: deque[Request] = deque()
        self._task: asyncio.Task[None] | None = None
        self._paused_reading = False
        self._write_ready: asyncio.Future[None] | None = None
        # The read or keep-alive limit, whichever applies; none while an answer is written.
        self._deadline = Deadline(self._loop, self._expire)
        self._linger_timer: asyncio.TimerHandle | None = None
        self._closing = False
        # The request being parsed.
        self._url = b""
        self._header_pairs: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_size = 0
        self._request: Request | None = None
        self._refused = False
        self._refusal = b""  # written once the answer in progress is out
        self._reading = False  # a request has begun and is not complete

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        self._server.connections.add(self)
        self._arm(self._server.keepalive_timeout)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switch here: the request is answered as plain HTTP (RFC 9110 lets a
            # server ignore Upgrade) and the connection closes, its later bytes unparsed.
            self._refused = True
            self._closing = True
        except httptools.HttpParserError:
            if not self._refused:
                self._refuse(400, "The request is not valid HTTP/1.1.", "invalid_request")

    def connection_lost(self, exc: Exception | None) -> None:
        self._server.connections.discard(self)
        self._transport = None
        self._stop_timers()
        if self._task is not None and not self._task.done():
            self._task.cancel()  # the client went away: stop its upstream request too
        self._wake_writer(ConnectionResetError("the client closed the connection"))

    def pause_writing(self) -> None:
        if self._write_ready is None:
            self._write_ready = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake_writer(None)

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._header_pairs = []
        self._header_bytes = 0
        self._body = []
        self._body_size = 0
        self._reading = True
        self._arm(self._server.read_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > MAX_URL:
            self._refuse(414, "The request URL is too long.", "invalid_request")
            raise httptools.HttpParserError("url too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES or len(self._header_pairs) >= MAX_HEADERS:
            self._refuse(431, "The request headers are too large.", "invalid_request")
            raise httptools.HttpParserError("headers too large")
        self._header_pairs.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        parser = self._parser
        raw = self._url
        # find, not `in`: bytes' `in` tries the needle as an int first, raising and formatting
        # a TypeError each time (~1,800 instructions; three of them were 1% of a request).
        if raw[:1] == b"/" and raw.find(b"?") < 0 and raw.find(b"%") < 0 and raw.find(b"#") < 0:
            path, query = raw.decode("latin-1"), ""  # the usual /v1/... needs no URL parsing
        else:
            url = httptools.parse_url(raw)
            path = unquote(url.path.decode("latin-1"))
            query = url.query.decode("latin-1") if url.query else ""
        headers = CIMultiDictProxy(CIMultiDict(self._header_pairs))
        request = Request(
            parser.get_method().decode("ascii"),
            path,
            query,
            headers,
            parser.get_http_version(),
            parser.should_keep_alive(),
        )
        self._request = request
        length = headers.get("content-length")
        limit = self._server.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            self._refuse_too_large()
            raise httptools.HttpParserError("body too large")
        if headers.get("expect", "").lower() == "100-continue" and self._transport is not None:
            self._transport.write(_CONTINUE)

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._server.max_body_bytes:
            self._refuse_too_large()
            raise httptools.HttpParserError("body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        request = self._request
        if request is None:
            return
        self._request = None
        self._reading = False
        body = self._body
        request.body = body[0] if len(body) == 1 else b"".join(body)
        self._body = []
        self._deadline.clear()  # no time limit while the request is answered
        self._queue.append(request)
        if len(self._queue) >= MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()
            self._paused_reading = True
        if self._task is None:
            self._task = self._loop.create_task(self._answer_queue())

    # -- answering -------------------------------------------------------------------------

    async def _answer_queue(self) -> None:
        keep_alive = True
        try:
            while keep_alive and self._queue and self._transport is not None:
                request = self._queue.popleft()
                if (
                    self._paused_reading
                    and len(self._queue) < MAX_PIPELINED // 2
                    and self._write_ready is None  # the client is reading what it was sent
                ):
                    self._paused_reading = False
                    self._transport.resume_reading()
                reply = await self._server.handler(request)
                # HTTP/1.0 has no chunked framing: a stream there ends by closing the connection.
                framed = reply.events is None or request.version == "1.1"
                keep_alive = request.keep_alive and framed and not self._closing
                try:
                    await self._write(request, reply, keep_alive)
                finally:
                    if reply.after is not None:
                        _run_after(reply.after)
        except (ConnectionError, asyncio.CancelledError):
            keep_alive = False
        except Exception:
            LOG.exception("unhandled error while answering a request")
            keep_alive = False
        finally:
            self._task = None
        if self._transport is None:
            return
        if self._refusal:
            self._transport.write(self._refusal)
            self._linger()
        elif keep_alive and not self._closing:
            self._arm(self._server.keepalive_timeout)
        else:
            self._close()

    async def _write(self, request: Request, reply: Reply, keep_alive: bool) -> None:
        transport = self._transport
        if transport is None:
            raise ConnectionResetError("the client closed the connection")
        events = reply.events
        head_only = request.method == "HEAD"
        if events is None:
            body = reply.body or b""
            framing = b"content-length: %d\r\n" % len(body)
            head = _head(reply.status, reply.headers, framing, keep_alive)
            transport.write(head if head_only else head + body)
            if self._write_ready is not None:
                # A client that sends and never reads: the next answer waits until this one
                # has drained, so its queue fills and reading pauses, and memory stays bounded.
                await self._drain()
            return
        chunked = request.version == "1.1"
        try:
            # Start the stream before anything can fail: a generator that never started skips
            # its cleanup on aclose(), and the pipeline's stages release slots and record there.
            first = await anext(events, None)
            framing = b"transfer-encoding: chunked\r\n" if chunked else b""
            head = _head(reply.status, reply.headers, framing, keep_alive)
            if head_only:
                transport.write(head)
                return
            if first is None:
                transport.write(head + b"0\r\n\r\n" if chunked else head)
            else:
                transport.write(head + (_chunk(first) if chunked else first))
                await self._drain()
                async for data in events:
                    if data:
                        self._write_data(_chunk(data) if chunked else data)
                        await self._drain()
                self._write_data(b"0\r\n\r\n" if chunked else b"")
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    def _write_data(self, data: bytes) -> None:
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")
        if data:
            self._transport.write(data)

    async def _drain(self) -> None:
        if self._transport is None:
            raise ConnectionResetError("the client closed the connection")
        if self._write_ready is not None:
            await self._write_ready  # waits while the client's buffer is full

    def _wake_writer(self, exc: BaseException | None) -> None:
        waiter, self._write_ready = self._write_ready, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)
                waiter.exception()  # retrieved: nobody may be waiting

    # -- refusals, timers, closing ---------------------------------------------------------

    def _refuse_too_large(self) -> None:
        limit = self._server.max_body_bytes
        message = f"The request body is larger than {limit} bytes."
        self._refuse(413, message, "request_too_large")

    def _refuse(self, status: int, message: str, code: str) -> None:
        """Answers a request the server will not parse further, then closes the connection."""
        if self._refused or self._transport is None:
            return
        self._refused = True  # requests parsed before this one are still answered
        request = self._request
        headers = request.headers if request is not None else None
        reply = self._server.refusal(status, message, code, headers)
        body = reply.body or b""
        head = _head(status, reply.headers, b"content-length: %d\r\n" % len(body), False)
        if self._task is None:
            self._transport.write(head + body)
            self._linger()
        else:  # never interleave with an answer being written
            self._refusal = head + body
            self._closing = True

    def _arm(self, seconds: float) -> None:
        self._deadline.arm(self._loop.time() + seconds)

    def _stop_timers(self) -> None:
        self._deadline.stop()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def _expire(self) -> None:
        if self._reading:  # a client too slow to send its request (or one holding a slot open)
            self._refuse(408, "The request was not received in time.", "request_timeout")
        elif self._task is None:
            self._close()  # an idle keep-alive connection

    def idle(self) -> bool:
        return self._task is None and not self._queue and not self._reading

    def shut(self) -> None:
        """Closes now if idle, else after the answer in progress (which says connection: close)."""
        self._closing = True
        if self.idle():
            self._close()

    def _linger(self) -> None:
        """Closes after a refusal without losing it: closing a socket with unread input sends a
        reset, which can discard the answer at the client before it is read. So the write side
        is shut first and what the client still sends is read and dropped for a moment."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._stop_timers()
        self._linger_timer = self._loop.call_later(_LINGER, self._close)

    def _close(self) -> None:
        self._stop_timers()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def _run_after(after: Callable[[], None]) -> None:
    try:
        after()
    except Exception:  # bookkeeping must not cost the connection its next request
        LOG.exception("unhandled error after answering a request")


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


class HttpServer:
    """Owns the listening socket and its connections; `close` drains them."""

    def __init__(  # noqa: PLR0913 - the handler and the limits it is served under
        self,
        handler: Handler,
        refusal: Refusal,
        *,
        max_body_bytes: int,
        keepalive_timeout: float = 75.0,
        read_timeout: float = 60.0,
    ) -> None:
        self.handler = handler
        self.refusal = refusal
        self.max_body_bytes = max_body_bytes
        self.keepalive_timeout = keepalive_timeout  # an idle connection is closed after this
        self.read_timeout = read_timeout  # a request's head and body must arrive within this
        self.connections: set[HttpConnection] = set()
        self._server: asyncio.Server | None = None

    async def start(
        self, host: str, port: int, *, reuse_port: bool = False, tls: ssl.SSLContext | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: HttpConnection(self),
            host,
            port,
            backlog=2048,
            reuse_port=reuse_port or None,
            ssl=tls,
            ssl_handshake_timeout=self.read_timeout if tls else None,
        )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self, timeout: float) -> None:
        """Stops accepting, closes idle connections, and gives the busy ones `timeout` seconds
        to finish what they are answering (streams included) before cutting them."""
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.shut()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        if self._server is not None:
            await self._server.wait_closed()
