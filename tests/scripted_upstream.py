"""A raw HTTP/1.1 upstream whose every answer a test scripts, byte for byte: for providers that
misbehave (bodies without end, non-JSON stream events, keys echoed in every field), which a
well-mannered framework mock cannot be made to send.

The test sets `server.handler`, called with each request; it returns a `Scripted` answer.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Seen:
    method: str
    path: str  # as sent, query included
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def kind(self) -> str:
        """The first path segment: tests give each provider its own (/oai, /ant, /gem...)."""
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def model(self) -> str | None:
        body = self.json
        return body.get("model") if isinstance(body, dict) else None


@dataclass
class Scripted:
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})
    body: bytes | Iterable[bytes] = b""  # an iterable is sent chunked, piece by piece
    pause: float = 0.0  # seconds between pieces
    content_length: int | None = None  # declared instead of the real length


def sse(*events: bytes | str) -> list[bytes]:
    """Frames for a text/event-stream body: each item is a data payload (or a raw frame when it
    starts with `event:` or `:`)."""
    out = []
    for event in events:
        data = event.encode() if isinstance(event, str) else event
        out.append(data + b"\n\n" if data.startswith((b"event:", b":")) else b"data: " + data + b"\n\n")
    return out


def stream_headers() -> dict[str, str]:
    return {"content-type": "text/event-stream"}


class ScriptedUpstream:
    def __init__(self) -> None:
        self.handler: Callable[[Seen], Scripted] = lambda seen: Scripted(status=500)
        self.seen: list[Seen] = []
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ScriptedUpstream:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted upstream did not start")
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def last(self) -> Seen:
        return self.seen[-1]

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, path, headers, body)
                self.seen.append(seen)
                answer = self.handler(seen)
                await self._answer(writer, answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, answer: Scripted) -> None:
        head = [f"HTTP/1.1 {answer.status} Scripted"]
        head += [f"{name}: {value}" for name, value in answer.headers.items()]
        if isinstance(answer.body, bytes):
            length = answer.content_length if answer.content_length is not None else len(answer.body)
            head.append(f"content-length: {length}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + answer.body)
            await writer.drain()
            return
        head.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        for piece in answer.body:
            if piece:
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
                await writer.drain()
            if answer.pause:
                await asyncio.sleep(answer.pause)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
