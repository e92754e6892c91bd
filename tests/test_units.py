"""Small pure units: SSE framing, raw-body patching, error paths."""

from __future__ import annotations

import msgspec
import pytest

from gateway.api.codec import REMOVE, patch_fields
from gateway.providers.sse import SSESplitter


def test_sse_splitter_handles_split_reads_and_line_endings() -> None:
    stream = b'data: {"a":1}\r\n\r\n: keep-alive\n\nevent: message_start\ndata: {"b"\ndata: :2}\n\ndata: [DONE]\n\n'
    for size in (1, 2, 3, 7, len(stream)):
        splitter = SSESplitter()
        events = []
        for i in range(0, len(stream), size):
            events += splitter.feed(stream[i : i + size])
        assert events == [(None, b'{"a":1}'), ("message_start", b'{"b"\n:2}'), (None, b"[DONE]")]
        assert splitter.pending == b""


def test_patch_fields_keeps_unknown_fields_verbatim() -> None:
    raw = b'{"model":"a","x_vendor":{"deep":[1,2.50,"\\u00e9"]},"stream_options":{"include_usage":false}}'
    out = msgspec.json.decode(patch_fields(raw, {"model": "b", "stream_options": REMOVE}))
    assert out == {"model": "b", "x_vendor": {"deep": [1, 2.5, "é"]}}
    assert b'"deep":[1,2.50,"\\u00e9"]' in patch_fields(raw, {"model": "b"})


@pytest.mark.parametrize("size", [0, 10])
def test_patch_fields_with_no_changes_round_trips(size: int) -> None:
    raw = b'{"model":"' + b"m" * size + b'"}'
    assert msgspec.json.decode(patch_fields(raw, {})) == msgspec.json.decode(raw)


async def test_deadline_moved_earlier_fires_at_the_earlier_time() -> None:
    """A later deadline only moves the mark; an earlier one (a read limit after a longer
    keep-alive one) must not wait for the timer set for the later; a cleared one never fires."""
    import asyncio

    from gateway.deadline import Deadline

    loop = asyncio.get_running_loop()
    fired: list[float] = []
    deadline = Deadline(loop, lambda: fired.append(loop.time()))
    start = loop.time()
    deadline.arm(start + 30)  # the keep-alive limit
    deadline.arm(start + 0.05)  # then a request begins: its read limit is sooner
    await asyncio.sleep(0.2)
    assert len(fired) == 1 and fired[0] - start < 0.15
    deadline.arm(loop.time() + 0.05)
    deadline.arm(loop.time() + 0.1)  # moved later: the first timer fires early and re-arms
    deadline.clear()
    await asyncio.sleep(0.2)
    assert len(fired) == 1  # cleared: nothing more
    deadline.arm(loop.time() + 0.02)
    deadline.arm(loop.time() + 0.08)
    await asyncio.sleep(0.05)
    assert len(fired) == 1  # not at the first time...
    await asyncio.sleep(0.1)
    assert len(fired) == 2  # ...but at the moved one


def test_sse_splitter_is_linear_and_says_what_it_holds() -> None:
    """An event that never ends is held once, not rescanned: `buffered` grows by each read."""
    splitter = SSESplitter()
    piece = b"data: " + b"x" * 1000
    for n in range(1, 200):
        assert splitter.feed(piece) == []
        assert splitter.buffered == n * len(piece)
    assert splitter.feed(b"\n\n") == [(None, piece[6:] + piece * 198)]
    assert splitter.buffered == 0


def test_sse_splitter_same_events_for_any_chunking() -> None:
    import random

    stream = b"".join(
        random.Random(n).choice([b'data: {"n": %d}\r\n\r\n' % n, b"event: e\ndata: %d\n\n" % n, b": ping\n\n", b"data: a\rdata: b\r\r"])
        for n in range(300)
    )
    whole = SSESplitter().feed(stream)
    for seed in range(20):
        rng = random.Random(seed)
        splitter, events, at = SSESplitter(), [], 0
        while at < len(stream):
            step = rng.randint(1, 40)
            events += splitter.feed(stream[at : at + step])
            at += step
        assert events == whole


def test_header_lines_never_write_a_raw_control_character() -> None:
    from gateway.headers import header_lines

    assert header_lines({"a": "plain", "b": "x y"}) == "a: plain\r\nb: x y\r\n"
    lines = header_lines({"x-model": "m\r\nx-injected: 1", "x-u": "modèle", "bad name": "v", "ok": "%41"})
    assert lines == "x-model: m%0D%0Ax-injected: 1\r\nx-u: mod%C3%A8le\r\nok: %41\r\n"


@pytest.mark.parametrize(
    ("name", "value", "kept"),
    [
        ("retry-after", "3", True), ("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT", True),
        ("retry-after", "3; sk-secret", False), ("retry-after-ms", "1500.5", True),
        ("x-should-retry", "true", True), ("x-should-retry", "yes sk", False),
        ("x-ratelimit-limit-requests", "10000", True), ("x-ratelimit-limit-requests", "Zq9key", False),
        ("x-ratelimit-reset-tokens", "6m0s", True), ("x-ratelimit-reset-requests", "20ms", True),
        ("x-ratelimit-reset-requests", "2024-06-01T12:00:00Z", True), ("x-ratelimit-reset-requests", "soon key", False),
    ],
)  # fmt: skip
def test_passed_headers_hold_what_they_name(name: str, value: str, kept: bool) -> None:
    from gateway.providers.redact import passed_headers

    assert (passed_headers({name: value}, {name: name}) == {name: value}) is kept


def test_request_secrets_finds_every_credential() -> None:
    from gateway.providers.redact import redact, request_secrets

    headers = {
        "content-type": "application/json",
        "authorization": "Bearer Zq9-token-123456",
        "x-goog-api-key": "Zq9-google-key",
        "x-team": "search",
    }
    secrets = request_secrets(headers, ("Zq9-aws-secret/xyz",))
    text = redact("a Zq9-token-123456 b Zq9-google-key c Zq9-aws-secret/xyz search", secrets)
    assert text == "a *** b *** c *** search"
