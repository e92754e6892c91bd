"""No credential leaves through an upstream error: for every adapter, streamed and not, an
upstream that echoes the credentials it was sent in every error field and header it has, and
the test greps every byte the client receives and every log line for them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from gateway.providers.bedrock.eventstream import encode as eventstream
from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_vertex import MockVertex, service_account_file
from tests.scripted_upstream import Scripted, ScriptedUpstream, Seen, sse, stream_headers

# Not shaped like sk-... or AIza...: only the configured secrets can catch these.
KEYS = {
    "oai": "Zq9oai-planted-key-11111111",
    "az": "Zq9azure-planted-key-2222222",
    "ant": "Zq9anthropic-planted-key-333",
    "gem": "Zq9gemini-planted-key-444444",
    "co": "Zq9cohere-planted-key-555555",
    "br": "Zq9bedrock-planted-token-666",
}
AWS_ACCESS = "AKIAZQ9PLANTEDACCESS7"
AWS_SECRET = "Zq9aws/planted+secret/key/never/sent/888"
CONFIG = """
server: {{master_key: {master}}}
providers:
  oai: {{type: openai-compatible, api_key: {oai}, base_url: "{url}/oai/v1"}}
  az: {{type: azure, api_key: {az}, base_url: "{url}/az", api_version: "2024-10-21"}}
  ant: {{type: anthropic, api_key: {ant}, base_url: "{url}/ant"}}
  gem: {{type: gemini, api_key: {gem}, base_url: "{url}/gem"}}
  co: {{type: cohere, api_key: {co}, base_url: "{url}/co"}}
  br: {{type: bedrock, api_key: {br}, base_url: "{url}/br", region: us-east-1}}
  brs: {{type: bedrock, base_url: "{url}/brs", region: us-east-1}}
  vtx: {{type: vertex, base_url: "{url}/vtx", region: us-east5}}
