"""Zero-config mode, several workers on one port, and draining on SIGTERM."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from tests.harness import Gateway, start_gateway
from tests.mock_openai import MockOpenAI

MESSAGES = [{"role": "user", "content": "hi"}]


def test_starts_without_any_key_and_says_what_to_set(impl: str) -> None:
    gw = start_gateway(impl)
    try:
        assert httpx.get(f"{gw.url}/health/ready").status_code == 200
        with openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as c:
            with pytest.raises(openai.NotFoundError, match="OPENAI_API_KEY"):
                c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
            with pytest.raises(openai.NotFoundError, match="GROQ_API_KEY"):
                c.chat.completions.create(model="groq/llama3", messages=MESSAGES)  # type: ignore[arg-type]
    finally:
        gw.stop()
    assert "OPENAI_API_KEY" in gw.output()


@pytest.fixture(scope="module")
def zero(impl: str, mock: MockOpenAI) -> Gateway:
    env = {
        "OPENAI_API_KEY": "sk-zero-0000000000",
        "OPENAI_BASE_URL": f"{mock.url}/v1",
        "GROQ_API_KEY": "gsk-zero-000000000",
        "GROQ_BASE_URL": f"{mock.url}/groq/v1",
        "OLLAMA_BASE_URL": f"{mock.url}/ollama/v1",
    }
    gw = start_gateway(impl, ["--workers", "2"], env)
    yield gw  # type: ignore[misc]
    gw.stop()


def test_zero_config_routes_by_prefix(zero: Gateway, mock: MockOpenAI) -> None:
    with openai.OpenAI(base_url=zero.v1, api_key="any", max_retries=0, _strict_response_validation=True) as c:
        c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert mock.state.last().path == "/v1/chat/completions"
        assert mock.state.last().body["model"] == "gpt-4o-mini"
        c.chat.completions.create(model="groq/llama-3.1-8b-instant", messages=MESSAGES)  # type: ignore[arg-type]
        assert mock.state.last().path == "/groq/v1/chat/completions"
        assert mock.state.last().body["model"] == "llama-3.1-8b-instant"
        c.chat.completions.create(model="ollama/llama3", messages=MESSAGES)  # type: ignore[arg-type]
        assert mock.state.last().path == "/ollama/v1/chat/completions"
        assert "Authorization" not in mock.state.last().headers  # local servers need no key
        # A name whose prefix is no provider goes to OpenAI whole (e.g. OpenRouter-style ids).
        c.chat.completions.create(model="meta/llama-3", messages=MESSAGES)  # type: ignore[arg-type]
        assert mock.state.last().body["model"] == "meta/llama-3"


def test_workers_share_port_and_metrics(zero: Gateway) -> None:
    with openai.OpenAI(base_url=zero.v1, api_key="any", max_retries=0) as c:
        for _ in range(30):
            # A fresh connection each time, so the kernel spreads them over both workers.
            c.with_options(http_client=None).chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, extra_headers={"connection": "close"}  # type: ignore[arg-type]
            )
    text = httpx.get(f"{zero.url}/metrics").text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("gateway_requests_total{") and 'model="gpt-4o-mini"' in line
    )
    assert total >= 30  # every worker's requests, whichever worker answered the scrape


def test_sigterm_drains_in_flight_stream(impl: str, mock: MockOpenAI) -> None:
    env = {"OPENAI_API_KEY": "sk-drain-000000000", "OPENAI_BASE_URL": f"{mock.url}/v1"}
    gw = start_gateway(impl, [], env)
    lines: list[str] = []

    def consume() -> None:
        body = {"model": "drip-stream", "messages": [{"role": "user", "content": "a b c d e f g h"}], "stream": True}
        with httpx.stream("POST", f"{gw.v1}/chat/completions", json=body, timeout=30) as response:
            lines.extend(line for line in response.iter_lines() if line)

    reader = threading.Thread(target=consume)
    reader.start()
    time.sleep(0.15)  # the stream is under way
    gw.process.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{gw.url}/health/live", timeout=1)  # no longer accepting
    reader.join(30)
    assert lines[-1] == "data: [DONE]"  # the in-flight stream finished normally
    assert gw.process.wait(20) == 0


def test_master_key_from_environment(impl: str, mock: MockOpenAI) -> None:
    env = {
        "GATEWAY_MASTER_KEY": "env-master-key-1",
        "OPENAI_API_KEY": "sk-zero-0000000000",
        "OPENAI_BASE_URL": f"{mock.url}/v1",
    }
    gw = start_gateway(impl, [], env)
    try:
        with (
            openai.OpenAI(base_url=gw.v1, api_key="wrong", max_retries=0) as c,
            pytest.raises(openai.AuthenticationError),
        ):
            c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        with openai.OpenAI(base_url=gw.v1, api_key="env-master-key-1", max_retries=0) as c:
            assert c.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices  # type: ignore[arg-type]
    finally:
        gw.stop()
    assert "env-master-key-1" not in gw.output()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def test_workers_exit_when_the_instance_is_killed(impl: str, mock: MockOpenAI) -> None:
    """kill -9 of the main process (an instance's crash): its workers drain and exit instead
    of serving the port as orphans, so a restarted instance gets the port, the spool and the
    load balancer's traffic alone."""
    env = {"OPENAI_API_KEY": "sk-orphan-00000000", "OPENAI_BASE_URL": f"{mock.url}/v1"}
    gw = start_gateway(impl, ["--workers", "2"], env)
    try:
        deadline = time.monotonic() + 20
        while len(workers := _children(gw.process.pid)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 3  # two workers and multiprocessing's resource tracker
        gw.process.kill()
        gw.process.wait(10)
        deadline = time.monotonic() + 15
        while any(Path(f"/proc/{w}").exists() and "zombie" not in _state(w) for w in workers):
            assert time.monotonic() < deadline, "workers outlived their instance"
            time.sleep(0.1)
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/health/live", timeout=2)
    finally:
        gw.stop()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (OSError, IndexError):
        return "zombie"
