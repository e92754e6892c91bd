"""The upstream transport against a raw server: request line, pooling, read-until-close."""

from __future__ import annotations

import asyncio

from gateway.providers.base import Timeouts, UpstreamRequest
from gateway.providers.transport import Transport

TIMEOUTS = Timeouts(connect=2, first_byte=2, idle=None, total=5)


async def _server(response: bytes) -> tuple[asyncio.Server, list[bytes], list[int]]:
    heads: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                heads.append(head)
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(response)
                await writer.drain()
                if b"connection: close" in response:
                    break  # the body ends where the connection does
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, heads, connections


async def test_method_and_path_reach_the_wire_and_connections_are_reused() -> None:
    server, heads, connections = await _server(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    port = server.sockets[0].getsockname()[1]
    transport = Transport()
    await transport.start()
    try:
        for method in ("GET", "POST"):
            request = UpstreamRequest(
                method=method, url=f"http://127.0.0.1:{port}/v1/models?x=1",
                headers={"authorization": "Bearer k"}, body=b"{}",
            )  # fmt: skip
            response = await transport.send(request, TIMEOUTS, "test")
            assert response.status == 200
            assert await response.read() == b"ok"
            response.close()
        assert [h.split(b"\r\n")[0] for h in heads] == [
            b"GET /v1/models?x=1 HTTP/1.1",
            b"POST /v1/models?x=1 HTTP/1.1",
        ]
        assert b"host: 127.0.0.1:%d" % port in heads[0]
        assert len(connections) == 1  # the second request reused the pooled connection
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()


async def test_body_delimited_by_close_is_complete_and_not_pooled() -> None:
    server, _, connections = await _server(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")
    port = server.sockets[0].getsockname()[1]
    transport = Transport()
    await transport.start()
    try:
        for _ in range(2):
            request = UpstreamRequest(method="POST", url=f"http://127.0.0.1:{port}/", headers={}, body=b"")
            response = await transport.send(request, TIMEOUTS, "test")
            assert await response.read() == b"all of it"
            response.close()
        assert len(connections) == 2
    finally:
        await transport.close()
        server.close()
        await server.wait_closed()



async def test_taking_a_body_above_the_buffer_limit_resumes_reading() -> None:
    """A body that fills the read buffer pauses reading; taking it whole must resume reading,
    or the next request on the pooled connection would never see its answer."""
    from gateway.providers.http1 import HTTP1Connection

    class Wire:
        paused = False
        written = b""

        def write(self, data: bytes) -> None:
            self.written += data

        def pause_reading(self) -> None:
            self.paused = True

        def resume_reading(self) -> None:
            self.paused = False

    wire = Wire()
    conn = HTTP1Connection(asyncio.get_running_loop(), "origin")
    conn.connection_made(wire)  # type: ignore[arg-type]
    conn.send(b"POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
    body = b"x" * 300_000  # over the 256 KiB mark, arriving (and completing) in one read
    conn.data_received(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body))
    assert wire.paused
    assert conn.take_body() == body
    assert not wire.paused
    assert conn.reusable()