"""
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")


def credentials(seen: Seen) -> list[str]:
    """What this request carried (or, for SigV4, what signed it): the upstream echoes it all."""
    found = []
    for name in CREDENTIAL_HEADERS:
        value = seen.headers.get(name)
        if value:
            found.append(value.removeprefix("Bearer "))
    if seen.kind == "brs":
        found += [AWS_ACCESS, AWS_SECRET]
    return found


def error_headers(planted: str) -> dict[str, str]:
    names = (
        "x-ratelimit-limit-requests", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests",
        "retry-after", "retry-after-ms", "x-should-retry", "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-tokens-reset", "x-ratelimit-limit", "x-ratelimit-remaining",
    )  # fmt: skip
    return {"content-type": "application/json", **{name: planted for name in names}}


def anthropic_start() -> bytes:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [],
               "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}  # fmt: skip
    return (
        f"event: message_start\ndata: {json.dumps({'type': 'message_start', 'message': message})}\n\n"
        'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}\n\n'
        'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "partial"}}\n\n'
    ).encode()


def openai_chunk(text: str) -> str:
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})  # fmt: skip


def answer(seen: Seen) -> Scripted:  # noqa: C901 - one branch per provider format and scenario
    secret = " ".join(credentials(seen))
    kind = seen.kind
    where = (seen.model or "") + seen.path
    stream = "stream" in where.lower() or "converse-stream" in seen.path
    late = "late" in where
    if kind in ("oai", "az"):
        detail = {"message": f"Incorrect API key provided: {secret}", "type": secret, "param": secret, "code": secret}
        if not stream:
            return Scripted(status=401, headers=error_headers(secret), body=json.dumps({"error": detail}).encode())
        if "event" in where:
            return Scripted(headers=stream_headers(), body=sse(*([openai_chunk("partial")] if late else []), f"event: error\ndata: {secret}"))
        return Scripted(headers=stream_headers(), body=sse(*([openai_chunk("partial")] if late else []), json.dumps({"error": detail})))
    if kind in ("ant",) or (kind == "vtx" and "claude" in where):
        detail = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key {secret}"}}
        if not stream:
            return Scripted(status=401, headers=error_headers(secret), body=json.dumps(detail).encode())
        error = {"type": "error", "error": {"type": "overloaded_error", "message": f"overloaded {secret}"}}
        frames = (anthropic_start() if late else b"") + f"event: error\ndata: {json.dumps(error)}\n\n".encode()
        return Scripted(headers=stream_headers(), body=[frames])
    if kind in ("gem", "vtx"):
        detail = {"error": {"code": 400, "message": f"API key not valid. {secret}", "status": "INVALID_ARGUMENT"}}
        if "in200" in where:
            return Scripted(body=json.dumps(detail).encode())
        if not stream:
            return Scripted(status=400, headers=error_headers(secret), body=json.dumps(detail).encode())
        part = {"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}}]}
        return Scripted(headers=stream_headers(), body=sse(*([json.dumps(part)] if late else []), json.dumps(detail)))
    if kind == "co":
        if not stream:
            return Scripted(status=401, headers=error_headers(secret), body=json.dumps({"message": f"invalid api token {secret}"}).encode())
        start = json.dumps({"type": "message-start", "id": "m1"})
        delta = json.dumps({"type": "content-delta", "delta": {"message": {"content": {"text": "partial"}}}})
        end = json.dumps({"type": "message-end", "delta": {"error": f"stream failed {secret}"}})
        return Scripted(headers=stream_headers(), body=sse(*([start, delta] if late else []), end))
    if kind in ("br", "brs"):
        headers = {**error_headers(secret), "x-amzn-errortype": f"UnrecognizedClientException:{secret}"}
        if not stream:
            return Scripted(status=403, headers=headers, body=json.dumps({"message": f"The security token included in the request is invalid {secret}"}).encode())
        frames = b""
        if late:
            frames += eventstream({":event-type": "messageStart", ":content-type": "application/json", ":message-type": "event"}, b'{"role": "assistant"}')
            frames += eventstream({":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}, b'{"contentBlockIndex": 0, "delta": {"text": "partial"}}')
        frames += eventstream({":exception-type": "throttlingException", ":content-type": "application/json", ":message-type": "exception"}, json.dumps({"message": f"slow down {secret}"}).encode())
        return Scripted(headers={"content-type": "application/vnd.amazon.eventstream"}, body=[frames])
    return Scripted(status=500)


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    server.handler = answer
    yield server
    server.stop()


@pytest.fixture(scope="module")
def vertex_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    server = MockVertex().start()
    path, public = service_account_file(tmp_path_factory.mktemp("vertex-secrets"), f"{server.url}/token")
    server.public_key = public
    yield path
    server.stop()


@pytest.fixture(scope="module")
def gw(impl: str, upstream: ScriptedUpstream, vertex_token: Path) -> Iterator[Gateway]:
    config = write_config(CONFIG.format(url=upstream.url, master=MASTER_KEY, **KEYS))
    env = {"AWS_ACCESS_KEY_ID": AWS_ACCESS, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
           "GOOGLE_APPLICATION_CREDENTIALS": str(vertex_token)}  # fmt: skip
    gateway = start_gateway(impl, ["--config", str(config)], env)
    yield gateway
    gateway.stop()


PROVIDERS = ["oai", "az", "ant", "gem", "co", "br", "brs", "vtx"]
SCENARIOS = ["plain", "stream", "stream-late", "stream-event", "stream-event-late", "in200"]


def secrets_seen(upstream: ScriptedUpstream) -> set[str]:
    return {secret for seen in upstream.seen for secret in credentials(seen)}


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_no_secret_in_any_upstream_error(gw: Gateway, upstream: ScriptedUpstream, provider: str, scenario: str) -> None:
    model = f"{provider}/{'claude-' if provider == 'vtx' and 'event' in scenario else ''}model-{scenario}"
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": scenario.startswith("stream")}
    before = len(upstream.seen)
    with (
        httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as http,
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        received = b"".join(response.iter_bytes())
        head = json.dumps(dict(response.headers))
    assert len(upstream.seen) > before, "the upstream was not reached"
    planted = credentials(upstream.seen[-1])
    assert planted, "the request carried no credential to plant"
    assert response.status_code >= 400 or b'"error"' in received, received[:300]
    for secret in planted:
        assert secret not in received.decode("utf-8", "replace"), (scenario, received[:500])
        assert secret not in head, head
    # The planted values reached the gateway and were removed, not merely absent.
    if scenario == "plain":
        assert b"***" in received, received[:300]


def test_no_secret_in_any_log_line(gw: Gateway, upstream: ScriptedUpstream) -> None:
    # Runs after the cases above (same module, same gateway): every secret they planted.
    time.sleep(0.3)
    log = gw.output()
    planted = secrets_seen(upstream) | set(KEYS.values()) | {AWS_SECRET}
    assert len(planted) >= len(KEYS)
    for secret in planted:
        assert secret not in log
