"""The benchmark harness's own pieces work (the heavy runs are `make bench` only)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from benchmarks.latency import DIRECT, _Rounds, write_chart
from benchmarks.openloop import open_loop
from benchmarks.run import Result, _ms, write_report
from tests.harness import ROOT, free_port
from tests.mock_openai import wait_until

BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
STREAM_BODY = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}'


@contextlib.contextmanager
def mock_upstream(*options: str) -> Iterator[str]:
    """benchmarks.fast_upstream with these options, listening; yields its /v1 base URL."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.fast_upstream", "--port", str(port), *options]
    with subprocess.Popen(command, cwd=ROOT) as process:
        try:

            def listening() -> bool:
                with socket.socket() as sock:
                    return sock.connect_ex(("127.0.0.1", port)) == 0

            assert wait_until(listening, timeout=10)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            process.terminate()


@pytest.fixture(scope="module")
def fast_upstream() -> Iterator[str]:
    with mock_upstream("--chunks", "5") as url:
        yield url


def test_fast_upstream_speaks_openai(fast_upstream: str) -> None:
    with openai.OpenAI(base_url=fast_upstream, api_key="x", max_retries=0, _strict_response_validation=True) as c:
        done = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert done.choices[0].message.content
        chunks = list(c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True))
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "tok " * 5
        assert chunks[-1].usage is not None


def test_fast_upstream_size_and_latency() -> None:
    with (
        mock_upstream("--size", "1000", "--latency", "80") as url,
        openai.OpenAI(base_url=url, api_key="x", max_retries=0) as c,
    ):
        started = time.perf_counter()
        done = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert time.perf_counter() - started >= 0.08
        assert len(done.choices[0].message.content or "") == 1000


