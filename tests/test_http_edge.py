"""The HTTP/1.1 edge, spoken to over raw sockets: what clients, proxies and load balancers do
that SDKs never show (pipelining, chunked uploads, Expect: 100-continue, HTTP/1.0, HEAD, and
requests the server must refuse without hanging)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config

BODY = json.dumps(
    {"model": "chat-default", "messages": [{"role": "user", "content": "hello"}]}
).encode()
AUTH = f"authorization: Bearer {MASTER_KEY}\r\n".encode()


def _connect(gateway: Gateway) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=10)
    return sock


def _post(body: bytes = BODY, extra: bytes = b"", path: bytes = b"/v1/chat/completions") -> bytes:
    return (
        b"POST " + path + b" HTTP/1.1\r\nhost: gw\r\n" + AUTH
        + b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body)
        + extra + b"\r\n" + body
    )  # fmt: skip


class Reader:
    """Reads HTTP/1.1 responses off a socket: head, then a content-length or chunked body."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            if not self._fill():
                raise EOFError(f"closed before {marker!r}; got {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise EOFError("closed mid-body")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response(self, *, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (100, 204, 304):
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._until(b"\r\n"), 16):
                body += self._exactly(size)
                self._exactly(2)
            self._exactly(2)
            return status, headers, body
        return status, headers, self._exactly(int(headers["content-length"]))

    def closed(self) -> bool:
        self.sock.settimeout(5)
        return not self.buffer and self.sock.recv(1) == b""


def test_keep_alive_and_pipelined_requests_answer_in_order(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(_post())
        assert reader.response()[0] == 200
        # Three requests in one write: three answers, in the order asked.
        ids = [b"first", b"second", b"third"]
        sock.sendall(b"".join(_post(extra=b"x-request-id: " + i + b"\r\n") for i in ids))
        for expected in ids:
            status, headers, body = reader.response()
            assert status == 200 and headers["x-request-id"] == expected.decode()
            assert json.loads(body)["object"] == "chat.completion"


def test_chunked_upload_is_read_whole(gateway: Gateway) -> None:
    pieces = [BODY[:10], BODY[10:25], BODY[25:]]
    chunked = b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n" + AUTH
        + b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )  # fmt: skip
    with _connect(gateway) as sock:
        sock.sendall(request)
        time.sleep(0.05)  # the body arrives in a later packet, as it does from a slow client
        sock.sendall(chunked)
        status, _, body = Reader(sock).response()
    assert status == 200 and json.loads(body)["choices"]


def test_expect_100_continue(gateway: Gateway) -> None:
    head = _post(extra=b"expect: 100-continue\r\n")[: -len(BODY)]
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(head)
        assert reader.response()[0] == 100  # the client may now send the body
        sock.sendall(BODY)
        assert reader.response()[0] == 200


def test_too_large_is_refused_before_the_body_is_sent(gateway: Gateway) -> None:
    head = _post(body=b"x" * 70000)[:-70000]
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(head)  # only the head: the gateway must not wait for 70 kB
        status, headers, body = reader.response()
        assert status == 413 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_too_large"
        assert reader.closed()


def test_a_chunked_upload_over_the_limit_is_refused_as_it_grows(gateway: Gateway) -> None:
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n" + AUTH
        + b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )  # fmt: skip
    piece = b"x" * 16384
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(head)
        try:  # no length up front: the limit (64 KiB here) is enforced as the body arrives
            for _ in range(5):
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may close before the last piece is sent
        status, _, body = reader.response()
        assert status == 413 and json.loads(body)["error"]["code"] == "request_too_large"


def test_length_and_chunked_together_are_refused(gateway: Gateway) -> None:
    """Both framings at once is how requests are smuggled past proxies: never guessed at."""
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: 4\r\n"
            b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        assert reader.response()[0] == 400
        assert reader.closed()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET /health/live HTTP/1.1\r\nhost: gw\r\nx-big: " + b"a" * 70000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nhost: gw\r\n\r\n", 414),
    ],
    ids=["garbage", "huge-header", "long-url"],
)
def test_bad_http_is_an_openai_error_then_close(
    gateway: Gateway, request_bytes: bytes, status: int
) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(request_bytes)
        got, headers, body = reader.response()
        assert got == status
        error = json.loads(body)["error"]
        assert error["type"] == "invalid_request_error" and error["message"]
        assert headers["x-request-id"]
        assert reader.closed()


