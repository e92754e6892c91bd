"""A local server speaking OpenAI's wire format, with scripted faults, for the gateway's tests.

The scenario is picked by the upstream model name: "gpt-ok" answers normally, "fail-429"
returns a rate-limit error, "cut-stream" drops the connection mid-stream, and so on. Every
request is recorded so tests can check what the gateway sent upstream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import struct
import time
from typing import Any

from aiohttp import web

from tests.mock_responses import ResponsesAPI
from tests.mock_server import ThreadedServer

SECRET_ECHO = "Incorrect API key provided: {key}"
AZURE_KEY = "azure-test-key-0123456789abcdef"
AZURE_FILTER_CHUNK = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                      "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}}}]}  # fmt: skip


def _usage(prompt: int = 11, completion: int = 7) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _error(status: int, message: str, type_: str, code: str | None, **headers: str) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return web.json_response(body, status=status, headers=headers)


TOOL_CALLS = [
    {"id": "call_a1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
    {"id": "call_b2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
]  # fmt: skip


def completion(model: str, text: str, tools: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if tools else text,
        "refusal": None,
    }
    if tools:
        message["tool_calls"] = TOOL_CALLS
    return {
        "id": "chatcmpl-mock1",
        "object": "chat.completion",
        "created": 1741569952,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None,
             "finish_reason": "tool_calls" if tools else "stop"}
        ],
        "usage": _usage(),
        "system_fingerprint": "fp_mock",
    }  # fmt: skip


def chunk(
    model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-mock1",
        "object": "chat.completion.chunk",
        "created": 1741569952,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }


def stream_chunks(
    model: str, words: list[str], tools: bool, with_usage: bool
) -> list[dict[str, Any]]:
    extra = {"usage": None} if with_usage else {}
    if tools:
        chunks = []
        for i, call in enumerate(TOOL_CALLS):
            head = {
                "index": i,
                "id": call["id"],
                "type": "function",
                "function": {"name": call["function"]["name"], "arguments": ""},
            }
            delta: dict[str, Any] = {"tool_calls": [head]}
            if i == 0:
                delta = {"role": "assistant", "content": None, "refusal": None, **delta}
            chunks.append(chunk(model, delta, **extra))
            args = call["function"]["arguments"]
            for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                chunks.append(
                    chunk(
                        model,
                        {"tool_calls": [{"index": i, "function": {"arguments": part}}]},
                        **extra,
                    )
                )
        chunks.append(chunk(model, {}, "tool_calls", **extra))
    else:
        chunks = [chunk(model, {"role": "assistant", "content": "", "refusal": None}, **extra)]
        chunks += [chunk(model, {"content": w}, **extra) for w in words]
        chunks.append(chunk(model, {}, "stop", **extra))
    if with_usage:
        chunks.append({**chunk(model, {}), "choices": [], "usage": _usage()})
    return chunks  # fmt: skip


def _bag_of_words(text: str) -> list[float]:
    """A stand-in embedding model: the same words give the same vector, whatever the case."""
    vector = [0.0] * 16
    for word in "".join(c if c.isalnum() else " " for c in text.lower()).split():
        vector[hashlib.sha256(word.encode()).digest()[0] % 16] += 1.0
    return vector


MODERATION_KEY = "sk-moderation-test-key-0123456789"


def chaos_outcome(seed: object, model: str) -> str:
    """What a chaos target does for one request: the same answer for the same seed and model,
    so a test can tell which requests had at least one healthy target."""
    roll = hashlib.sha256(f"{seed}:{model}".encode()).digest()[0] / 256
    for limit, outcome in ((0.55, "ok"), (0.65, "500"), (0.75, "503"), (0.85, "429"), (0.93, "drop")):
        if roll < limit:
            return outcome
    return "stall"


class MockOpenAI(ThreadedServer):
    """OpenAI's wire format, with faults scripted by model name.

    Routing scenarios: "status-503" (any status; "status-429-ra-2" adds retry-after: 2),
    "flaky-<id>-<n>" (fails n times with 503, then answers), "latency-<id>" (waits
    `latencies[id]` seconds), "drop" (closes the connection), "chaos-*" (chaos_outcome), and
    for streams "error-first", "stall-stream" and "stall-mid".
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context)
        self.responses_api = ResponsesAPI()
        self.counters: dict[str, int] = {}
        self.latencies: dict[str, float] = {}

    def hits(self, model: str) -> int:
        with self.state.lock:
            return sum(1 for r in self.state.requests if r.body.get("model") == model)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{prefix:.*}v1/chat/completions", self.chat)
        app.router.add_post("/{prefix:.*}v1/completions", self.completions)
        app.router.add_post("/{prefix:.*}v1/embeddings", self.embeddings)
        app.router.add_post("/{prefix:.*}v1/moderations", self.moderations)
        app.router.add_post("/{prefix:.*}v1/responses", self.responses)
        app.router.add_delete("/{prefix:.*}v1/responses/{response_id}", self.delete_response)
        app.router.add_post("/{prefix:.*}v1/responses/input_tokens", self.input_tokens)
        app.router.add_post("/openai/deployments/{deployment}/{kind:chat/completions|embeddings|responses}", self.azure)

    async def responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API (tests/mock_responses.py), with the same scripted faults."""
        body = await self.record(request)
        fault = await self._fault(body.get("model", ""), request, body)
        if fault is not None:
            return fault
        return await self.responses_api.handle(request, body)

    async def input_tokens(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's own count: 42 for any input (so a test can tell it from the gateway's)."""
        body = await self.record(request)
        fault = await self._fault(body.get("model", ""), request, body)
        if fault is not None:
            return fault
        return web.json_response({"object": "response.input_tokens", "input_tokens": 42})

    async def delete_response(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return self.responses_api.delete(request.match_info["response_id"])

    async def moderations(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's moderation endpoint: flags "harassment/threatening" when the input says
        "i will find you"; a key is required, and unknown body fields are refused, as OpenAI does."""
        body = await self.record(request)
        if request.headers.get("authorization") != f"Bearer {MODERATION_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        unknown = set(body) - {"input", "model"}
        if unknown:
            return _error(400, f"Unrecognized request argument supplied: {sorted(unknown)[0]}", "invalid_request_error", None)
        text = body.get("input")
        flagged = isinstance(text, str) and "i will find you" in text.lower()
        categories = {"harassment": flagged, "harassment/threatening": flagged, "violence": False}
        return web.json_response({
            "id": "modr-mock", "model": body.get("model", "omni-moderation-latest"),
            "results": [{"flagged": flagged, "categories": categories,
                         "category_scores": {k: 0.9 if v else 0.01 for k, v in categories.items()}}],
        })  # fmt: skip

    async def azure(self, request: web.Request) -> web.StreamResponse:
        """Azure's deployment URLs: api-key auth, a required api-version, the deployment as model."""
        if request.headers.get("api-key") != AZURE_KEY:
            return _error(401, "Access denied due to invalid subscription key.", "invalid_request_error", "401")
        if not request.query.get("api-version"):
            return _error(404, "Resource not found", "invalid_request_error", "404")
        deployment = request.match_info["deployment"]
        if deployment == "filtered":
            return _error(400, "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
                          "invalid_request_error", "content_filter")
        if request.match_info["kind"] == "embeddings":
            return await self.embeddings(request)
        if request.match_info["kind"] == "responses":
            return await self.responses(request)
        return await self.chat(request)

    async def _routing_fault(self, model: str, request: web.Request, body: dict[str, Any]) -> web.StreamResponse | None:  # noqa: C901 - one branch per scenario
        if model.startswith("chaos-"):
            outcome = chaos_outcome(body.get("chaos_seed"), model)
            if outcome == "ok":
                return None
            if outcome == "drop":
                model = "drop"
            elif outcome == "stall":
                await asyncio.sleep(5)  # well past the chaos route's first-byte deadline
                return None
            else:
                model = f"status-{outcome}"
        if model.startswith("status-"):
            parts = model.split("-")
            code = int(parts[1])
            headers = {"retry-after": parts[3]} if len(parts) > 3 and parts[2] == "ra" else {}
            return _error(code, f"upstream answered {code}", "server_error" if code >= 500 else "invalid_request_error", None, **headers)
        if model.startswith("flaky-"):
            _, ident, times, *rest = model.split("-")
            with self.state.lock:
                seen = self.counters[ident] = self.counters.get(ident, 0) + 1
            if seen <= int(times):
                code = int(rest[0]) if rest else 503
                headers = {"retry-after": "1"} if code == 429 else {}
                return _error(code, "flaky upstream", "server_error", None, **headers)
        if model.startswith("latency-"):
            await asyncio.sleep(self.latencies.get(model.removeprefix("latency-"), 0.0))
        if model == "drop":
            assert request.transport is not None
            request.transport.close()
            await asyncio.sleep(0.01)
            return web.Response(status=500)
        return None  # fmt: skip

    async def _fault(self, model: str, request: web.Request, body: dict[str, Any] | None = None) -> web.StreamResponse | None:
        routed = await self._routing_fault(model, request, body or {})
        if routed is not None:
            return routed
        if model == "fail-429":
            return _error(
                429,
                "Rate limit reached for requests",
                "requests",
                "rate_limit_exceeded",
                **{"retry-after": "7", "x-ratelimit-remaining-requests": "0"},
            )
        if model == "fail-500":
            return _error(
                500, "The server had an error while processing your request.", "server_error", None
            )
        if model == "fail-400":
            return _error(
                400, "Invalid value for 'temperature'.", "invalid_request_error", "invalid_value"
            )
        if model == "fail-401-echo":
            key = request.headers.get("authorization", "").removeprefix("Bearer ")
            return _error(
                401, SECRET_ECHO.format(key=key), "invalid_request_error", "invalid_api_key"
            )
        if model == "fail-html":
            return web.Response(
                status=503, text="<html>Service Unavailable</html>", content_type="text/html"
            )
        if model == "not-json":
            return web.Response(status=200, text="surprise", content_type="text/plain")
        if model.startswith("slow-"):
            await asyncio.sleep(float(model.removeprefix("slow-")))
        return None  # fmt: skip

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body["model"]
        fault = await self._fault(model, request, body)
        if fault is not None:
            return fault
        tools = model.startswith("tools") or bool(body.get("tools"))
        last = body["messages"][-1].get("content")
        text = f"echo: {last}" if isinstance(last, str) else "echo"
        if model.startswith("agent") and body["messages"][-1].get("role") == "tool":
            tools, text = False, f"results: {last}"  # an agent's model: one call, then text
        if model == "safety-judge":  # a classifier model, as a guardrail's judge asks one
            text = "UNSAFE: violence" if "i will hurt" in str(last).lower() else "SAFE"
        if model == "refuse":  # the model declines: `refusal`, no content
            return await self._refusal(request, body, model)
        if not body.get("stream"):
            answer = completion(model, text, tools)
            if body.get("service_tier") in ("priority", "flex"):  # as OpenAI says it served
                answer["service_tier"] = body["service_tier"]
            if model.startswith("no-usage"):  # a self-hosted server that reports none,
                del answer["usage"]  # and pretty-prints its JSON
                return web.Response(text=json.dumps(answer, indent=2), content_type="application/json")
            return web.json_response(answer)
        return await self._stream(request, body, model, text.split(" "), tools)

    async def _refusal(self, request: web.Request, body: dict[str, Any], model: str) -> web.StreamResponse:
        words = ["I can't", " help with", " that."]
        if not body.get("stream"):
            answer = completion(model, "")
            answer["choices"][0]["message"].update(content=None, refusal="".join(words))
            return web.json_response(answer)
        chunks = [chunk(model, {"role": "assistant", "content": None, "refusal": ""})]
        chunks += [chunk(model, {"refusal": w}) for w in words]
        chunks += [chunk(model, {}, "stop"), {**chunk(model, {}), "choices": [], "usage": _usage()}]
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for c in chunks:
            await response.write(b"data: " + json.dumps(c).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _stream(  # noqa: C901 - one branch per scripted stream fault
        self, request: web.Request, body: dict[str, Any], model: str, words: list[str], tools: bool
    ) -> web.StreamResponse:
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        groq = "groq" in request.path
        chunks = stream_chunks(model, [w + " " for w in words], tools, with_usage and not groq)
        if body.get("service_tier") in ("priority", "flex"):
            for each in chunks:
                each["service_tier"] = body["service_tier"]
        if groq:  # Groq puts usage in x_groq of the last chunk
            chunks[-1]["x_groq"] = {"id": "req_mock", "usage": _usage()}
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if request.path.startswith("/openai/"):
            await response.write(b"data: " + json.dumps(AZURE_FILTER_CHUNK).encode() + b"\n\n")
        delay = 0.05 if model == "drip-stream" else 0.0
        try:
            for i, item in enumerate(chunks):
                if model == "stall-stream" and i == 0:
                    await asyncio.sleep(3)
                if model == "stall-mid" and i == 2:
                    await asyncio.sleep(3)
                if model == "error-first" and i == 1:  # after the role chunk, before content
                    err = {"error": {"message": "overloaded before the first token", "type": "server_error", "param": None, "code": None}}
                    await response.write(b"data: " + json.dumps(err).encode() + b"\n\n")
                    await response.write_eof()
                    return response
                if model == "cut-stream" and i == 2:
                    request.transport.close()  # type: ignore[union-attr]
                    return response
                if model == "error-stream" and i == 2:
                    err = {
                        "error": {
                            "message": "The model overloaded mid-stream",
                            "type": "server_error",
                            "param": None,
                            "code": None,
                        }
                    }
                    await response.write(b"data: " + json.dumps(err).encode() + b"\n\n")
                    await response.write_eof()
                    return response
                await response.write(b"data: " + json.dumps(item).encode() + b"\n\n")
                if model == "endless-stream":
                    await asyncio.sleep(0.1)
                elif delay:
                    await asyncio.sleep(delay)
            if model == "endless-stream":
                while True:
                    await asyncio.sleep(0.1)
                    await response.write(
                        b"data: " + json.dumps(chunk(model, {"content": "."})).encode() + b"\n\n"
                    )
            if model != "no-done":
                await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.state.completed.append(model)
        except (asyncio.CancelledError, ConnectionResetError):
            with self.state.lock:
                self.state.cancelled.append(model)
            raise
        return response  # fmt: skip

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        model = body["model"]
        fault = await self._fault(model, request)
        if fault is not None:
            return fault
        choice = {"text": "once upon a time", "index": 0, "logprobs": None, "finish_reason": "stop"}
        doc = {
            "id": "cmpl-mock",
            "object": "text_completion",
            "created": 1741569952,
            "model": model,
        }
        if not body.get("stream"):
            return web.json_response({**doc, "choices": [choice], "usage": _usage()})
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        for word in ("once ", "upon ", "a time"):
            part = {**choice, "text": word, "finish_reason": None}
            await response.write(
                b"data: " + json.dumps({**doc, "choices": [part]}).encode() + b"\n\n"
            )
        await response.write(
            b"data: " + json.dumps({**doc, "choices": [{**choice, "text": ""}]}).encode() + b"\n\n"
        )
        await response.write(b"data: [DONE]\n\n")
        return response  # fmt: skip

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self.record(request)
        model = body["model"]
        fault = await self._fault(model, request)
        if fault is not None:
            return fault
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        fmt = body.get("encoding_format", "float")
        if fmt == "base64" and "nob64" in request.path:
            return _error(
                400, "encoding_format base64 is not supported", "invalid_request_error", None
            )
        data = []
        for i, _text in enumerate(inputs):
            vector = _bag_of_words(str(_text)) if model == "embed-hash" else [0.5 + i, -1.25, 3.0]
            embedding: Any = vector
            if fmt == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        usage = {"prompt_tokens": 5, "total_tokens": 5}
        return web.json_response({"object": "list", "data": data, "model": model, "usage": usage})


def wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())
