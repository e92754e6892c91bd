"""A local server speaking Bedrock's Converse and ConverseStream (binary event-stream) APIs.

It authenticates like Bedrock: a Bedrock API key as a Bearer token, or a SigV4 signature that
it recomputes with botocore (so a signature over the wrong body, path or date is refused).
Scripted by model id: "*tools*" calls two tools after a text block, "fail-throttle" and
"fail-long" fail, "error-stream" sends an exception event mid-stream.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from gateway.providers.bedrock.eventstream import encode
from tests.mock_server import ThreadedServer

BEDROCK_TOKEN = "bedrock-api-key-ABSKtest0123456789"
ACCESS_KEY = "AKIATESTACCESSKEY000"
SECRET_KEY = "test/secret/key/0123456789abcdefghijklmn"
USAGE = {"inputTokens": 15, "outputTokens": 8, "totalTokens": 23, "cacheReadInputTokens": 2}
_AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/bedrock/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


def error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={
            "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"
        },
    )


def check_auth(request: web.Request, body: bytes) -> web.Response | None:
    header = request.headers.get("authorization", "")
    if header.startswith("Bearer "):
        return (
            None
            if header == f"Bearer {BEDROCK_TOKEN}"
            else error(403, "AccessDeniedException", "Invalid API Key format")
        )
    match = _AUTH.match(header)
    if match is None or "x-amz-date" not in request.headers:
        return error(
            403,
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'Signature', 'SignedHeaders'",
        )
    if match["key"] != ACCESS_KEY:
        return error(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    signed = match["signed"].split(";")
    headers = {name: request.headers[name] for name in signed if name != "host"}
    signed_request = AWSRequest(
        method="POST", url=f"http://{request.host}{request.raw_path}", data=body, headers=headers
    )
    signed_request.context["timestamp"] = request.headers["x-amz-date"]
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "bedrock", match["region"])
    expected = auth.signature(
        auth.string_to_sign(signed_request, auth.canonical_request(signed_request)), signed_request
    )
    if expected != match["signature"]:
        return error(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return None  # fmt: skip


def validate(body: dict[str, Any]) -> web.Response | None:
    messages = body.get("messages") or []
    if not messages or messages[0]["role"] != "user":
        return error(400, "ValidationException", "A conversation must start with a user message.")
    for i, message in enumerate(messages):
        if i and message["role"] == messages[i - 1]["role"]:
            return error(
                400,
                "ValidationException",
                "A conversation must alternate between user and assistant roles.",
            )
        for block in message["content"]:
            if "toolUse" in block and "input" not in block["toolUse"]:
                return error(400, "ValidationException", "1 validation error detected: toolUse.input must not be null")
            if ("toolUse" in block or "toolResult" in block) and not body.get("toolConfig"):
                return error(
                    400,
                    "ValidationException",
                    "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
                )
    return None  # fmt: skip


def answer(model: str, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    if "tools" in model and body.get("toolConfig"):
        return [
            {"text": "Checking."},
            {
                "toolUse": {
                    "toolUseId": "tooluse_A1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            },
            {"toolUse": {"toolUseId": "tooluse_B2", "name": "get_time", "input": {"tz": "CET"}}},
        ], "tool_use"
    last = body["messages"][-1]["content"]
    if any("toolResult" in b for b in last):
        return [
            {
                "text": "results: "
                + "; ".join(
                    b["toolResult"]["content"][0]["text"] for b in last if "toolResult" in b
                )
            }
        ], "end_turn"
    return [{"text": "echo: " + " ".join(b.get("text", "<image>") for b in last)}], "end_turn"  # fmt: skip


def event(kind: str, payload: dict[str, Any]) -> bytes:
    return encode(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(payload).encode(),
    )


class MockBedrock(ThreadedServer):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/model/{model}/{action:converse|converse-stream}", self.converse)

    async def converse(self, request: web.Request) -> web.StreamResponse:  # noqa: C901 - one branch per scenario
        raw = await request.read()
        body = await self.record(request)
        denied = check_auth(request, raw)
        if denied is not None:
            return denied
        invalid = validate(body)
        if invalid is not None:
            return invalid
        model = request.match_info["model"]
        if model == "fail-throttle":
            return error(
                429, "ThrottlingException", "Too many requests, please wait before trying again."
            )
        if model == "fail-long":
            return error(400, "ValidationException", "Input is too long for requested model.")
        blocks, stop = answer(model, body)
        if request.match_info["action"] == "converse":
            return web.json_response(
                {
                    "output": {"message": {"role": "assistant", "content": blocks}},
                    "stopReason": stop,
                    "usage": USAGE,
                    "metrics": {"latencyMs": 12},
                }
            )
        response = web.StreamResponse(
            headers={"content-type": "application/vnd.amazon.eventstream"}
        )
        await response.prepare(request)
        frames = [event("messageStart", {"role": "assistant"})]
        for index, block in enumerate(blocks):
            if "text" in block:
                for word in block["text"].split(" "):
                    frames.append(
                        event(
                            "contentBlockDelta",
                            {"contentBlockIndex": index, "delta": {"text": word + " "}},
                        )
                    )
            else:
                use = block["toolUse"]
                frames.append(
                    event(
                        "contentBlockStart",
                        {
                            "contentBlockIndex": index,
                            "start": {
                                "toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}
                            },
                        },
                    )
                )
                args = json.dumps(use["input"])
                for part in (args[:4], args[4:]):
                    frames.append(
                        event(
                            "contentBlockDelta",
                            {"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}},
                        )
                    )
            frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
        frames.append(event("messageStop", {"stopReason": stop}))
        frames.append(event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 12}}))
        if model == "error-stream":
            exception = encode(
                {
                    ":exception-type": "throttlingException",
                    ":content-type": "application/json",
                    ":message-type": "exception",
                },
                b'{"message":"Too many tokens, please wait before trying again."}',
            )
            frames = [*frames[:2], exception]
        stream = b"".join(frames)
        for at in range(0, len(stream), 37):  # odd-sized writes: frames split across reads
            await response.write(stream[at : at + 37])
        await response.write_eof()
        return response  # fmt: skip