def test_upgrade_is_ignored_and_the_connection_closed(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(
            b"GET /health/live HTTP/1.1\r\nhost: gw\r\nupgrade: websocket\r\n"
            b"connection: upgrade\r\n\r\n\x81\x85garbage-frames"
        )
        status, headers, body = reader.response()
        assert status == 200 and headers["connection"] == "close"
        assert reader.closed()


def test_a_refusal_waits_for_the_answer_before_it(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(_post() + b"NONSENSE\r\n\r\n")
        assert reader.response()[0] == 200
        assert reader.response()[0] == 400
        assert reader.closed()


def test_http_1_0_closes_after_the_answer(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /health/live HTTP/1.0\r\n\r\n")
        status, headers, body = reader.response()
        assert status == 200 and json.loads(body) == {"status": "ok"}
        assert headers["connection"] == "close" and reader.closed()


def test_http_1_0_stream_is_delimited_by_closing(gateway: Gateway) -> None:
    """No chunked framing in HTTP/1.0: the stream ends with the connection, even when the
    client asked for keep-alive and has another request queued behind it."""
    body = json.dumps({**json.loads(BODY), "stream": True}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.0\r\nconnection: keep-alive\r\n" + AUTH
        + b"content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip
    with _connect(gateway) as sock:
        sock.sendall(request + b"GET /health/live HTTP/1.0\r\n\r\n")
        received = b""
        while data := sock.recv(65536):
            received += data
    head, _, stream = received.partition(b"\r\n\r\n")
    assert b"connection: close" in head and b"transfer-encoding" not in head
    assert stream.rstrip().endswith(b"data: [DONE]")
    assert b"HTTP/1.1 200" not in stream  # nothing was answered after the close


def test_head_has_headers_and_no_body(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(b"HEAD /health/live HTTP/1.1\r\nhost: gw\r\n\r\n")
        status, headers, _ = reader.response(head_only=True)
        assert status == 200 and int(headers["content-length"]) > 0
        assert "date" in headers
        # Nothing follows the head: the next answer on the connection starts cleanly.
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: gw\r\n\r\n")
        assert reader.response()[2] == b'{"status":"ok"}'


def test_percent_encoded_model_id(gateway: Gateway) -> None:
    with _connect(gateway) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /v1/models/chat-default HTTP/1.1\r\nhost: gw\r\n" + AUTH + b"\r\n")
        assert json.loads(reader.response()[2])["id"] == "chat-default"
        sock.sendall(b"GET /v1/models/openai%2Fgpt-x HTTP/1.1\r\nhost: gw\r\n" + AUTH + b"\r\n")
        assert json.loads(reader.response()[2])["id"] == "openai/gpt-x"
        sock.sendall(b"GET /v1/models/no-such%20model HTTP/1.1\r\nhost: gw\r\n" + AUTH + b"\r\n")
        status, _, body = reader.response()
        assert status == 404 and "`no-such model`" in json.loads(body)["error"]["message"]


@pytest.fixture(scope="module")
def impatient(impl: str) -> Iterator[Gateway]:
    config = write_config("server: {read_timeout: 0.5, keepalive_timeout: 0.5}\n")
    gw = start_gateway(impl, ["--config", str(config)])
    yield gw
    gw.stop()


@pytest.mark.parametrize(
    "partial",
    [
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\n",  # the head never ends
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: 100\r\n\r\n{",
    ],
    ids=["head", "body"],
)
def test_a_stalled_request_is_a_408_not_a_held_slot(impatient: Gateway, partial: bytes) -> None:
    with _connect(impatient) as sock:
        reader = Reader(sock)
        started = time.monotonic()
        sock.sendall(partial)
        status, headers, body = reader.response()
        assert status == 408 and headers["connection"] == "close"
        assert json.loads(body)["error"]["code"] == "request_timeout"
        assert 0.4 < time.monotonic() - started < 5
        assert reader.closed()


def test_idle_keep_alive_connections_are_closed(impatient: Gateway) -> None:
    with _connect(impatient) as sock:
        reader = Reader(sock)
        sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: gw\r\n\r\n")
        assert reader.response()[0] == 200
        started = time.monotonic()
        assert reader.closed()  # nothing more was asked: the server lets the connection go
        assert time.monotonic() - started < 4