def test_fast_upstream_speaks_anthropic(fast_upstream: str) -> None:
    """The translation scenarios' upstream: Anthropic's Message and its named-event stream."""
    url = fast_upstream + "/messages"
    body = {"model": "claude-bench", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    message = httpx.post(url, json=body).json()
    assert message["type"] == "message" and message["content"][0]["type"] == "text"
    events = httpx.post(url, json={**body, "stream": True}).text
    names = [line[7:] for line in events.splitlines() if line.startswith("event: ")]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert names.count("content_block_delta") == 5


def test_open_loop_generator_keeps_its_rate(fast_upstream: str) -> None:
    url = fast_upstream + "/chat/completions"
    started = time.perf_counter()
    latencies, errors = open_loop(url, rate=400, seconds=1.0, body=BODY, warmup=0.25)
    took = time.perf_counter() - started
    assert errors == 0
    assert len(latencies) == 400  # every request counted after the warm-up, none failed
    assert 1.25 <= took < 2.0  # on schedule: neither bunched up front nor lagging far behind
    # Sorted, and answered (how fast is the benchmarks' business, not a test's: a loaded
    # machine made a 50 ms bound here fail while the schedule held).
    assert latencies == sorted(latencies) and latencies[len(latencies) // 2] < 1.0


@pytest.mark.parametrize(
    ("first_token_delay", "low", "high"),
    [((), 0.018, 0.06), (("--first-token-delay", "0"), 0.0, 0.015)],
    ids=["first-token-one-delay-in", "first-token-with-the-head"],
)
def test_open_loop_generator_times_the_first_token_of_a_stream(
    first_token_delay: tuple[str, ...], low: float, high: float
) -> None:
    """Against a stream whose chunks are 20 ms apart, the first token comes one delay in (or,
    with --first-token-delay 0, with the head): the figure is neither the role-only opening
    chunk nor the whole 100 ms stream."""
    with mock_upstream("--chunks", "5", "--chunk-delay", "20", *first_token_delay) as base:
        url = base + "/chat/completions"
        latencies, errors = open_loop(url, rate=20, seconds=0.5, body=STREAM_BODY, stream=True, warmup=0)
    assert errors == 0 and len(latencies) == 10
    assert low < latencies[len(latencies) // 2] < high


def test_mock_stream_paces_every_frame_after_the_first_token() -> None:
    """--first-token-delay 0 moves only the first token: every later frame still comes a chunk
    delay after the one before, so a relay's cost per chunk is measured over the whole stream."""
    with mock_upstream("--chunks", "5", "--chunk-delay", "20", "--first-token-delay", "0") as base:
        started = time.perf_counter()
        events = httpx.post(base + "/chat/completions", content=STREAM_BODY).text
        took = time.perf_counter() - started
    frames = [line for line in events.splitlines() if line.startswith("data: ")]
    # role, 5 tokens, stop, usage, [DONE]: the 7 frames after the first token are 20 ms apart
    assert len(frames) == 9 and frames[-1] == "data: [DONE]"
    assert '"content":"tok ' in frames[1]
    assert 0.13 < took < 0.5


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
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG")


def test_latency_rounds_and_chart(tmp_path: Path) -> None:
    """Added latency is each round's excess over the mock in that same round, then the median;
    the chart of it is written."""
    rounds = _Rounds()
    for direct, gateway in ((0.10, 0.25), (0.30, 0.40), (0.20, 0.32)):  # seconds, drifting
        rounds.add(DIRECT, [direct] * 100)
        rounds.add("gateway", [gateway] * 100)
    assert rounds.added_medians("gateway") == pytest.approx((120.0, 120.0))  # ms
    assert rounds.row("x", "gateway") == "| x | gateway | 320.000 | 320.000 | 120.000 | 120.000 | 100.000–150.000 |"
    assert write_chart([("x | gateway", *rounds.added_medians("gateway"))], tmp_path)
    assert (tmp_path / "latency.png").read_bytes().startswith(b"\x89PNG")


def test_wrk_latency_parsing() -> None:
    text = "  Latency Distribution\n     50%  512.00us\n     99%    2.31ms\n"
    assert _ms(text, "50") == pytest.approx(0.512)
    assert _ms(text, "99") == pytest.approx(2.31)


def test_kernel_and_index_benchmarks_run() -> None:
    """The micro-benchmarks stay runnable (their figures live in benchmarks/RESULTS.md)."""
    from benchmarks import kernels

    rows = kernels.kernels()
    assert len(rows) == 7 and all("×" in row for row in rows[2:])
    assert len(kernels.index([300])) == 3


def test_guardrails_scanner_benchmark_runs() -> None:
    """The guardrails' scanner table stays runnable, and its 3-item prompt really is masked."""
    from benchmarks import guardrails

    lines = guardrails.scanner(1)
    assert sum(1 for line in lines if line.startswith("| gateway")) == 2
    assert any("[EMAIL_1], call [PHONE_1], card [CREDIT_CARD_1]" in line for line in lines)


# benchmarks.run._start's log reader (`cat`) ends with the gateway but is never waited for.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_callgrind_counts_a_gateway_request(tmp_path: Path) -> None:
    """benchmarks.instructions runs a gateway under callgrind (which needs every extension it
    loads to run on valgrind's CPU: hnswlib, built for this one's, must stay unimported while
    no semantic cache is used) and counts what its requests cost; a config line merges into
    the base config's `server:` block."""
    import shutil as _shutil

    from benchmarks import instructions

    assert _shutil.which("valgrind"), "needs valgrind: apt-get install valgrind"
    merged = instructions._merged("server: {access_log: false}\n")
    assert "server: {access_log: false, master_key:" in merged and merged.count("server:") == 1
    with mock_upstream() as url:
        mock = int(url.rsplit(":", 1)[1].split("/")[0])
        total = instructions.count(instructions._merged(""), mock, 20, None, tmp_path / "p.out")
    per_request = total / 20
    assert 100_000 < per_request < 5_000_000, per_request
    assert (tmp_path / "p.out").stat().st_size > 0
