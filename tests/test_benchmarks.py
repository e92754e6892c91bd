"""The benchmark harness's own pieces work (the heavy runs are `make bench` only)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest

from benchmarks.run import _ms
from tests.harness import ROOT, free_port
from tests.mock_openai import wait_until


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
