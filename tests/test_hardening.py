"""Abuse and conformance cases (issue 14): each reproduced an attack or a defect on the code
before it, against the real gateway, with raw sockets or a scripted upstream where a polite
client or mock cannot send what an attacker or a broken provider would."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.scripted_upstream import Scripted, ScriptedUpstream, Seen, sse, stream_headers

KEY = "Zq9-planted-upstream-secret-7f3a91"
CONFIG = """
server:
  master_key: env:TEST_MASTER_KEY
  max_upstream_body_bytes: 1048576
  max_stream_event_bytes: 65536
routing: {{config_header: true}}
providers:
  oai: {{type: openai-compatible, api_key: {key}, base_url: "{url}/oai/v1"}}
  good: {{type: openai-compatible, api_key: {key}, base_url: "{url}/good/v1"}}
  gem: {{type: gemini, api_key: {key}, base_url: "{url}/gem"}}
  ant: {{type: anthropic, api_key: {key}, base_url: "{url}/ant"}}
  az: {{type: azure, api_key: {key}, base_url: "{url}/az", api_version: "2024-10-21"}}
models:
  - name: with-fallback
    strategy: {{mode: fallback}}
    targets: [{{provider: oai, model: broken}}, {{provider: good, model: fine}}]
"""


def completion(model: str = "m", text: str = "hello") -> bytes:
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }).encode()  # fmt: skip


def chunk(text: str | None = None, finish: str | None = None) -> str:
    delta = {"content": text} if text is not None else {}
    return json.dumps({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    })  # fmt: skip


def good_stream() -> list[bytes]:
    return sse(chunk("hel"), chunk("lo"), chunk(finish="stop"), "[DONE]")


class Script:
    """Answers by the model the upstream was asked for (exactly), or by a path prefix for keys
    that start with "/" (Gemini names its model in the path); tests register answers."""

    def __init__(self) -> None:
        self.answers: dict[str, Scripted] = {}

    def __call__(self, seen: Seen) -> Scripted:
        if seen.kind == "good":
            stream = bool((seen.json or {}).get("stream"))
            return Scripted(headers=stream_headers(), body=good_stream()) if stream else Scripted(body=completion())
        model = seen.model
        if model is not None and model in self.answers:
            return self.answers[model]
        for name, answer in self.answers.items():
            if name.startswith("/") and seen.path.startswith(name):
                return answer
        return Scripted(body=completion(model or "m"))


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    server = ScriptedUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def script(upstream: ScriptedUpstream) -> Script:
    s = Script()
    upstream.handler = s
    return s


@pytest.fixture(scope="module")
def gw(impl: str, upstream: ScriptedUpstream, script: Script) -> Iterator[Gateway]:
    config = write_config(CONFIG.format(url=upstream.url, key=KEY))
    gateway = start_gateway(impl, ["--config", str(config)], {"TEST_MASTER_KEY": MASTER_KEY})
    yield gateway
    gateway.stop()


@pytest.fixture
def http(gw: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.url, headers={"authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as c:
        yield c


@pytest.fixture
def client(gw: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0, _strict_response_validation=True) as c:
        yield c


def chat(model: str, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def raw_exchange(gw: Gateway, request: bytes, timeout: float = 10) -> bytes:
    """Sends bytes, reads until the gateway closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + timeout
        sock.settimeout(1.0)
        while time.monotonic() < deadline:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                if data:
                    break
                continue
            if not piece:
                break
            data += piece
        return data


def post_raw(path: str, body: bytes, extra_headers: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {MASTER_KEY}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{extra_headers}"
        "connection: close\r\n\r\n"
    ).encode("latin-1") + body


def assert_one_clean_response(data: bytes) -> bytes:
    """Exactly one response, and no header line holding anything but printable ASCII."""
    assert data.count(b"HTTP/1.1 ") == 1, data[:2000]
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        assert re.fullmatch(rb"[a-z0-9-]+: [\x20-\x7e]*", line), line
    assert not any(line.lower().startswith(b"x-injected") for line in head.split(b"\r\n"))
    return head


# --- 1-3, 17: response splitting, non-latin-1 names, log injection ---------------------------


@pytest.mark.parametrize(
    "model",
    [
        "gpt-4o\r\nx-injected: yes",
        "gpt-4o\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK\r\nx-injected: 1\r\n\r\n",
        "gpt-4o\nx-injected: yes",
        "gpt\x00-4o",
        "gpt-4o\u2028x-injected: yes",
    ],
)
def test_control_characters_in_a_model_name_are_refused(gw: Gateway, model: str) -> None:
    data = raw_exchange(gw, post_raw("/v1/chat/completions", json.dumps(chat(f"oai/{model}")).encode()))
    head = assert_one_clean_response(data)
    assert head.startswith(b"HTTP/1.1 400")
    error = json.loads(data.partition(b"\r\n\r\n")[2])["error"]
    assert error["param"] == "model" and error["type"] == "invalid_request_error"


