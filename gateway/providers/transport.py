"""The only module that talks to providers: a keep-alive connection pool over HTTP1Connection,
with connect / first-byte / total deadlines, mapping network failures to gateway errors."""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Mapping
from typing import NamedTuple
from urllib.parse import urlsplit

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.headers import header_lines
from gateway.providers.base import Timeouts, UpstreamRequest
from gateway.providers.http1 import (
    ConnectionLost,
    DeadlineExceeded,
    HTTP1Connection,
    IdleExceeded,
)

_MAX_IDLE_PER_ORIGIN = 512


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


class _Target(NamedTuple):
    origin: Origin
    line_rest: bytes  # " /path HTTP/1.1\r\nhost: ...\r\n": the request head after the method


class UpstreamResponse:
    """A response whose body has not been read yet; close() must always be called."""

    __slots__ = ("_conn", "_decoder", "_limit", "_pool", "_provider", "headers", "status")

    def __init__(self, conn: HTTP1Connection, pool: Transport, provider: str) -> None:
        self._conn = conn
        self._pool = pool
        self._provider = provider
        self._limit = pool.max_body_bytes
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers()
        encoding = self.headers.get("content-encoding", "identity")
        # The gateway asks for identity; a server that compresses anyway is still understood.
        self._decoder = zlib.decompressobj(47) if encoding in ("gzip", "deflate") else None

    def _too_large(self) -> UpstreamUnavailable:
        return UpstreamUnavailable(
            f"provider {self._provider} sent a response body larger than {self._limit} bytes"
        )

    async def read(self) -> bytes:
        """The whole body, at most the transport's `max_body_bytes` (decoded): a larger one is
        a 502, found without reading it all."""
        conn = self._conn
        body = conn.take_body()
        if body is not None and self._decoder is None and len(body) <= self._limit:
            return body
        length = self.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._limit:
            raise self._too_large()
        parts = [body] if body else []
        size = len(body or b"")
        try:
            while chunk := await conn.read_chunk():
                parts.append(chunk)
                size += len(chunk)
                if size > self._limit:
                    raise self._too_large()
        except DeadlineExceeded:
            raise UpstreamTimeout(f"provider {self._provider} did not finish in time") from None
        except ConnectionLost:
            raise UpstreamUnavailable(
                f"provider {self._provider} closed the connection mid-response"
            ) from None
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        if len(body) > self._limit:
            raise self._too_large()
        if self._decoder is not None:
            try:
                decoded = self._decoder.decompress(body, self._limit + 1)
                if not self._decoder.unconsumed_tail:
                    decoded += self._decoder.flush()
            except zlib.error:
                message = f"provider {self._provider} sent a corrupt body"
                raise UpstreamUnavailable(message) from None
            if len(decoded) > self._limit:
                raise self._too_large()
            return decoded
        return body

    async def chunks(self, idle: float | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; `idle` bounds the silence between two reads."""
        conn = self._conn
        decoder = self._decoder
        try:
            while chunk := await conn.read_chunk(idle):
                yield decoder.decompress(chunk) if decoder else chunk
            if decoder is not None and (tail := decoder.flush()):
                yield tail
        except IdleExceeded:
            raise UpstreamTimeout(f"provider {self._provider} sent nothing for {idle:g}s") from None
        except DeadlineExceeded:
            raise UpstreamTimeout(f"provider {self._provider} did not finish in time") from None
        except (ConnectionLost, zlib.error):
            raise UpstreamUnavailable(
                f"provider {self._provider} closed the connection mid-response"
            ) from None

    def close(self) -> None:
        # Only a fully read response returns its connection to the pool; anything else (a
        # cancelled request, a client that went away) drops it, so no half-read socket is reused.
        self._pool.release(self._conn)


class Transport:
    """One pool for every provider; created on startup, closed on cleanup."""

    def __init__(self, *, keepalive: float = 30.0, max_body_bytes: int = 64 << 20) -> None:
        self._keepalive = keepalive
        self.max_body_bytes = max_body_bytes  # the largest whole (non-stream) answer read
        self._idle: dict[Origin, list[HTTP1Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._tls: ssl.SSLContext | None = None
        self._open: set[HTTP1Connection] = set()
        # Kept, not looked up per request: asyncio.get_running_loop() makes a getpid() system
        # call each time (its fork check), three of them per request before this was kept.
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._tls = ssl.create_default_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR
        self._loop = asyncio.get_running_loop()

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:  # used before start(): on the loop that runs it
            loop = self._loop = asyncio.get_running_loop()
        return loop

    async def close(self) -> None:
        for conn in list(self._open):
            conn.abort()
        self._open.clear()
        self._idle.clear()

    def release(self, conn: HTTP1Connection) -> None:
        conn.disarm()
        if not conn.reusable():
            self._drop(conn)
            return
        idle = self._idle.setdefault(conn.pool_key, [])  # type: ignore[arg-type]
        if len(idle) >= _MAX_IDLE_PER_ORIGIN:
            self._drop(conn)
            return
        conn.idle_since = self._running_loop().time()
        idle.append(conn)

    def _drop(self, conn: HTTP1Connection) -> None:
        conn.abort()
        self._open.discard(conn)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= _MAX_TARGETS:
                # URLs embed client-chosen model names (Gemini, Bedrock): keep the cache bounded.
                self._targets.clear()
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamUnavailable("a provider base_url is not an http(s) URL")
            port = parts.port or (443 if parts.scheme == "https" else 80)
            origin = Origin(parts.scheme, parts.hostname, port)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            default_port = port == (443 if parts.scheme == "https" else 80)
            host = parts.hostname if default_port else f"{parts.hostname}:{port}"
            line_rest = f" {path} HTTP/1.1\r\nhost: {host}\r\n".encode("latin-1")
            target = self._targets[url] = _Target(origin, line_rest)
        return target

    async def _connect(self, origin: Origin, timeout: float, provider: str) -> HTTP1Connection:
        loop = self._running_loop()
        tls = self._tls if origin.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: HTTP1Connection(loop, origin),
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls else None,
                )
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to provider {provider} timed out") from None
        except OSError:
            raise UpstreamUnavailable(f"could not connect to provider {provider}") from None
        self._open.add(conn)
        return conn

    def _pooled(self, origin: Origin) -> HTTP1Connection | None:
        idle = self._idle.get(origin)
        now = self._running_loop().time()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive:
                return conn
            self._drop(conn)
        return None

    async def fetch(
        self, request: UpstreamRequest, timeouts: Timeouts, provider: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        """A whole exchange (a call outside the relay: a judge, an embedding, a webhook): the
        status, the headers and the read body, the connection given back."""
        response = await self.send(request, timeouts, provider)
        try:
            body = await response.read()
        finally:
            response.close()
        return response.status, response.headers, body

    async def send(
        self, request: UpstreamRequest, timeouts: Timeouts, provider: str
    ) -> UpstreamResponse:
        """Sends the request and waits for the response head (not the body)."""
        loop = self._running_loop()
        deadline = loop.time() + timeouts.total
        head_deadline = min(deadline, loop.time() + timeouts.first_byte)
        target = self._target(request.url)
        data = _serialize(target.line_rest, request)
        for _attempt in range(2):
            conn = self._pooled(target.origin)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(target.origin, timeouts.connect, provider)
            conn.arm(head_deadline)
            try:
                await conn.send(data)
            except ConnectionLost:
                self._drop(conn)
                # A pooled connection the server closed while idle: nothing reached it, so the
                # request is sent again on a fresh connection (as browsers and urllib3 do).
                if reused and not conn.received:
                    continue
                raise UpstreamUnavailable(f"provider {provider} closed the connection") from None
            except DeadlineExceeded:
                self._drop(conn)
                raise UpstreamTimeout(f"provider {provider} did not answer in time") from None
            except BaseException:
                self._drop(conn)  # cancelled: the client went away
                raise
            if head_deadline < deadline:
                conn.arm(deadline)  # from here the total deadline bounds the body
            return UpstreamResponse(conn, self, provider)
        raise UpstreamUnavailable(f"provider {provider} closed the connection")  # pragma: no cover


_MAX_TARGETS = 4096


def _serialize(line_rest: bytes, request: UpstreamRequest) -> bytes:
    fields = header_lines(request.headers)
    return b"".join((
        request.method.encode("ascii"), line_rest, fields.encode("latin-1"),
        b"accept-encoding: identity\r\ncontent-length: %d\r\n\r\n" % len(request.body),
        request.body,
    ))  # fmt: skip
