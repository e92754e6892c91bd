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
