"""A mock upstream built for speed, so it is never the bottleneck of a benchmark.

Answers every POST with a canned chat completion (`--size` characters of content), or, when the
body asks for `"stream": true`, an SSE stream of `--chunks` chunks (optionally `--chunk-delay` ms
apart, the first token `--first-token-delay` ms after the head), after `--latency` ms if given.
POSTs to a path ending in /messages get Anthropic's format instead (a Message, or its
named-event stream), for the translation scenarios, and /responses OpenAI's Responses API. Raw asyncio protocol with httptools parsing; run with
`python -m benchmarks.fast_upstream --port 9000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httptools
import uvloop

ANSWER = "Hello! How can I assist you today?"
TOKEN = b'"tok '  # what every content frame of a stream carries, in both formats


def completion(text: str = ANSWER) -> bytes:
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 1741569952, "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 19, "completion_tokens": max(1, len(text) // 4), "total_tokens": 19 + max(1, len(text) // 4)},
    }, separators=(",", ":")).encode()  # fmt: skip


COMPLETION = completion()


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


def anthropic_message(text: str = ANSWER) -> bytes:
    return json.dumps({
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 19, "output_tokens": max(1, len(text) // 4)},
    }, separators=(",", ":")).encode()  # fmt: skip


def _event(name: str, data: dict[str, object]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), json.dumps(data, separators=(",", ":")).encode())


def anthropic_frames(chunks: int) -> list[bytes]:
    start = {"type": "message_start", "message": {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": "claude-bench", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 19, "output_tokens": 1}}}  # fmt: skip
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "tok "}}
    return (
        [_event("message_start", start),
         _event("content_block_start", {"type": "content_block_start", "index": 0,
                                        "content_block": {"type": "text", "text": ""}})]
        + [_event("content_block_delta", delta) for _ in range(chunks)]
        + [_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
           _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                  "stop_sequence": None}, "usage": {"output_tokens": chunks}}),
           _event("message_stop", {"type": "message_stop"})]
    )  # fmt: skip


def response_object(text: str = ANSWER) -> bytes:
    """OpenAI's Responses API answer (for /v1/responses pass-through)."""
    return json.dumps({
        "id": "resp_bench", "object": "response", "created_at": 1741569952, "status": "completed",
        "model": "bench", "output": [{"id": "msg_bench", "type": "message", "status": "completed",
        "role": "assistant", "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 19, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": max(1, len(text) // 4), "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": 19 + max(1, len(text) // 4)},
    }, separators=(",", ":")).encode()  # fmt: skip


def response_frames(chunks: int) -> list[bytes]:
    start = {"type": "response.created", "sequence_number": 0, "response": {"id": "resp_bench", "status": "in_progress", "output": []}}
    delta = {"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0, "content_index": 0, "delta": "tok "}
    done = json.loads(response_object("tok " * chunks))
    return (
        [_event("response.created", start)]
        + [_event("response.output_text.delta", {**delta, "sequence_number": i + 1}) for i in range(chunks)]
        + [_event("response.completed", {"type": "response.completed", "sequence_number": chunks + 1, "response": done})]
    )  # fmt: skip


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class UpstreamProtocol(asyncio.Protocol):
    def __init__(  # noqa: PLR0913 - the response's timing
        self,
        formats: dict[str, tuple[bytes, list[bytes]]],
        delay: float,
        latency: float = 0.0,
        first_delay: float | None = None,
    ) -> None:
        self._formats = formats  # "chat" | "messages" | "responses" -> (whole body, stream frames)
        self._delay = delay
        self._first_delay = delay if first_delay is None else first_delay
        self._latency = latency  # seconds before the response head
        self._parser = httptools.HttpRequestParser(self)
        self._body: list[bytes] = []
        self._url = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.close()

    def on_url(self, url: bytes) -> None:
        self._url = url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self._body)
        self._body.clear()
        url = self._url.split(b"?")[0]
        kind = "messages" if url.endswith(b"/messages") else "responses" if url.endswith(b"/responses") else "chat"
        whole, frames = self._formats[kind]
        stream = b'"stream":true' in body.replace(b" ", b"")
        if self._latency:
            asyncio.get_running_loop().call_later(self._latency, self._answer, stream, whole, frames)
        else:
            self._answer(stream, whole, frames)

    def _answer(self, stream: bool, whole: bytes, frames: list[bytes]) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if stream:
            if self._delay:
                asyncio.ensure_future(self._drip(frames))
            else:
                head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
                self._transport.write(head + b"".join(_http_chunk(f) for f in frames) + b"0\r\n\r\n")
            return
        self._transport.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
            % (len(whole), whole)
        )

    async def _drip(self, frames: list[bytes]) -> None:
        """The frames before the first token go with the head; the first token follows after
        the first-token delay, and every later frame one chunk delay after the one before."""
        transport = self._transport
        assert transport is not None
        first = next((i for i, frame in enumerate(frames) if TOKEN in frame), 0)
        opening = b"".join(_http_chunk(frame) for frame in frames[:first])
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
        if self._first_delay:
            transport.write(head + opening)
            await asyncio.sleep(self._first_delay)
            transport.write(_http_chunk(frames[first]))
        else:  # no timer before the first token: its arrival is then the hop's alone
            transport.write(head + opening + _http_chunk(frames[first]))
        for frame in frames[first + 1 :]:
            await asyncio.sleep(self._delay)
            if transport.is_closing():
                return
            transport.write(_http_chunk(frame))
        transport.write(b"0\r\n\r\n")


async def serve(  # noqa: PLR0913 - the response's shape
    host: str,
    port: int,
    chunks: int,
    delay_ms: float,
    size: int | None = None,
    latency_ms: float = 0.0,
    first_token_ms: float | None = None,
) -> None:
    text = ANSWER if size is None else ("lorem ipsum " * (size // 12 + 1))[:size]
    formats = {
        "chat": (completion(text), stream_frames(chunks)),
        "messages": (anthropic_message(text), anthropic_frames(chunks)),
        "responses": (response_object(text), response_frames(chunks)),
    }
    first = None if first_token_ms is None else first_token_ms / 1000
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: UpstreamProtocol(formats, delay_ms / 1000, latency_ms / 1000, first),
        host,
        port,
        backlog=4096,
        reuse_port=True,
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="milliseconds")
    parser.add_argument("--size", type=int, help="characters of content in a whole answer")
    parser.add_argument("--latency", type=float, default=0.0, help="milliseconds before answering")
    parser.add_argument(
        "--first-token-delay", type=float, help="milliseconds from the head to the first token (default: --chunk-delay)"
    )
    args = parser.parse_args()
    uvloop.run(
        serve(args.host, args.port, args.chunks, args.chunk_delay, args.size, args.latency, args.first_token_delay)
    )


if __name__ == "__main__":
    main()
