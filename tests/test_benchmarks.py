"""The benchmark harness's own pieces work (the heavy runs are `make bench` only)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from benchmarks.openloop import open_loop
from benchmarks.run import Result, _ms, write_report
from tests.harness import ROOT, free_port
from tests.mock_openai import wait_until

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
STREAM_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'


@pytest.fixture(scope="module")
def fast_upstream() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(port), "--chunks", "5"], cwd=ROOT
    )
    import socket

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    assert wait_until(listening, timeout=10)
    yield f"http://127.0.0.1:{port}/v1"
    process.terminate()
    process.wait(10)


def test_fast_upstream_speaks_openai(fast_upstream: str) -> None:
    with openai.OpenAI(base_url=fast_upstream, api_key="x", max_retries=0, _strict_response_validation=True) as c:
        done = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content
        chunks = list(c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "tok " * 5
        assert chunks[-1].usage is not None


def test_fast_upstream_size_and_latency() -> None:
    import socket
    import time

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(port), "--size", "1000", "--latency", "80"],
        cwd=ROOT,
    )  # fmt: skip

    def listening() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) == 0

    try:
        assert wait_until(listening, timeout=10)
        with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as c:
            started = time.perf_counter()
            done = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
            assert time.perf_counter() - started >= 0.08
            assert len(done.choices[0].message.content or "") == 1000
    finally:
        process.terminate()
        process.wait(10)


def test_fast_upstream_speaks_anthropic(fast_upstream: str) -> None:
    """The translation scenarios' upstream: Anthropic's Message and its named-event stream."""
    import httpx2 as httpx

    url = fast_upstream + "/messages"
    body = {"model": "claude-bench", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    message = httpx.post(url, json=body).json()
    assert message["type"] == "message" and message["content"][0]["type"] == "text"
    events = httpx.post(url, json={**body, "stream": True}).text
    names = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("content_block_delta") == 5


def test_open_loop_generator_keeps_its_rate(fast_upstream: str) -> None:
    import time

    url = fast_upstream + "/chat/completions"
    started = time.perf_counter()
    latencies, errors = open_loop(url, rate=400, seconds=1.0, body=BODY, warmup=0.25)
    took = time.perf_counter() - started
    assert errors == 0
    assert len(latencies) == 400  # every request counted after the warm-up, none failed
    assert 1.25 <= took < 2.0  # on schedule: neither bunched up front nor lagging far behind
    assert latencies == sorted(latencies) and latencies[len(latencies) // 2] < 0.05


def test_open_loop_generator_times_the_first_token_of_a_stream() -> None:
    """Against a stream whose chunks are 20 ms apart, the first token comes one delay in: the
    figure is neither the role-only opening chunk nor the whole 100 ms stream."""
    import socket

    port = free_port()
    command = [sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(port)]
    with subprocess.Popen([*command, "--chunks", "5", "--chunk-delay", "20"], cwd=ROOT) as upstream:
        try:

            def listening() -> bool:
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", port)) == 0

            assert wait_until(listening, timeout=10)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            latencies, errors = open_loop(url, rate=20, seconds=0.5, body=STREAM_BODY, stream=True, warmup=0)
            assert errors == 0 and len(latencies) == 10
            assert 0.018 < latencies[len(latencies) // 2] < 0.06
        finally:
            upstream.terminate()


def test_open_loop_generator_counts_a_closed_port_as_failures() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1/chat/completions"
    with pytest.raises(ConnectionRefusedError):  # nothing listening: said at once, not hidden
        open_loop(url, rate=50, seconds=0.1, body=BODY, warmup=0)


def test_report_is_written(tmp_path: Path) -> None:
    import argparse

    results = [
        Result("aiohttp pass-through (reference)", "non-stream", 1000.0, 1.0, 2.0),
        Result("gateway (compiled)", "non-stream", 2500.0, 0.5, 1.0),
    ]
    write_report(results, argparse.Namespace(duration=1, connections=4, rounds=1), tmp_path)
    table = (tmp_path / "latest.md").read_text()
    assert "| non-stream | gateway (compiled) | 2,500 | 2.50 | 0.50 | 1.00 |" in table


def test_wrk_latency_parsing() -> None:
    text = "  Latency Distribution\n     50%  512.00us\n     99%    2.31ms\n"
    assert _ms(text, "50") == pytest.approx(0.512)
    assert _ms(text, "99") == pytest.approx(2.31)


def test_kernel_and_index_benchmarks_run() -> None:
    """The micro-benchmarks stay runnable (their figures live in benchmarks/RESULTS.md)."""
    from benchmarks import kernels

    rows = kernels.kernels()
    assert len(rows) == 5 and all("×" in row for row in rows[2:])
    assert len(kernels.index([300])) == 3
