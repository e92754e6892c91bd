"""Config hot reload: `POST /admin/config/reload`, SIGHUP and `--watch` swap in a new config for
new requests; a bad one is refused and the running one kept; streams in flight finish on the
old config; breaker state and cached answers survive; every worker of several reloads."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, until, write_config
from tests.mock_openai import MockOpenAI

ADMIN = {"authorization": f"Bearer {MASTER_KEY}"}
ENV = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
BASE = """
server: {{master_key: env:TEST_MASTER_KEY, shutdown_timeout: 5}}
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
cache: {{mode: simple}}
models:
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: drip
    targets: [{{provider: openai, model: drip-stream}}]
  - name: broken
    breaker: {{window: 2, min_requests: 2, failure_ratio: 0.5, cooldown_ms: 60000}}
    targets: [{{provider: openai, model: status-503}}]
{extra}
"""
EXTRA = """
  - name: added
    targets: [{provider: openai, model: gpt-ok}]
"""


def chat(gateway: Gateway, model: str, text: str = "hi") -> httpx.Response:
    return httpx.post(
        f"{gateway.v1}/chat/completions", headers=ADMIN, timeout=30,
        json={"model": model, "messages": [{"role": "user", "content": text}]},
    )  # fmt: skip


def reload(gateway: Gateway) -> httpx.Response:
    return httpx.post(f"{gateway.url}/admin/config/reload", headers=ADMIN, timeout=30)




def start(impl: str, config: Path, *args: str) -> Gateway:
    return start_gateway(impl, ["--config", str(config), *args], ENV)


def test_reload_applies_a_new_config_and_refuses_a_bad_one(impl: str, mock: MockOpenAI) -> None:
    config = write_config(BASE.format(mock=mock.url, extra=""))
    gw = start(impl, config)
    try:
        assert chat(gw, "added").status_code == 404
        unchanged = reload(gw)
        assert unchanged.status_code == 200 and unchanged.json()["reloaded"] is False
        config.write_text(BASE.format(mock=mock.url, extra=EXTRA))
        answer = reload(gw)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["reloaded"] is True and body["generation"] == 1
        assert body["changes"]["models"]["added"] == ["added"]
        assert chat(gw, "added").status_code == 200
        # A bad config names its error; the running one keeps serving.
        config.write_text(BASE.format(mock=mock.url, extra=EXTRA).replace("cooldown_ms: 60000", "cooldown_ms: soon"))
        bad = reload(gw)
        assert bad.status_code == 400
        error = bad.json()["error"]
        assert error["code"] == "invalid_config" and "cooldown_ms" in error["message"]
        assert chat(gw, "added").status_code == 200
        config.write_text("models: [")  # not even YAML
        assert reload(gw).json()["error"]["code"] == "invalid_config"
        # What cannot change without a restart is named, and the rest applied.
        config.write_text(BASE.format(mock=mock.url, extra="").replace("shutdown_timeout: 5", "shutdown_timeout: 5, workers: 2"))
        moved = reload(gw).json()
        assert moved["reloaded"] and moved["changes"]["needs_restart"] == ["server.workers"]
        assert moved["changes"]["models"]["removed"] == ["added"]
        assert chat(gw, "added").status_code == 404 and chat(gw, "chat").status_code == 200
        assert httpx.post(f"{gw.url}/admin/config/reload").status_code == 401
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert 'gateway_config_reloads_total{result="failed"} 2.0' in metrics
    finally:
        assert gw.stop() == 0
    assert "Traceback" not in gw.output()


def test_a_stream_in_flight_finishes_on_the_old_config(impl: str, mock: MockOpenAI) -> None:
    config = write_config(BASE.format(mock=mock.url, extra=""))
    gw = start(impl, config)
    try:
        words = " ".join(f"w{i}" for i in range(40))  # 40 chunks, 50 ms apart: 2 s
        text: list[str] = []

        def stream() -> None:
            with openai.OpenAI(base_url=gw.v1, api_key=MASTER_KEY, max_retries=0) as client:
                for chunk in client.chat.completions.create(
                    model="drip", messages=[{"role": "user", "content": words}], stream=True
                ):
                    if chunk.choices and chunk.choices[0].delta.content:
                        text.append(chunk.choices[0].delta.content)

        reader = threading.Thread(target=stream)
        reader.start()
        time.sleep(0.5)
        config.write_text(BASE.format(mock=mock.url, extra="").replace("  - name: drip\n    targets: [{provider: openai, model: drip-stream}]\n", ""))
        assert reload(gw).json()["changes"]["models"]["removed"] == ["drip"]
        assert chat(gw, "drip").status_code == 404  # new requests: the new config
        reader.join(15)
        assert "".join(text).strip() == f"echo: {words}"  # the old one, to its end
    finally:
        gw.stop()


def test_breakers_and_cached_answers_survive_a_reload(impl: str, mock: MockOpenAI) -> None:
    config = write_config(BASE.format(mock=mock.url, extra=""))
    gw = start(impl, config)
    try:
        for _ in range(2):
            assert chat(gw, "broken").status_code == 503
        assert chat(gw, "broken").json()["error"]["code"] == "no_healthy_targets"
        first = chat(gw, "chat", "cache me")
        assert first.headers["x-gateway-cache"] == "MISS"
        config.write_text(BASE.format(mock=mock.url, extra=EXTRA))
        assert reload(gw).json()["reloaded"]
        assert chat(gw, "broken").json()["error"]["code"] == "no_healthy_targets"
        again = chat(gw, "chat", "cache me")
        assert again.headers["x-gateway-cache"] == "HIT" and again.json() == first.json()
    finally:
        gw.stop()


def test_sighup_and_the_file_watch(impl: str, mock: MockOpenAI) -> None:
    config = write_config(BASE.format(mock=mock.url, extra=""))
    gw = start(impl, config, "--watch")
    try:
        config.write_text(BASE.format(mock=mock.url, extra=EXTRA))
        until(lambda: chat(gw, "added").status_code == 200)  # the watch saw the edit
        config.write_text(BASE.format(mock=mock.url, extra=EXTRA.replace("added", "hupped")))
        gw.process.send_signal(signal.SIGHUP)
        until(lambda: chat(gw, "hupped").status_code == 200)
        config.write_text("models: [")
        gw.process.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert chat(gw, "hupped").status_code == 200 and gw.process.poll() is None
        assert "the running config is kept" in gw.output()
    finally:
        assert gw.stop() == 0


@pytest.mark.parametrize("impl", ["compiled"])
def test_every_worker_reloads(impl: str, mock: MockOpenAI) -> None:
    config = write_config(BASE.format(mock=mock.url, extra=""))
    gw = start(impl, config, "--workers", "2")
    try:
        config.write_text(BASE.format(mock=mock.url, extra=EXTRA))
        answer = reload(gw).json()
        assert answer["reloaded"] and answer["workers"] == "signalled"

        def everywhere() -> bool:  # new connections land on either worker
            return all(chat(gw, "added").status_code == 200 for _ in range(12))

        until(everywhere)
    finally:
        assert gw.stop() == 0


def test_zero_config_has_nothing_to_reload(impl: str) -> None:
    gw = start_gateway(impl, [], {"GATEWAY_MASTER_KEY": MASTER_KEY})
    try:
        reply = reload(gw)
        assert reply.status_code == 400 and reply.json()["error"]["code"] == "reload_unavailable"
        gw.process.send_signal(signal.SIGHUP)  # logged, and the process stays up
        time.sleep(0.5)
        assert gw.process.poll() is None
    finally:
        gw.stop()
