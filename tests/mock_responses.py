"""OpenAI's Responses API as OpenAI speaks it, for MockOpenAI: whole Response objects and the
typed event stream, its own ids and stored state (an unknown previous_response_id is a 400,
as OpenAI answers), hosted tools accepted (a web_search call item comes back)."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from aiohttp import web

USAGE = {
    "input_tokens": 13, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 0},
    "output_tokens": 9, "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 22,
}  # fmt: skip


def _last_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    for item in reversed(value or []):
        if item.get("type") == "function_call_output":
            return f"tool said {item.get('output')}"
        content = item.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict)]
            if texts:
                return " ".join(texts)
    return ""


class ResponsesAPI:
    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.refuse_deletes = False  # a test sets it: DELETE answers 500

    def delete(self, response_id: str) -> web.Response:
        if self.refuse_deletes:
            return web.json_response({"error": {"message": "The server had an error.",
                                                 "type": "server_error", "param": None, "code": None}},
                                     status=500)  # fmt: skip
        if self.stored.pop(response_id, None) is None:
            return web.json_response({"error": {
                "message": f"Response with id '{response_id}' not found.",
                "type": "invalid_request_error", "param": None, "code": None,
            }}, status=404)  # fmt: skip
        return web.json_response({"id": response_id, "object": "response.deleted", "deleted": True})

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        previous = body.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            raise KeyError(previous)
        text = _last_text(body.get("input"))
        output: list[dict[str, Any]] = [
            {"id": "rs_" + secrets.token_hex(8), "type": "reasoning",
             "summary": [{"type": "summary_text", "text": "thinking"}]},
        ]  # fmt: skip
        tools = body.get("tools") or []
        if any(t.get("type") == "web_search" for t in tools):
            output.append({"id": "ws_" + secrets.token_hex(8), "type": "web_search_call",
                           "status": "completed", "action": {"type": "search", "query": text}})  # fmt: skip
        functions = [t for t in tools if t.get("type") == "function"]
        answered = isinstance(body.get("input"), list) and any(
            i.get("type") == "function_call_output" for i in body["input"]
        )
        if functions and not answered:
            output.append({"id": "fc_" + secrets.token_hex(8), "type": "function_call",
                           "status": "completed", "call_id": "call_" + secrets.token_hex(6),
                           "name": functions[0]["name"], "arguments": '{"city": "Paris"}'})  # fmt: skip
        else:
            chained = f" (after {previous})" if previous else ""
            output.append({
                "id": "msg_" + secrets.token_hex(8), "type": "message", "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": f"native: {text}{chained}",
                             "annotations": [], "logprobs": []}],
            })  # fmt: skip
        response = {
            "id": "resp_" + secrets.token_hex(12), "object": "response",
            "created_at": int(time.time()), "status": "completed", "background": False,
            "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "model": body["model"] + "-2026",
            "output": output, "parallel_tool_calls": True,
            "previous_response_id": previous, "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True), "temperature": 1.0,
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"), "tools": tools, "top_p": 1.0,
            "truncation": "disabled", "usage": USAGE, "user": None, "metadata": {},
        }  # fmt: skip
        if body.get("store", True):
            self.stored[response["id"]] = response
        return response

    async def handle(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        try:
            response = self.answer(body)
        except KeyError as err:
            return web.json_response({"error": {
                "message": f"Previous response with id '{err.args[0]}' not found.",
                "type": "invalid_request_error", "param": "previous_response_id",
                "code": "previous_response_not_found",
            }}, status=400)  # fmt: skip
        if not body.get("stream"):
            return web.json_response(response)
        stream = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await stream.prepare(request)
        for event in events(response):
            frame = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            await stream.write(frame.encode())
        await stream.write_eof()
        return stream


def events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The event sequence OpenAI sends for a finished response."""
    start = {**response, "status": "in_progress", "output": [], "usage": None}
    out: list[dict[str, Any]] = [
        {"type": "response.created", "response": start},
        {"type": "response.in_progress", "response": start},
    ]
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out.append({"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "status": "in_progress", "content": []}})  # fmt: skip
            out.append({"type": "response.content_part.added", **where, "part": empty})
            for word in text.split(" "):
                out.append({"type": "response.output_text.delta", **where, "delta": word + " ",
                            "logprobs": []})  # fmt: skip
            item["content"][0]["text"] = " ".join(text.split(" ")) + " "
            text = item["content"][0]["text"]
            out.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
            out.append({"type": "response.content_part.done", **where, "part": item["content"][0]})
        elif item["type"] == "function_call":
            out.append({"type": "response.output_item.added", "output_index": index,
                        "item": {**item, "arguments": "", "status": "in_progress"}})  # fmt: skip
            out.append({"type": "response.function_call_arguments.delta", "item_id": item["id"],
                        "output_index": index, "delta": item["arguments"]})  # fmt: skip
            out.append({"type": "response.function_call_arguments.done", "item_id": item["id"],
                        "output_index": index, "arguments": item["arguments"]})  # fmt: skip
        else:
            out.append({"type": "response.output_item.added", "output_index": index, "item": item})
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})
    out.append({"type": "response.completed", "response": response})
    for seq, event in enumerate(out):
        event["sequence_number"] = seq
    return out
