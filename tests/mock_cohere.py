"""A local server speaking Cohere's v2 Chat and Embed APIs, strict about fields like the real one.

Unknown top-level fields are a 400 (Cohere rejects OpenAI's `stream_options`, for one), embed
needs `input_type`, and a tool message needs its `tool_call_id`. "command-tools" calls tools;
"fail-429" and "fail-498" fail.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from aiohttp import web

from tests.mock_server import ThreadedServer

COHERE_KEY = "co-test-key-0123456789abcdef"
CHAT_FIELDS = {"model", "messages", "stream", "tools", "tool_choice", "max_tokens", "stop_sequences", "temperature",
               "p", "k", "seed", "frequency_penalty", "presence_penalty", "response_format", "strict_tools",
               "documents", "citation_options", "safety_mode", "logprobs", "thinking"}  # fmt: skip
USAGE = {
    "billed_units": {"input_tokens": 10, "output_tokens": 5},
    "tokens": {"input_tokens": 70, "output_tokens": 5},
    "cached_tokens": 2,
}
TOOL_CALLS = [
    {"id": "get_weather_x1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
    {"id": "get_time_x2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
]  # fmt: skip


def error(status: int, message: str) -> web.Response:
    return web.json_response({"id": "err-1", "message": message}, status=status)


class MockCohere(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/chat", self.chat)
        app.router.add_post("/v2/embed", self.embed)

    def _auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("authorization") != f"Bearer {COHERE_KEY}":
            return error(401, "invalid api token")
        return None

    async def chat(self, request: web.Request) -> web.StreamResponse:  # noqa: C901 - one branch per rule and scenario
        body = await self.record(request)
        denied = self._auth(request)
        if denied:
            return denied
        unknown = set(body) - CHAT_FIELDS
        if unknown:
            return error(400, f"invalid request: unknown field(s) {sorted(unknown)}")
        for i, tool in enumerate(body.get("tools") or ()):
            extra = set(tool.get("function", {})) - {"name", "description", "parameters"}
            if extra:  # Cohere v2's function object has exactly these members
                return error(422, f"unknown field: parameter '{sorted(extra)[0]}' in tools[{i}].function")
        if "strict_tools" in body and not isinstance(body["strict_tools"], bool):
            return error(422, "strict_tools must be a boolean")
        for message in body["messages"]:
            if message["role"] not in ("system", "user", "assistant", "tool"):
                return error(400, f"invalid role {message['role']}")
            if message["role"] == "tool" and not message.get("tool_call_id"):
                return error(400, "tool message requires tool_call_id")
            if isinstance(message.get("content"), list) and any("type" not in part for part in message["content"]):
                return error(400, "invalid request: content parts need a type")
        model = body["model"]
        if model == "fail-429":
            return web.json_response(
                {
                    "message": "You are using a Trial key, which is limited to 10 API calls / minute."
                },
                status=429,
                headers={"retry-after": "3"},
            )
        if model == "fail-498":
            return error(498, "invalid api token")
        calls = (
            TOOL_CALLS
            if model.startswith("command-tools")
            and body.get("tools")
            and body.get("tool_choice") != "NONE"
            else []
        )
        last = body["messages"][-1]
        text = f"echo: {last['content']}" if isinstance(last.get("content"), str) else "echo"
        if calls:
            text = ""
        finish = "TOOL_CALL" if calls else "COMPLETE"
        if not body.get("stream"):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": [{"type": "text", "text": text}] if text else [],
            }
            if calls:
                message["tool_calls"] = calls
                message["tool_plan"] = "I will call the tools."
            return web.json_response(
                {"id": "co-resp-1", "finish_reason": finish, "message": message, "usage": USAGE}
            )
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        events: list[dict[str, Any]] = [
            {
                "type": "message-start",
                "id": "co-resp-1",
                "delta": {"message": {"role": "assistant"}},
            }
        ]
        if calls:
            events.append(
                {
                    "type": "tool-plan-delta",
                    "delta": {"message": {"tool_plan": "I will call the tools."}},
                }
            )
            for i, call in enumerate(calls):
                head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
                events.append(
                    {
                        "type": "tool-call-start",
                        "index": i,
                        "delta": {"message": {"tool_calls": head}},
                    }
                )
                args = call["function"]["arguments"]
                for part in (args[:5], args[5:]):
                    events.append(
                        {
                            "type": "tool-call-delta",
                            "index": i,
                            "delta": {"message": {"tool_calls": {"function": {"arguments": part}}}},
                        }
                    )
                events.append({"type": "tool-call-end", "index": i})
        else:
            events.append(
                {
                    "type": "content-start",
                    "index": 0,
                    "delta": {"message": {"content": {"type": "text", "text": ""}}},
                }
            )
            for word in text.split(" "):
                events.append(
                    {
                        "type": "content-delta",
                        "index": 0,
                        "delta": {"message": {"content": {"text": word + " "}}},
                    }
                )
            events.append({"type": "content-end", "index": 0})
        if model == "error-stream":
            events.append({"type": "message-end", "delta": {"error": "internal server error, please try again", "finish_reason": "ERROR"}})
        else:
            events.append({"type": "message-end", "delta": {"finish_reason": finish, "usage": USAGE}})
        for event in events:
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
        await response.write_eof()
        return response  # fmt: skip

    async def embed(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        denied = self._auth(request)
        if denied:
            return denied
        if not body.get("input_type"):
            return error(
                400, "invalid request: input_type is required for embed-v3 and newer models"
            )
        if len(body.get("texts", [])) > 96:
            return error(400, "invalid request: texts must have at most 96 items")
        types = body.get("embedding_types") or ["float"]
        vectors = [[0.25 + i, -0.5, 2.0] for i in range(len(body["texts"]))]
        embeddings: dict[str, Any] = {}
        if "float" in types:
            embeddings["float"] = vectors
        if "base64" in types:
            embeddings["base64"] = [
                base64.b64encode(struct.pack("<3f", *v)).decode() for v in vectors
            ]
        return web.json_response({"id": "emb-1", "embeddings": embeddings, "texts": body["texts"],
                                  "meta": {"billed_units": {"input_tokens": 6}}, "response_type": "embeddings_by_type"})  # fmt: skip
