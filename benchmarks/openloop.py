"""A lean open-loop load generator: requests go out on a fixed schedule whatever the answers do
(no coordinated omission), and each is timed from when it was due, so a late sender counts
against the system too.

It is built to be a precise instrument rather than a convenient one. A generator on an asyncio
event loop can only sleep in whole milliseconds (epoll's timeout), so at 1,000 req/s its own
lateness is up to a whole period and dominates the figure, and an HTTP client library spends
more CPU per request than the gateway it measures, on the core the mock upstream shares with it.
Here one thread paces with select(), whose timeout is in microseconds (with the kernel's timer
slack turned down), sends pre-built requests on plain keep-alive sockets, and parses answers
with llhttp.
"""

from __future__ import annotations

import ctypes
import select
import socket
import sys
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

_PR_SET_TIMERSLACK = 29
_MAX_SELECT_FD = 1000  # select() takes descriptors below FD_SETSIZE (1024); poll() beyond
CONTENT = (b'"content":"tok', b'"content": "tok')  # the first token of the mock's streams


def _tighten_timer_slack() -> None:
    """A sleeping thread wakes up to 50 us late by default; pacing at 1 ms wants ~0."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
        except (OSError, AttributeError):
            pass


class _Exchange:
    """One keep-alive connection and the request in flight on it."""

    __slots__ = ("counted", "done", "due", "failed", "first", "parser", "sock", "stream")

    def __init__(self, host: str, port: int, stream: bool) -> None:
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.parser = httptools.HttpResponseParser(self)
        self.stream = stream
        self.due = 0.0
        self.counted = False
        self.first: float | None = None
        self.done = False
        self.failed = False

    def start(self, request: bytes, due: float, counted: bool) -> None:
        self.due, self.counted, self.first, self.done = due, counted, None, False
        self.sock.sendall(request)  # a few hundred bytes: the socket buffer takes them at once

    # httptools callbacks
    def on_headers_complete(self) -> None:
        if self.parser.get_status_code() != 200:
            self.failed = True

    def on_body(self, body: bytes) -> None:
        if self.stream and self.first is None and (CONTENT[0] in body or CONTENT[1] in body):
            self.first = time.perf_counter()

    def on_message_complete(self) -> None:
        self.done = True

    def fileno(self) -> int:
        return self.sock.fileno()


def _request(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {host}:{port}\r\n{extra}"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return host, port, head.encode("latin-1") + body


def _ready(waiting: dict[int, _Exchange], timeout: float) -> list[int]:
    if not waiting:
        if timeout > 0:
            time.sleep(timeout)
        return []
    if max(waiting) < _MAX_SELECT_FD:
        return select.select(list(waiting), [], [], timeout)[0]
    poller = select.poll()  # millisecond timeouts: only when the system under test is swamped
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    return [fd for fd, _ in poller.poll(int(timeout * 1000))]


def open_loop(  # noqa: C901, PLR0912, PLR0913 - one loop: send what is due, read what arrived
    url: str,
    rate: float,
    seconds: float,
    body: bytes | Callable[[int], bytes],
    *,
    stream: bool = False,
    warmup: float = 1.0,
    timeline: list[tuple[float, float]] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[list[float], int]:
    """Sends `rate` requests a second for `warmup` + `seconds`; returns the sorted latencies
    (seconds, to the whole answer, or for a stream to its first token) of those due after
    the warm-up, and the number of failed requests. `body` may be a function of the request's
    number (each request its own, e.g. for cache misses); `timeline`, if given, receives
    (seconds since the first counted request was due, latency) for every counted request."""
    _tighten_timer_slack()
    fixed = body if isinstance(body, bytes) else body(0)
    host, port, request = _request(url, fixed, headers)
    period = 1.0 / rate
    total = int(rate * (seconds + warmup))
    idle: list[_Exchange] = []
    waiting: dict[int, _Exchange] = {}
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05
    counted_from = start + warmup
    sent = 0
    while sent < total or waiting:
        now = time.perf_counter()
        while sent < total and start + sent * period <= now:
            due = start + sent * period
            exchange = idle.pop() if idle else _Exchange(host, port, stream)
            if not isinstance(body, bytes):
                request = _request(url, body(sent), headers)[2]
            try:
                exchange.start(request, due, due >= counted_from)
            except OSError:
                errors += 1
                exchange.sock.close()
            else:
                waiting[exchange.fileno()] = exchange
            sent += 1
        timeout = start + sent * period - time.perf_counter() if sent < total else 1.0
        for fd in _ready(waiting, max(0.0, timeout)):
            exchange = waiting[fd]
            try:
                data = exchange.sock.recv(262144)
                if not data:
                    raise ConnectionResetError
                exchange.parser.feed_data(data)
            except (OSError, httptools.HttpParserError):
                errors += 1
                del waiting[fd]
                exchange.sock.close()
                continue
            if not exchange.done:
                continue
            finished = time.perf_counter()
            del waiting[fd]
            if exchange.failed or (exchange.stream and exchange.first is None):
                errors += 1
            elif exchange.counted:
                latencies.append((exchange.first or finished) - exchange.due)
                if timeline is not None:
                    timeline.append((exchange.due - counted_from, latencies[-1]))
            if exchange.parser.should_keep_alive():
                idle.append(exchange)
            else:  # the server closes it (nginx does after keepalive_requests answers)
                exchange.sock.close()
    for exchange in idle:
        exchange.sock.close()
    return sorted(latencies), errors