@pytest.mark.parametrize("model", ["modèle-ünïcode", "模型-4o", "emoji-🚀", "has space", "pct%0d%0a"])
def test_a_model_name_outside_ascii_is_encoded_in_headers(gw: Gateway, model: str) -> None:
    data = raw_exchange(gw, post_raw("/v1/chat/completions", json.dumps(chat(f"oai/{model}")).encode()))
    head = assert_one_clean_response(data)
    assert head.startswith(b"HTTP/1.1 200"), data[:500]
    served = re.search(rb"x-gateway-model: ([^\r]*)", head)
    assert served is not None
    value = served.group(1).decode()
    # Printable ASCII is written as it is; anything else is percent-encoded.
    assert (value if model.isascii() else unquote(value)) == model


def test_a_target_model_from_the_config_header_cannot_split_the_response(gw: Gateway) -> None:
    route = json.dumps({"targets": [{"provider": "oai", "model": "m\r\nx-injected: yes"}]})
    data = raw_exchange(
        gw, post_raw("/v1/chat/completions", json.dumps(chat("anything")).encode(), f"x-gateway-config: {route}\r\n")
    )
    assert_one_clean_response(data)


def test_access_log_lines_cannot_be_forged(gw: Gateway, http: httpx.Client) -> None:
    http.post("/v1/chat/completions", json=chat("evil\nFORGED status=200 line"))
    http.post("/v1/chat/completions", json=chat("oai/spaced name status=200"), headers={"x-request-id": "rid with spaces status=200"})
    http.post("/v1/chat/completions", json=chat("no-such-provider/model-x"))
    time.sleep(0.3)  # the access log is written in batches
    lines = gw.output().splitlines()
    assert not any(line.startswith("FORGED") for line in lines)
    assert any('model="evil\\nFORGED status=200 line"' in line and "status=400" in line for line in lines)
    assert any('"rid with spaces status=200"' in line and 'model="oai/spaced name status=200"' in line for line in lines)
    # A failed request names the model it asked for, not the metric label.
    assert any("model=no-such-provider/model-x" in line and "status=404" in line for line in lines)


# --- 5: client strings in upstream URLs ------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("x?alt=json&key=attacker", "/gem/v1beta/models/x%3Falt%3Djson%26key%3Dattacker:generateContent"),
        ("../../../v1/files", "/gem/v1beta/models/..%2F..%2F..%2Fv1%2Ffiles:generateContent"),
        ("name with space#frag", "/gem/v1beta/models/name%20with%20space%23frag:generateContent"),
        ("gémini", "/gem/v1beta/models/g%C3%A9mini:generateContent"),
    ],
)
def test_gemini_model_names_stay_one_path_segment(
    http: httpx.Client, upstream: ScriptedUpstream, script: Script, model: str, path: str
) -> None:
    script.answers["/gem/"] = Scripted(body=json.dumps({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
    }).encode())  # fmt: skip
    response = http.post("/v1/chat/completions", json=chat(f"gem/{model}"))
    assert response.status_code == 200, response.text
    assert upstream.last().path == path


# --- 6, 11: duplicate keys and deep nesting ------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b'{"model": "oai/a", "model": "oai/b", "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "oai/a", "stream": false, "messages": [{"role": "user", "content": "x"}], "stream": true}', "stream"),
        (b'{"model": "oai/a", "mo\\u0064el": "oai/b", "messages": [{"role": "user", "content": "x"}]}', "model"),
    ],
)
def test_duplicate_top_level_keys_are_refused(http: httpx.Client, body: bytes, param: str) -> None:
    response = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["code"] == "duplicate_key"


def test_a_repeated_key_inside_a_message_is_not_a_duplicate(http: httpx.Client) -> None:
    body = b'{"model": "oai/a", "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}'
    assert http.post("/v1/chat/completions", content=body).status_code == 200


def test_deep_json_is_a_400_naming_the_field(http: httpx.Client) -> None:
    deep = "[" * 1000 + "]" * 1000
    body = '{"model": "oai/a", "messages": [{"role": "user", "content": "x"}], "extra": ' + deep + "}"
    response = http.post("/v1/chat/completions", content=body.encode())
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "extra"
    assert response.json()["error"]["code"] == "json_too_deep"
    for header in ("x-gateway-config", "x-gateway-metadata"):
        nested = '{"a": ' * 1000 + "1" + "}" * 1000
        response = http.post("/v1/chat/completions", json=chat("oai/a"), headers={header: nested})
        assert response.status_code == 400, (header, response.text)
        assert response.json()["error"]["param"] == header
    # A deep body on the Anthropic route gets Anthropic's envelope.
    response = http.post("/v1/messages", content=('{"model": "x", "max_tokens": 5, "messages": ' + deep + "}").encode())
    assert response.status_code == 400 and response.json()["type"] == "error"


