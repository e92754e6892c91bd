"""Recorded-format provider streams replayed through each adapter's translator and compared,
chunk by chunk, with the expected OpenAI (or, for the front door, Anthropic) output.

Each input is fed in small odd-sized pieces, so frames split across reads are covered too.
Set GOLDEN_UPDATE=1 to rewrite the expected files after a deliberate change, then review them.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.frontdoor.messages_response import EventWriter
from gateway.providers.anthropic.response import ChunkStream as AnthropicStream
from gateway.providers.base import StreamTranslator
from gateway.providers.bedrock.response import ChunkStream as BedrockStream
from gateway.providers.cohere.chat import ChunkStream as CohereStream
from gateway.providers.gemini.response import ChunkStream as GeminiStream

GOLDEN = Path(__file__).parent / "golden"
TRANSLATORS: dict[str, Callable[[], StreamTranslator]] = {
    "anthropic_thinking_tools.sse": lambda: AnthropicStream(
        "anthropic", "claude", wants_usage=True
    ),
    "gemini_thoughts_tools.sse": lambda: GeminiStream(
        "gemini", "gemini-2.5-flash", wants_usage=True
    ),
    "cohere_tool_call.sse": lambda: CohereStream("cohere", "command-a", wants_usage=True),
    "bedrock_tool_use.eventstream": lambda: BedrockStream("claude-on-bedrock", wants_usage=True),
}


def _pieces(data: bytes, size: int = 23) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _events(frames: bytes) -> list[dict[str, Any]]:
    """SSE frames as JSON documents, with the event name kept and the clock left out."""
    out = []
    for block in frames.decode().split("\n\n"):
        if not block:
            continue
        event = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        document: dict[str, Any] = {"data": data} if data == "[DONE]" else json.loads(data)
        document.pop("created", None)
        if str(document.get("id", "")).startswith("chatcmpl-") and len(document["id"]) == 33:
            document["id"] = "chatcmpl-<random>"  # Bedrock and Gemini fallbacks mint ids
        out.append({"event": event, **document} if event else document)
    return out


def _compare(name: str, produced: list[dict[str, Any]]) -> None:
    expected_path = GOLDEN / f"{name}.expected.json"
    if os.environ.get("GOLDEN_UPDATE"):
        expected_path.write_text(json.dumps(produced, indent=1) + "\n")
    expected = json.loads(expected_path.read_text())
    assert len(produced) == len(expected), (
        f"{name}: {len(produced)} chunks, expected {len(expected)}"
    )
    for i, (got, want) in enumerate(zip(produced, expected, strict=True)):
        assert got == want, f"{name}: chunk {i} differs"


@pytest.mark.parametrize("name", sorted(TRANSLATORS))
def test_provider_stream_golden(name: str) -> None:
    translator = TRANSLATORS[name]()
    frames = b"".join(
        frame
        for piece in _pieces((GOLDEN / name).read_bytes())
        for frame in translator.frames(piece)
    )
    assert translator.finished
    assert translator.usage is not None
    _compare(name, _events(frames))


def test_front_door_stream_golden() -> None:
    name = "openai_tools_for_messages.sse"
    frames = (GOLDEN / name).read_bytes().split(b"\n\n")

    async def source() -> AsyncIterator[bytes]:
        for frame in frames:
            if frame:
                yield frame + b"\n\n"

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in EventWriter("gpt-4o").convert(source())])

    _compare(name, _events(asyncio.run(collect())))


def _normalised(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses events with minted ids and clocks replaced, so runs compare equal."""
    names: dict[str, str] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items() if k != "created_at"}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, str) and value[:3] in ("msg", "fc_", "rs_", "res", "cal"):
            head, _, tail = value.partition("_")
            if len(tail) == 48:
                return names.setdefault(value, f"{head}_<{len(names)}>")
        return value

    return [walk(e) for e in events]


@pytest.mark.parametrize("name", sorted(TRANSLATORS))
def test_responses_stream_golden(name: str) -> None:
    """Each provider's stream, translated to chat chunks and then to the Responses API's typed
    events; every event must validate as the openai SDK's own type."""
    from openai.types.responses import ResponseStreamEvent
    from pydantic import TypeAdapter

    from gateway.responses import wire
    from gateway.responses.from_chat import EventWriter as ResponsesWriter
    from gateway.responses.from_chat import new_id, shell

    translator = TRANSLATORS[name]()
    frames = [
        frame
        for piece in _pieces((GOLDEN / name).read_bytes())
        for frame in translator.frames(piece)
    ] + [b"data: [DONE]\n\n"]

    async def source() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame

    done: list[dict[str, Any]] = []
    request = wire.ResponsesRequest(model="m", input="hi")
    writer = ResponsesWriter(shell(request, new_id("resp"), []), done.append)

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in writer.convert(source())])

    events = _events(asyncio.run(collect()))
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python({k: v for k, v in event.items() if k != "event"}, strict=False)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert done and done[0]["status"] in ("completed", "incomplete")
    produced = _normalised(events)
    expected_path = GOLDEN / f"{name}.responses.json"
    if os.environ.get("GOLDEN_UPDATE"):
        expected_path.write_text(json.dumps(produced, indent=1) + "\n")
    assert produced == json.loads(expected_path.read_text()), name


def test_the_responses_writers_text_fast_path_writes_what_decoding_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text chunks as the translators write them skip the chunk's decoding: the events are
    the same as with every chunk decoded, for text with quotes, escapes, non-ASCII and
    JSON-looking content, and chunks that only look like text (another delta member after
    the text, usage before the choices) go the decoding way."""
    from gateway.api.chat import ChunkChoice, Delta
    from gateway.providers.sse import chunk_frame
    from gateway.responses import from_chat, wire
    from gateway.responses.from_chat import EventWriter as ResponsesWriter
    from gateway.responses.from_chat import new_id, shell

    texts = ["Hello", ' "quoted" ', "back\\slash\\", "naïve 模型 😀", '","finish_reason":"stop', "\n\t\u2028", "x"]
    frames = [chunk_frame("c1", 1, "m", [ChunkChoice(index=0, delta=Delta(role="assistant", content=""))])]
    frames += [chunk_frame("c1", 1, "m", [ChunkChoice(index=0, delta=Delta(content=t))]) for t in texts]
    frames += [
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"a","reasoning_content":"b"},'
        b'"finish_reason":null,"logprobs":null}]}\n\n',
        b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3},'
        b'"choices":[{"index":0,"delta":{"content":"c"},"finish_reason":null,"logprobs":null}]}\n\n',
        chunk_frame("c1", 1, "m", [ChunkChoice(index=0, delta=Delta(), finish_reason="stop")]),
        b"data: [DONE]\n\n",
    ]

    def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async def source() -> AsyncIterator[bytes]:
            for frame in frames:
                yield frame

        done: list[dict[str, Any]] = []
        writer = ResponsesWriter(shell(wire.ResponsesRequest(model="m", input="hi"), new_id("resp"), []), done.append)

        async def collect() -> bytes:
            return b"".join([chunk async for chunk in writer.convert(source())])

        return _normalised(_events(asyncio.run(collect()))), done

    fast, fast_done = run()
    monkeypatch.setattr(from_chat, "_TEXT_END", b"\x00never")
    slow, slow_done = run()
    assert fast == slow
    assert _normalised(fast_done) == _normalised(slow_done)
    assert fast_done[0]["output"][0]["content"][0]["text"] == "".join(texts)
    assert fast_done[0]["usage"]["output_tokens"] == 2  # the usage before the choices is read
