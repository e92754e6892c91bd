"""A mock OpenAI upstream built for speed, so it is never the bottleneck of a benchmark.

Answers every POST with a canned chat completion, or, when the body asks for `"stream": true`,
an SSE stream of `--chunks` chunks (optionally `--chunk-delay` ms apart). Raw asyncio protocol
with httptools parsing; run with `python -m benchmarks.fast_upstream --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httptools
import uvloop

COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1741569952, "model": "bench",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I assist you today?",
                 "refusal": None}, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29},
}, separators=(",", ":")).encode()  # fmt: skip


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741569952,
            "model": "bench", "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}  # fmt: skip
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def stream_frames(chunks: int) -> list[bytes]:
    usage = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1741569952, "model": "bench",
             "choices": [], "usage": {"prompt_tokens": 19, "completion_tokens": chunks, "total_tokens": 19 + chunks}}  # fmt: skip
    return (
        [_chunk({"role": "assistant", "content": ""})]
        + [_chunk({"content": "tok "}) for _ in range(chunks)]
        + [_chunk({}, "stop"), b"data: " + json.dumps(usage).encode() + b"\n\n", b"data: [DONE]\n\n"]
    )


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(self, frames: list[bytes], delay: float) -> None:
        self._frames = frames
        self._delay = delay
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body.clear()
        assert self._transport is not None
        if b'"stream":true' in body.replace(b" ", b""):
            if self._delay:
                asyncio.ensure_future(self._drip())
            else:
                head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                self._transport.write(head + b"".join(_http_chunk(f) for f in self._frames) + b"0\r\n\r\n")
            return
        self._transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(COMPLETION), COMPLETION)
        )

    async def _drip(self) -> None:
        transport = self._transport
        assert transport is not None
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for frame in self._frames:
            if transport.is_closing():
                return
            transport.write(_http_chunk(frame))
            await asyncio.sleep(self._delay)
        transport.write(b"0\r\n\r\n")


async def serve(host: str, port: int, chunks: int, delay_ms: float) -> None:
    frames = stream_frames(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(frames, delay_ms / 1000), host, port, backlog=4096, reuse_port=True
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="milliseconds")
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port, args.chunks, args.chunk_delay))


if __name__ == "__main__":
    main()