def test_nesting_within_the_limit_is_served(http: httpx.Client) -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    assert http.post("/v1/chat/completions", json=chat("oai/a", tools=tools)).status_code == 200


# --- 7: bounded metric labels ----------------------------------------------------------------


def test_client_chosen_model_names_do_not_grow_metrics_without_bound(http: httpx.Client) -> None:
    for i in range(130):
        assert http.post("/v1/chat/completions", json=chat(f"oai/fuzzed-name-{i}")).status_code == 200
    text = http.get("/metrics").text
    models = set(re.findall(r'gateway_requests_total\{[^}]*model="([^"]*)"', text))
    assert len(models) <= 102, len(models)  # the cap, "other", the configured alias
    assert "other" in models


# --- 8: a client that pipelines and never reads --------------------------------------------


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+)", status)
    assert match is not None
    return int(match.group(1))


def test_a_client_that_never_reads_cannot_grow_the_gateway(gw: Gateway, http: httpx.Client) -> None:
    http.get("/health/live")
    before = rss_kb(gw.process.pid)
    one = f"GET /metrics HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer {MASTER_KEY}\r\n\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", gw.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(3.0)
    sent = 0
    try:
        for _ in range(600):
            sock.sendall(one * 100)
            sent += 100
    except TimeoutError:
        pass  # the gateway stopped reading: what this test wants
    time.sleep(0.5)
    grown = rss_kb(gw.process.pid) - before
    sock.close()
    assert grown < 8_000, f"RSS grew {grown} kB after {sent} pipelined requests"
    assert http.get("/health/live").status_code == 200  # and it still serves everyone else


# --- 9, 10: unbounded upstream events and bodies ---------------------------------------------


def test_an_sse_event_without_end_is_capped(http: httpx.Client, script: Script, gw: Gateway) -> None:
    script.answers["endless-event"] = Scripted(
        headers=stream_headers(), body=[b"data: {" + b"x" * 8192 for _ in range(2000)]
    )
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json=chat("oai/endless-event", stream=True))
    assert response.status_code == 502
    assert "larger than 65536 bytes" in response.json()["error"]["message"]
    assert time.monotonic() - started < 10


def test_an_upstream_body_over_the_cap_is_a_502(http: httpx.Client, script: Script) -> None:
    big = b'{"id": "x", "padding": "' + b"y" * 3_000_000 + b'"}'
    script.answers["huge-body"] = Scripted(body=big)
    response = http.post("/v1/chat/completions", json=chat("oai/huge-body"))
    assert response.status_code == 502
    assert "larger than 1048576 bytes" in response.json()["error"]["message"]
    script.answers["huge-chunked"] = Scripted(body=[b"z" * 65536] * 40)
    response = http.post("/v1/chat/completions", json=chat("oai/huge-chunked"))
    assert response.status_code == 502
    # A declared length over the cap is refused before any of it is read.
    script.answers["huge-declared"] = Scripted(body=b"{}", content_length=50_000_000)
    response = http.post("/v1/chat/completions", json=chat("oai/huge-declared"), timeout=5)
    assert response.status_code == 502


# --- 13-15: broken streams, event: error, Accept, JSON answers to stream requests ---------


