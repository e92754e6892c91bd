"""A local server speaking Gemini's GenerateContent API (JSON and `alt=sse` streams).

Strict like the real one: a missing or wrong x-goog-api-key is a 400 INVALID_ARGUMENT,
roles other than user/model are rejected, a functionResponse must answer a functionCall of the
turn before, and JSON Schema keywords outside Gemini's subset are rejected. Scripted by model:
"gemini-tools" calls two functions, "gemini-blocked" blocks the prompt, "gemini-safety" stops
for safety, "gemini-think" thinks first, "fail-429" / "fail-503" fail, "error-stream" and
"cut-stream" fail mid-stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.mock_server import ThreadedServer

GEMINI_KEY = "AIzaSyTestKey0000000000000000000000000"
USAGE = {
    "promptTokenCount": 12,
    "candidatesTokenCount": 6,
    "totalTokenCount": 22,
    "cachedContentTokenCount": 4,
    "thoughtsTokenCount": 4,
}
_ALLOWED_SCHEMA = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                   "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
                   "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum"}  # fmt: skip


def error(
    status: int, rpc: str, message: str, details: list[dict[str, Any]] | None = None
) -> web.Response:
    body = {"error": {"code": status, "message": message, "status": rpc, "details": details or []}}
    return web.json_response(body, status=status)


def _schema_problem(schema: Any) -> str | None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key not in _ALLOWED_SCHEMA:
                return key
            children = value.values() if key == "properties" else [value] if key == "items" else []
            for child in children:
                bad = _schema_problem(child)
                if bad:
                    return bad
    return None


def validate(body: dict[str, Any]) -> web.Response | None:  # noqa: C901 - one check per rule the real API enforces
    contents = body.get("contents") or []
    if not contents:
        return error(
            400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified"
        )
    for i, content in enumerate(contents):
        unsigned = any("functionCall" in p and not p.get("thoughtSignature") for p in content["parts"])
        if content.get("role") == "model" and body.get("_model", "").startswith("gemini-3") and unsigned:
            return error(400, "INVALID_ARGUMENT", "Function call is missing a thought_signature in functionCall parts.")
        if content.get("role") not in ("user", "model"):
            return error(
                400, "INVALID_ARGUMENT", f"Please use a valid role: user, model. (contents[{i}])"
            )
        for part in content["parts"]:
            if "functionResponse" in part:
                previous = contents[i - 1] if i else {}
                names = [
                    p["functionCall"]["name"]
                    for p in previous.get("parts", [])
                    if "functionCall" in p
                ]
                if part["functionResponse"]["name"] not in names:
                    return error(
                        400,
                        "INVALID_ARGUMENT",
                        "Please ensure that function response turn comes immediately after a function call turn.",
                    )
    for tool in body.get("tools") or []:
        for decl in tool.get("functionDeclarations", []):
            bad = _schema_problem(decl.get("parameters"))
            if bad:
                return error(
                    400, "INVALID_ARGUMENT", f'Invalid JSON payload received. Unknown name "{bad}"'
                )
    return None  # fmt: skip


def candidate_parts(model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    if model.startswith("gemini-3") and body.get("tools") and not any("functionResponse" in p for p in body["contents"][-1]["parts"]):
        return [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "c2lnLTE="}]
    if model.startswith("gemini-tools") and body.get("tools"):
        mode = body.get("toolConfig", {}).get("functionCallingConfig", {}).get("mode")
        if mode != "NONE":
            return [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {"tz": "CET"}}},
            ]
    last = body["contents"][-1]["parts"]
    if any("functionResponse" in p for p in last):
        text = "results: " + "; ".join(json.dumps(p["functionResponse"]["response"]) for p in last)
    else:
        text = "echo: " + " ".join(p.get("text") or f"<{next(iter(p))}>" for p in last)
    parts: list[dict[str, Any]] = [{"text": text}]
    if model.startswith("gemini-think"):
        parts.insert(0, {"text": "Thinking it over.", "thought": True})
    return parts  # fmt: skip


class MockGemini(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1beta/models/{target}", self.generate)

    def check_auth(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-goog-api-key") == GEMINI_KEY:
            return None
        return error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                     [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])  # fmt: skip

    async def generate(self, request: web.Request) -> web.StreamResponse:  # noqa: C901 - one branch per scripted scenario
        body = await self.record(request)
        model, _, method = request.match_info["target"].partition(":")
        invalid = self.check_auth(request) or validate({**body, "_model": model})
        if invalid is not None:
            return invalid
        if model == "fail-429":
            return error(
                429,
                "RESOURCE_EXHAUSTED",
                "Resource has been exhausted (e.g. check quota).",
                [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
            )
        if model == "fail-503":
            return error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        if model == "fail-404":
            return error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta")
        if model == "gemini-blocked":
            blocked = {
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
            }
            if method == "generateContent":
                return web.json_response(blocked)
            return web.Response(
                body=b"data: " + json.dumps(blocked).encode() + b"\r\n\r\n",
                content_type="text/event-stream",
            )
        parts = candidate_parts(model, body)
        finish = {"gemini-safety": "SAFETY", "gemini-max": "MAX_TOKENS"}.get(model, "STOP")
        if method == "generateContent":
            candidate = {
                "content": {"role": "model", "parts": parts},
                "finishReason": finish,
                "index": 0,
            }
            return web.json_response(
                {
                    "candidates": [candidate],
                    "usageMetadata": USAGE,
                    "modelVersion": model,
                    "responseId": "resp-1",
                }
            )
        if request.query.get("alt") != "sse":
            return error(400, "INVALID_ARGUMENT", "the mock only streams with alt=sse")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        events: list[dict[str, Any]] = []
        for part in parts:
            if "text" in part and not part.get("thought"):
                words = part["text"].split(" ")
                for k, word in enumerate(words):
                    events.append({"text": word + ("" if k == len(words) - 1 else " ")})
            else:
                events.append(part)
        for i, part in enumerate(events):
            if model == "error-stream" and i == 1:
                await response.write(
                    b"data: "
                    + json.dumps(
                        {
                            "error": {
                                "code": 503,
                                "message": "The model is overloaded.",
                                "status": "UNAVAILABLE",
                            }
                        }
                    ).encode()
                    + b"\r\n\r\n"
                )
                return response
            if model == "cut-stream" and i == 1:
                request.transport.close()  # type: ignore[union-attr]
                return response
            last = i == len(events) - 1
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [part]}, "index": 0}
            chunk: dict[str, Any] = {
                "candidates": [candidate],
                "modelVersion": model,
                "responseId": "resp-1",
                "usageMetadata": USAGE if last else {"promptTokenCount": 12, "totalTokenCount": 12},
            }
            if last:
                candidate["finishReason"] = finish
            await response.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
            await asyncio.sleep(0)
        await response.write_eof()
        return response  # fmt: skip
