"""First contact: what `GET /` says, the start-up line naming every provider's variable, and
CORS for browser clients (off by default; preflights; only configured origins echoed)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_openai import MockOpenAI

CONFIG = """
server:
  master_key: {key}
  cors: {{allow_origins: ["https://app.example.com", "http://localhost:5173"]}}
metrics: {{genai: true}}
providers:
  openai: {{type: openai-compatible, base_url: "{mock}/v1"}}
models:
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
"""
APP = "https://app.example.com"


@pytest.fixture(scope="module")
def browser_gateway(impl: str, mock: MockOpenAI) -> Iterator[Gateway]:
    gw = start_gateway(impl, ["--config", str(write_config(CONFIG.format(key=MASTER_KEY, mock=mock.url)))])
    yield gw
    gw.stop()


def test_the_root_says_what_this_is(gateway: Gateway) -> None:
    r = httpx.get(f"{gateway.url}/")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "gateway" and body["links"]["ready"] == "/health/ready"
    assert "access-control-allow-origin" not in r.headers  # CORS is off by default


def test_a_preflight_from_an_allowed_origin(browser_gateway: Gateway) -> None:
    r = httpx.options(
        f"{browser_gateway.v1}/chat/completions",
        headers={
            "origin": APP,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-stainless-os",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == APP
    assert "POST" in r.headers["access-control-allow-methods"]
    assert r.headers["access-control-allow-headers"] == "authorization, content-type, x-stainless-os"
    assert r.headers["vary"] == "Origin"


def test_answers_to_an_allowed_origin_carry_cors_headers(browser_gateway: Gateway) -> None:
    r = httpx.post(
        f"{browser_gateway.v1}/chat/completions",
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"origin": APP, "authorization": f"Bearer {MASTER_KEY}"},
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == APP
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    err = httpx.post(f"{browser_gateway.v1}/chat/completions", json={}, headers={"origin": APP})
    assert err.status_code == 401 and err.headers["access-control-allow-origin"] == APP


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example.net", "https://app.example.com.evil.net", "https://app.example.com\r\nx-injected: 1"],
)
def test_other_origins_get_nothing(browser_gateway: Gateway, origin: str) -> None:
    with httpx.Client() as client:
        try:
            r = client.options(
                f"{browser_gateway.v1}/chat/completions",
                headers={"origin": origin, "access-control-request-method": "POST"},
            )
        except httpx.LocalProtocolError:
            return  # the client itself refuses to send a header with a line break
    assert r.status_code == 405
    assert "access-control-allow-origin" not in r.headers
    assert "x-injected" not in r.headers


def test_the_start_up_line_names_every_providers_variable(impl: str) -> None:
    gw = start_gateway(impl, [])
    try:
        log = gw.output()
    finally:
        gw.stop()
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "CO_API_KEY",
                     "AWS_ACCESS_KEY_ID", "AZURE_OPENAI_API_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        assert variable in log, variable


def test_zero_config_lists_what_each_provider_with_credentials_serves(impl: str, mock: MockOpenAI) -> None:
    env = {"OPENAI_API_KEY": "sk-test-openai", "OPENAI_BASE_URL": f"{mock.url}/v1", "ANTHROPIC_API_KEY": "sk-ant-test"}
    gw = start_gateway(impl, [], env)
    try:
        r = httpx.get(f"{gw.v1}/models")
    finally:
        gw.stop()
    assert r.status_code == 200
    models = {m["id"]: m["owned_by"] for m in r.json()["data"]}
    assert models.get("openai/gpt-4o-mini") == "openai" and models.get("gpt-4o-mini") == "openai"
    assert any(k.startswith("anthropic/claude") and v == "anthropic" for k, v in models.items())
    assert not any(k.startswith("gemini/") for k in models)  # no credentials, not listed


def test_readiness_reports_the_keys(browser_gateway: Gateway) -> None:
    ready = httpx.get(f"{browser_gateway.url}/health/ready").json()
    assert ready["status"] == "ready"
    assert ready["keys"] == {"loaded": 0, "store": "up"}


def test_json_access_logs_carry_the_fields_and_cannot_be_forged(impl: str, mock: MockOpenAI) -> None:
    config = CONFIG.format(key=MASTER_KEY, mock=mock.url) + "logging: {format: json}\n"
    gw = start_gateway(impl, ["--config", str(write_config(config))])
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    try:
        ok = httpx.post(f"{gw.v1}/chat/completions", headers={**headers, "x-request-id": "rid-ok"},
                        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert ok.status_code == 200
        forged = 'x"\n{"forged": true}'
        bad = httpx.post(f"{gw.v1}/chat/completions", headers=headers,
                         json={"model": forged, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert bad.status_code == 400
    finally:
        gw.stop()
    import json

    lines = [ln for ln in gw.output().splitlines() if ln.startswith("{")]
    docs = [json.loads(ln) for ln in lines]
    assert not any(d.get("forged") for d in docs)
    mine = next(d for d in docs if d.get("request_id") == "rid-ok")
    assert mine["endpoint"] == "chat/completions" and mine["model"] == "chat" and mine["status"] == 200
    assert mine["provider"] == "openai" and mine["prompt_tokens"] > 0 and mine["ts"].endswith("Z")
    assert any(d.get("model") == forged and d["status"] == 400 for d in docs)


def test_w3c_trace_context_is_passed_upstream(browser_gateway: Gateway, mock: MockOpenAI) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    headers = {"authorization": f"Bearer {MASTER_KEY}", "traceparent": traceparent, "tracestate": "congo=t61rcWkgMzE"}
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(f"{browser_gateway.v1}/chat/completions", json=body, headers=headers).status_code == 200
    with mock.state.lock:
        sent = mock.state.requests[-1].headers
    assert sent["traceparent"] == traceparent and sent["tracestate"] == "congo=t61rcWkgMzE"
    bad = {**headers, "traceparent": "00-zz-not-a-trace", "tracestate": "x"}
    assert httpx.post(f"{browser_gateway.v1}/chat/completions", json=body, headers=bad).status_code == 200
    with mock.state.lock:
        sent = mock.state.requests[-1].headers
    assert "traceparent" not in sent and "tracestate" not in sent


def test_config_validate_is_a_dry_run_naming_errors_or_changes(browser_gateway: Gateway, mock: MockOpenAI) -> None:
    url = f"{browser_gateway.url}/admin/config/validate"
    auth = {"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/yaml"}
    running = CONFIG.format(key=MASTER_KEY, mock=mock.url)
    same = httpx.post(url, content=running, headers=auth)
    assert same.status_code == 200 and same.json()["valid"] is True
    assert same.json()["changes"]["models"] == {"added": [], "removed": [], "changed": []}
    edited = running.replace("    targets: [{provider: openai, model: gpt-4o-mini}]", "    targets: [{provider: openai, model: gpt-4o}]")
    edited += "  - name: extra\n    targets: [{provider: openai, model: gpt-4o-mini}]\n"
    edited = edited.replace("server:\n", "server:\n  port: 9999\n")
    changed = httpx.post(url, content=edited, headers=auth).json()["changes"]
    assert changed["models"] == {"added": ["extra"], "removed": [], "changed": ["chat"]}
    assert changed["needs_restart"] == ["server.port"]
    broken = running.replace("model: gpt-4o-mini}", "model: gpt-4o-mini, weight: high}")
    bad = httpx.post(url, content=broken, headers=auth)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_config"
    assert "models[0].targets[0].weight" in bad.json()["error"]["message"]
    assert httpx.post(url, content=running).status_code == 401


def test_metrics_carry_the_genai_conventions(browser_gateway: Gateway) -> None:
    client_headers = {"authorization": f"Bearer {MASTER_KEY}"}
    body = {"model": "chat", "messages": [{"role": "user", "content": "one two three four"}]}
    assert httpx.post(f"{browser_gateway.v1}/chat/completions", json=body, headers=client_headers).status_code == 200
    stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{browser_gateway.v1}/chat/completions", json=stream, headers=client_headers) as r:
        assert r.status_code == 200 and r.read()
    text = httpx.get(f"{browser_gateway.url}/metrics", headers=client_headers).text
    labels = 'gen_ai_operation_name="chat",gen_ai_provider_name="openai",gen_ai_request_model="chat"'

    def value(name: str) -> float:
        line = next(ln for ln in text.splitlines() if ln.startswith(name + "{") and labels in ln)
        return float(line.rsplit(" ", 1)[1])

    assert value("gen_ai_client_operation_duration_seconds_count") >= 2
    assert value("gen_ai_server_time_to_first_token_seconds_count") >= 1
    assert value("gen_ai_server_time_per_output_token_seconds_count") >= 1
    tokens = [ln for ln in text.splitlines() if ln.startswith("gen_ai_client_token_usage_count{") and labels in ln]
    assert any('gen_ai_token_type="input"' in ln for ln in tokens)
    assert any('gen_ai_token_type="output"' in ln for ln in tokens)


def test_genai_series_add_up_across_workers(impl: str, mock: MockOpenAI) -> None:
    config = write_config(CONFIG.format(key=MASTER_KEY, mock=mock.url))
    gw = start_gateway(impl, ["--config", str(config), "--workers", "2"])
    headers = {"authorization": f"Bearer {MASTER_KEY}", "connection": "close"}
    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in range(20):  # a fresh connection each time: the kernel spreads them over both
            assert httpx.post(f"{gw.v1}/chat/completions", json=body, headers=headers).status_code == 200
        text = httpx.get(f"{gw.url}/metrics", headers=headers).text
    finally:
        gw.stop()
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gen_ai_client_operation_duration_seconds_count{") and 'gen_ai_request_model="chat"' in line
    )
    assert total >= 20


def test_a_judge_must_name_a_model_the_config_serves(browser_gateway: Gateway, mock: MockOpenAI) -> None:
    text = CONFIG.format(key=MASTER_KEY, mock=mock.url) + "guardrails:\n  policies:\n    j: {judge: {route: nowhere}}\n"
    r = httpx.post(f"{browser_gateway.url}/admin/config/validate", content=text,
                   headers={"authorization": f"Bearer {MASTER_KEY}"})  # fmt: skip
    assert r.status_code == 400 and "guardrails.policies.j: judge.route" in r.json()["error"]["message"]


def test_readiness_is_503_while_warming(impl: str, mock: MockOpenAI) -> None:
    """The gateway listens at once; while its usage store is still connecting (a server that
    accepts and never answers), readiness says what it waits for and requests get a 503
    `warming_up`; once the store gives up, metering is degraded and the gateway ready."""
    import socket
    import threading
    import time

    from tests.harness import wait_ready

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(silent.accept()[0]), daemon=True).start()
    port = silent.getsockname()[1]
    config = write_config(
        CONFIG.format(key=MASTER_KEY, mock=mock.url)
        + f"usage: {{store: 'postgresql://gw@127.0.0.1:{port}/gw'}}\n"
    )
    gw = start_gateway(impl, ["--config", str(config)], wait=False)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                live = httpx.get(f"{gw.url}/health/live", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, gw.output()
                time.sleep(0.05)
        assert live.status_code == 200 and live.json()["warming"] is True
        ready = httpx.get(f"{gw.url}/health/ready", timeout=2)
        assert ready.status_code == 503 and ready.json() == {"status": "warming", "waiting_for": ["usage store"]}
        busy = httpx.post(
            f"{gw.v1}/chat/completions", headers={"authorization": f"Bearer {MASTER_KEY}"},
            json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        )  # fmt: skip
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert busy.json()["error"]["code"] == "warming_up"
        wait_ready(gw, timeout=30)  # the store's connect timeout passes: degraded, ready
        assert httpx.get(f"{gw.url}/health/ready").json()["metering"]["degraded"] is True
    finally:
        gw.stop()
        silent.close()
        for conn in accepted:
            conn.close()