def test_non_json_stream_event_before_content_fails_over(client: openai.OpenAI, script: Script) -> None:
    script.answers["broken"] = Scripted(headers=stream_headers(), body=sse("this is not json", chunk("x"), "[DONE]"))
    stream = client.chat.completions.create(model="with-fallback", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "hello"


def test_non_json_stream_event_after_content_ends_the_stream_with_an_error(http: httpx.Client, script: Script) -> None:
    script.answers["cut-garbage"] = Scripted(headers=stream_headers(), body=sse(chunk("first"), "<html>oops</html>", chunk("never"), "[DONE]"), pause=0.05)
    with http.stream("POST", "/v1/chat/completions", json=chat("oai/cut-garbage", stream=True)) as response:
        text = "".join(response.iter_text())
    assert "first" in text and "<html>" not in text and "never" not in text
    assert '"error"' in text and "[DONE]" not in text


def test_event_error_is_an_error(http: httpx.Client, script: Script) -> None:
    script.answers["event-error"] = Scripted(
        headers=stream_headers(), body=sse('event: error\ndata: {"error": {"message": "quota gone", "type": "server_error"}}')
    )
    response = http.post("/v1/chat/completions", json=chat("oai/event-error", stream=True))
    assert response.status_code == 502 and "quota gone" in response.json()["error"]["message"]
    script.answers["event-error-late"] = Scripted(
        headers=stream_headers(), body=sse(chunk("partial"), "event: error\ndata: overloaded, try later", chunk(finish="stop"), "[DONE]"), pause=0.05
    )
    with http.stream("POST", "/v1/chat/completions", json=chat("oai/event-error-late", stream=True)) as streamed:
        text = "".join(streamed.iter_text())
    assert "partial" in text and "[DONE]" not in text
    assert 'data: {"error":{"message":"overloaded, try later"' in text


def test_anthropic_undecodable_event_fails_the_stream(http: httpx.Client, script: Script) -> None:
    start = json.dumps({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [], "stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 0}}})
    script.answers["claude-broken"] = Scripted(
        headers=stream_headers(),
        body=[f"event: message_start\ndata: {start}\n\n".encode(), b'event: content_block_start\ndata: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}\n\n',
              b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}}\n\n',
              b"event: content_block_delta\ndata: {not json at all\n\n",
              b'event: content_block_stop\ndata: {"type": "content_block_stop", "index": 0}\n\n',
              b'event: message_delta\ndata: {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}\n\n',
              b'event: message_stop\ndata: {"type": "message_stop"}\n\n'],
        pause=0.05,
    )  # fmt: skip
    with http.stream("POST", "/v1/chat/completions", json=chat("ant/claude-broken", stream=True)) as response:
        text = "".join(response.iter_text())
    assert "hi" in text and '"error"' in text and "[DONE]" not in text


def test_stream_requests_ask_for_event_streams(client: openai.OpenAI, upstream: ScriptedUpstream) -> None:
    list(client.chat.completions.create(model="with-fallback", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert any(s.headers.get("accept") == "text/event-stream" for s in upstream.seen if s.kind == "good")


def test_a_json_answer_to_a_stream_request_is_replayed_as_a_stream(client: openai.OpenAI, script: Script) -> None:
    script.answers["ignores-stream"] = Scripted(body=completion(text="whole answer"))
    stream = client.chat.completions.create(
        model="oai/ignores-stream", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "whole answer"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5


def test_a_json_answer_to_a_legacy_stream_request_is_not_retried(http: httpx.Client, script: Script) -> None:
    script.answers["legacy-json"] = Scripted(body=b'{"id": "cmpl", "object": "text_completion", "choices": []}')
    response = http.post("/v1/completions", json={"model": "oai/legacy-json", "prompt": "x", "stream": True})
    assert response.status_code == 502
    assert response.headers["x-should-retry"] == "false"


# --- 16, 18: the models routes and 405 --------------------------------------------------------


def test_models_route_logs_and_answers_405_with_allow(gw: Gateway, http: httpx.Client) -> None:
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    response = http.delete("/v1/models")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"
    assert http.get("/v1/models/oai/some-model").json()["owned_by"] == "oai"
    assert http.get("/v1/models/with-fallback").status_code == 200
    time.sleep(0.3)
    assert any("models/{id} path=/v1/models/oai/some-model status=200" in line for line in gw.output().splitlines())


def test_models_lookup_agrees_with_routing_in_zero_config(impl: str, upstream: ScriptedUpstream) -> None:
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{upstream.url}/good/v1"}
    gateway = start_gateway(impl, [], env)
    try:
        with httpx.Client(base_url=gateway.url) as http:
            assert http.post("/v1/chat/completions", json=chat("gpt-4o-mini")).status_code == 200
            model = http.get("/v1/models/gpt-4o-mini")
            assert model.status_code == 200 and model.json()["owned_by"] == "openai"
            # A bare unknown name goes to OpenAI whole, as chat does; a known provider without
            # credentials is not served.
            assert http.get("/v1/models/some/other-model").json()["owned_by"] == "openai"
            assert http.get("/v1/models/anthropic/claude-x").status_code == 404
    finally:
        gateway.stop()


# --- 20: Azure's content-filter chunks ----------------------------------------------------------


def test_azure_filter_chunks_never_reach_the_client(client: openai.OpenAI, script: Script) -> None:
    opening = '{"id":"","object":"","created":0,"model":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}],"choices":[],"usage":null}'
    annotations = '{"id":"","object":"","created":0,"model":"","prompt_annotations":[{"prompt_index":0,"content_filter_results":{}}],"choices":[],"usage":null}'
    annotation_only = '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"finish_reason":null,"content_filter_offsets":{"check_offset":0,"start_offset":0,"end_offset":5},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}'
    script.answers["filtered"] = Scripted(
        headers=stream_headers(), body=sse(opening, annotations, chunk("safe "), annotation_only, chunk("text"), chunk(finish="stop"), "[DONE]")
    )
    stream = client.chat.completions.create(model="az/filtered", messages=[{"role": "user", "content": "hi"}], stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "safe text"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
