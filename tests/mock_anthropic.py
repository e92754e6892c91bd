"""A local server speaking Anthropic's Messages API, strict where the real one is strict.

It rejects what Anthropic rejects (no anthropic-version, no max_tokens, roles that do not
alternate, tool blocks without tool definitions, malformed tool ids), and scripts answers and
faults by model name: "claude-tools" calls two tools after a text block, "claude-json"
answers through the forced JSON tool, "claude-think" thinks first, "fail-529" is overloaded.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from tests.mock_server import ThreadedServer

ANTHROPIC_KEY = "sk-ant-api03-test-key-0123456789"
USAGE = {
    "input_tokens": 20,
    "output_tokens": 9,
    "cache_creation_input_tokens": 3,
    "cache_read_input_tokens": 5,
}
TOOL_USES = [
    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    {"type": "tool_use", "id": "toolu_01B", "name": "get_time", "input": {"tz": "CET"}},
]
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
RATE_HEADERS = {
    "anthropic-ratelimit-requests-limit": "50",
    "anthropic-ratelimit-requests-remaining": "49",
    "anthropic-ratelimit-tokens-limit": "40000",
    "anthropic-ratelimit-tokens-remaining": "39000",
    "request-id": "req_mock",
}  # fmt: skip


def error(status: int, type_: str, message: str, **headers: str) -> web.Response:
    body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_mock"}
    return web.json_response(body, status=status, headers=headers)


def _invalid(message: str) -> web.Response:
    return error(400, "invalid_request_error", message)


def validate(body: dict[str, Any], headers: Any) -> web.Response | None:  # noqa: C901 - one check per rule the real API enforces
    if not headers.get("anthropic-version"):
        return _invalid("anthropic-version: header is required")
    if headers.get("x-api-key") != ANTHROPIC_KEY:
        return error(401, "authentication_error", "invalid x-api-key")
    if "max_tokens" not in body:
        return _invalid("max_tokens: Field required")
    messages = body.get("messages") or []
    if not messages:
        return _invalid("messages: at least one message is required")
    for i, message in enumerate(messages):
        if message["role"] not in ("user", "assistant"):
            return _invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        if i and message["role"] == messages[i - 1]["role"]:
            return _invalid('messages: roles must alternate between "user" and "assistant"')
        blocks = message["content"] if isinstance(message["content"], list) else []
        for block in blocks:
            if block["type"] in ("tool_use", "tool_result"):
                if not body.get("tools"):
                    return _invalid(
                        "Requests which include `tool_use` or `tool_result` blocks must define tools."
                    )
                ident = block.get("id") or block.get("tool_use_id") or ""
                if not _TOOL_ID.match(ident):
                    return _invalid(f"messages.{i}: tool id does not match '^[a-zA-Z0-9_-]+$'")
            if block["type"] == "text" and not block["text"]:
                return _invalid("messages: text content blocks must be non-empty")
    if body.get("system") is not None and not isinstance(body["system"], (str, list)):
        return _invalid("system: Input should be a valid string or list")
    return None  # fmt: skip


def answer_blocks(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    model = body["model"]
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool" and choice.get("name") == "json_response":
        return [
            {
                "type": "tool_use",
                "id": "toolu_json",
                "name": "json_response",
                "input": {"city": "Paris", "temp_c": 21},
            }
        ], "tool_use"
    if model.startswith("claude-tools") and body.get("tools") and choice.get("type") != "none":
        return [{"type": "text", "text": "Let me check."}, *TOOL_USES], "tool_use"
    last = body["messages"][-1]["content"]
    answered = isinstance(last, list) and any(b["type"] == "tool_result" for b in last)
    if model.startswith("claude-agent") and body.get("tools") and not answered:  # one call, then text
        tool = body["tools"][0]["name"]
        return [{"type": "tool_use", "id": "toolu_agent1", "name": tool, "input": {"city": "Paris"}}], "tool_use"
    if isinstance(last, list):
        kinds = [b["type"] for b in last]
        if "tool_result" in kinds:
            results = [b for b in last if b["type"] == "tool_result"]
            text = "results: " + "; ".join(str(b.get("content")) for b in results)
        else:
            text = "echo: " + " ".join(b.get("text", f"<{b['type']}>") for b in last)
    else:
        text = f"echo: {last}"
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if model.startswith("claude-think"):
        blocks.insert(0, {"type": "thinking", "thinking": "Let me think.", "signature": "sig"})
    if model.startswith("claude-max"):
        return blocks, "max_tokens"
    return blocks, "end_turn"  # fmt: skip


def message(body: dict[str, Any], blocks: list[dict[str, Any]], stop: str) -> dict[str, Any]:
    model = body["model"]  # an alias is answered by its dated model, as Anthropic does
    served = f"{model}-20250101" if model.startswith("claude-alias") else model
    return {"id": "msg_mock01", "type": "message", "role": "assistant", "model": served,
            "content": blocks, "stop_reason": stop, "stop_sequence": None, "usage": USAGE}  # fmt: skip


def stream_events(
    body: dict[str, Any], blocks: list[dict[str, Any]], stop: str
) -> list[tuple[str, dict[str, Any]]]:
    start = message(body, [], None)  # type: ignore[arg-type]
    start["usage"] = {**USAGE, "output_tokens": 1}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"message": start}), ("ping", {})]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(
                (
                    "content_block_start",
                    {"index": index, "content_block": {"type": "text", "text": ""}},
                )
            )
            words = block["text"].split(" ")
            for k, word in enumerate(words):
                text = word if k == len(words) - 1 else word + " "
                events.append(
                    (
                        "content_block_delta",
                        {"index": index, "delta": {"type": "text_delta", "text": text}},
                    )
                )
        elif block["type"] == "thinking":
            events.append(
                (
                    "content_block_start",
                    {"index": index, "content_block": {"type": "thinking", "thinking": ""}},
                )
            )
            events.append(
                (
                    "content_block_delta",
                    {
                        "index": index,
                        "delta": {"type": "thinking_delta", "thinking": block["thinking"]},
                    },
                )
            )
            events.append(
                (
                    "content_block_delta",
                    {"index": index, "delta": {"type": "signature_delta", "signature": "sig"}},
                )
            )
        else:
            events.append(
                ("content_block_start", {"index": index, "content_block": {**block, "input": {}}})
            )
            args = json.dumps(block["input"])
            for part in ("", args[: len(args) // 2], args[len(args) // 2 :]):
                events.append(
                    (
                        "content_block_delta",
                        {
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
                )
        events.append(("content_block_stop", {"index": index}))
    events.append(
        (
            "message_delta",
            {
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": USAGE["output_tokens"]},
            },
        )
    )
    events.append(("message_stop", {}))
    return events  # fmt: skip


class MockAnthropic(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self.messages)
        app.router.add_post("/v1/messages/count_tokens", self.count_tokens)

    async def count_tokens(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"input_tokens": 42})

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        invalid = validate(body, request.headers)
        if invalid is not None:
            return invalid
        model = body["model"]
        if model == "fail-429":
            return error(
                429,
                "rate_limit_error",
                "Number of requests has exceeded your rate limit",
                **{"retry-after": "11", **RATE_HEADERS},
            )
        if model == "fail-529":
            return error(529, "overloaded_error", "Overloaded")
        if model == "fail-404":
            return error(404, "not_found_error", f"model: {model}")
        if model == "fail-context":
            return _invalid("prompt is too long: 250000 tokens > 200000 maximum")
        blocks, stop = answer_blocks(body)
        if not body.get("stream"):
            return web.json_response(message(body, blocks, stop), headers=RATE_HEADERS)
        response = web.StreamResponse(headers={"content-type": "text/event-stream", **RATE_HEADERS})
        await response.prepare(request)
        for i, (name, data) in enumerate(stream_events(body, blocks, stop)):
            # error-early fails before any content (after message_start, ping, block start);
            # error-stream after two words of it.
            if (model == "error-early" and i == 3) or (model == "error-stream" and i == 5):
                await asyncio.sleep(0.05)  # what came before arrives in its own read
                err = {
                    "type": "error",
                    "error": {"type": "overloaded_error", "message": "Overloaded"},
                }
                await response.write(f"event: error\ndata: {json.dumps(err)}\n\n".encode())
                return response
            await response.write(
                f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()
            )
            await asyncio.sleep(0)
        await response.write_eof()
        return response  # fmt: skip
