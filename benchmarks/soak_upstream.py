"""A provider for the soak, in a process of its own: OpenAI's chat completions and Anthropic's
messages, streamed or not, with a provider's latency (20-60 ms to answer; streams paced a
chunk every 8 ms), a failure share set at run time, and counts the soak reads back:

    POST /__soak/fault {"fail_ratio": 0.5}     a share of requests answered 500
    GET  /__soak/stats                          {"requests", "failed", "leaked"}

`leaked` counts requests whose body still held the soak's PII markers (guardrails mask them
before a provider sees them).

    python -m benchmarks.soak_upstream --port 9001
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from typing import Any

from aiohttp import web

MARKERS = ("dana.whitfield@fastmail.com", "+1 415 555 0199")  # example.com is a placeholder: never PII
WORDS = ["The", " answer", " is", " forty", "-two", ", as", " computed", "."]


class Upstream:
    def __init__(self) -> None:
        self.fail_ratio = 0.0
        self.requests = 0
        self.failed = 0
        self.leaked = 0

    async def _admit(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        raw = await request.read()
        self.requests += 1
        text = raw.decode(errors="replace")
        if any(marker in text for marker in MARKERS):
            self.leaked += 1
        body = json.loads(raw)
        await asyncio.sleep(random.uniform(0.02, 0.06))
        if self.fail_ratio and random.random() < self.fail_ratio:
            self.failed += 1
            error = {"error": {"message": "overloaded", "type": "server_error", "code": None}}
            return body, web.json_response(error, status=500)
        return body, None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request)
        if refused is not None:
            return refused
        model = body.get("model", "m")
        usage = {"prompt_tokens": 24, "completion_tokens": len(WORDS), "total_tokens": 24 + len(WORDS)}
        if not body.get("stream"):
            return web.json_response({
                "id": "chatcmpl-soak", "object": "chat.completion", "created": 1741569952,
                "model": model, "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": "".join(WORDS)}}],
            })  # fmt: skip
        reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await reply.prepare(request)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            data = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": 1741569952,
                    "model": model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
            return f"data: {json.dumps(data)}\n\n".encode()

        await reply.write(chunk({"role": "assistant", "content": ""}))
        for word in WORDS:
            await asyncio.sleep(0.008)
            await reply.write(chunk({"content": word}))
        await reply.write(chunk({}, "stop"))
        tail = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": 1741569952,
                "model": model, "choices": [], "usage": usage}  # fmt: skip
        await reply.write(f"data: {json.dumps(tail)}\n\ndata: [DONE]\n\n".encode())
        await reply.write_eof()
        return reply

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._admit(request)
        if refused is not None:
            return web.json_response(
                {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}},
                status=529,
            )
        model = body.get("model", "claude")
        usage = {"input_tokens": 24, "output_tokens": len(WORDS)}
        message = {"id": "msg_soak", "type": "message", "role": "assistant", "model": model,
                   "stop_reason": "end_turn", "stop_sequence": None}  # fmt: skip
        if not body.get("stream"):
            return web.json_response({**message, "usage": usage,
                                      "content": [{"type": "text", "text": "".join(WORDS)}]})  # fmt: skip
        reply = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await reply.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await reply.write(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode())

        start = {**message, "stop_reason": None, "content": [], "usage": {**usage, "output_tokens": 1}}
        await event("message_start", {"message": start})
        await event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        for word in WORDS:
            await asyncio.sleep(0.008)
            await event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}})
        await event("content_block_stop", {"index": 0})
        await event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                      "usage": {"output_tokens": len(WORDS)}})  # fmt: skip
        await event("message_stop", {})
        await reply.write_eof()
        return reply

    async def fault(self, request: web.Request) -> web.Response:
        self.fail_ratio = float((await request.json())["fail_ratio"])
        return web.json_response({"fail_ratio": self.fail_ratio})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "failed": self.failed, "leaked": self.leaked})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    upstream = Upstream()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", upstream.chat)
    app.router.add_post("/v1/messages", upstream.messages)
    app.router.add_post("/__soak/fault", upstream.fault)
    app.router.add_get("/__soak/stats", upstream.stats)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
