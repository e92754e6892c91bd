"""Token counts: exact for OpenAI's models (the compiled BPE counter, identical to tiktoken),
labelled estimates for everyone else, and requests counted the way OpenAI bills them.

Nothing here runs unless something needs the number: the encodings load on first use (a few
milliseconds, from gateway/metering/data), and a request is decoded for counting only when a
limit, a route condition, a count endpoint or a missing usage report asks.

Chat requests follow OpenAI's published accounting (the "How to count tokens with tiktoken"
cookbook): 3 tokens per message, 1 more for a `name`, 3 to prime the reply; tool definitions
by the cookbook's function rule; images by the tile rule (85 tokens at low detail, else 85 +
170 per 512-pixel tile after fitting in 2048 and scaling the short side to 768), from the
image's own header when it is inline, else as a 1024 x 1024 image. Anthropic's and Google's
tokenizers are not public: their counts use o200k_base and are marked estimates.
"""

from __future__ import annotations

import base64
import math
import struct
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from gateway._native.bpe import Encoding

DATA = Path(__file__).resolve().parent / "data"
_CL100K_PREFIXES = ("gpt-4-", "gpt-3.5", "gpt-35", "text-embedding-", "davinci", "babbage")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-", "gpt-oss")


@cache
def encoding(name: str) -> Encoding:
    """An encoding, loaded once: "o200k_base" or "cl100k_base"."""
    classes = (DATA / "classes.bin").read_bytes()
    return Encoding((DATA / f"{name}.bpe").read_bytes(), classes, name)


class Counter(NamedTuple):
    """How a model's tokens are counted: the encoding, and whether the count is the model's
    own (OpenAI models) or an estimate (everyone else)."""

    encoding: str
    exact: bool


def counter_for(model: str) -> Counter:
    name = model.rsplit("/", 1)[-1].lower()
    if name == "gpt-4" or name.startswith(_CL100K_PREFIXES):
        return Counter("cl100k_base", True)
    if name.startswith(_O200K_PREFIXES):
        return Counter("o200k_base", True)
    return Counter("o200k_base", False)


def count_text(text: str, model: str = "gpt-4o") -> int:
    return encoding(counter_for(model).encoding).count(text)


# --- chat requests -------------------------------------------------------------------------


class _ImageURL(msgspec.Struct):
    url: str = ""
    detail: str | None = None


class _Part(msgspec.Struct):
    type: str = "text"
    text: str | None = None
    image_url: _ImageURL | None = None
    input_audio: Any = None


class _Function(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    function: _Function | None = None


class _Message(msgspec.Struct):
    role: str = ""
    content: str | list[_Part] | None = None
    name: str | None = None
    tool_calls: list[_ToolCall] | None = None
    tool_call_id: str | None = None


class _FunctionDef(msgspec.Struct):
    name: str = ""
    description: str | None = None
    parameters: dict[str, Any] | None = None


class _Tool(msgspec.Struct):
    function: _FunctionDef | None = None


class _ChatBody(msgspec.Struct):
    messages: list[_Message] = []
    system: str | list[_Part] | None = None  # Anthropic's
    tools: list[_Tool] | None = None
    functions: list[_FunctionDef] | None = None
    input: str | list[Any] | None = None  # embeddings: texts, or token ids
    prompt: str | list[str] | None = None  # legacy completions


_BODY = msgspec.json.Decoder(_ChatBody)


def count_request(raw: bytes, model: str) -> tuple[int, bool]:
    """Input tokens of a chat, completion or embedding body, and whether the count is exact
    for the model. A body that cannot be decoded counts as its bytes / 4 (an estimate)."""
    counter = counter_for(model)
    try:
        body = _BODY.decode(raw)
    except msgspec.MsgspecError:
        return math.ceil(len(raw) / 4), False
    enc = encoding(counter.encoding)
    if body.messages:
        total = _messages(enc, body.messages)
        if body.system:
            total += _messages(enc, [_Message(role="system", content=body.system)]) - 3
        functions = [t.function for t in body.tools or () if t.function is not None]
        functions += body.functions or []
        if functions:
            total += _functions(enc, functions, counter.encoding == "cl100k_base")
        return total, counter.exact
    items = body.input if body.input is not None else body.prompt
    if isinstance(items, str):
        return enc.count(items), counter.exact
    total = 0
    for item in items or ():
        total += enc.count(item) if isinstance(item, str) else _ids(item)
    return total, counter.exact


def count_view(view: Any, raw: bytes, model: str) -> int:
    """count_request's input tokens, from the request view the pipeline already decoded when
    every message is plain text (the common case: no second decode); else from the body."""
    messages = getattr(view, "messages", None)
    if (
        messages
        and not isinstance(messages[0], msgspec.Raw)  # /v1/messages keeps its messages raw
        and getattr(view, "tools", None) is None
        and getattr(view, "system", None) is None
        and all(
            isinstance(m.content, str)
            and m.name is None
            and m.tool_calls is None
            and m.tool_call_id is None
            for m in messages
        )  # fmt: skip
    ):
        enc = encoding(counter_for(model).encoding)
        total = 3
        for message in messages:
            total += 3 + enc.count(message.role) + enc.count(message.content)
        return total
    return count_request(raw, model)[0]


def _ids(item: Any) -> int:
    return len(item) if isinstance(item, list) else 1


def _messages(enc: Encoding, messages: list[_Message]) -> int:
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for message in messages:
        total += 3 + enc.count(message.role)
        content = message.content
        if isinstance(content, str):
            total += enc.count(content)
        elif content:
            for part in content:
                if part.text is not None:
                    total += enc.count(part.text)
                elif part.image_url is not None:
                    total += image_tokens(part.image_url.url, part.image_url.detail)
        if message.name:
            total += 1 + enc.count(message.name)
        for call in message.tool_calls or ():
            if call.function is not None:
                total += enc.count(call.function.name) + enc.count(call.function.arguments)
        if message.tool_call_id:
            total += enc.count(message.tool_call_id)
    return total


def _functions(enc: Encoding, functions: list[_FunctionDef], cl100k: bool) -> int:
    """The cookbook's rule for function definitions (gpt-4o / gpt-4o-mini constants; gpt-4 and
    gpt-3.5 open each function with 10 tokens instead of 7)."""
    total = 0
    for function in functions:
        total += 10 if cl100k else 7
        description = (function.description or "").removesuffix(".")
        total += enc.count(f"{function.name}:{description}")
        properties = (function.parameters or {}).get("properties") or {}
        if isinstance(properties, dict) and properties:
            total += 3
            for key, spec in properties.items():
                total += 3
                spec = spec if isinstance(spec, dict) else {}
                enum = spec.get("enum")
                if isinstance(enum, list):
                    total -= 3
                    for item in enum:
                        total += 3 + enc.count(str(item))
                kind = spec.get("type", "")
                described = str(spec.get("description", "")).removesuffix(".")
                total += enc.count(f"{key}:{kind}:{described}")
    return total + 12


# --- images --------------------------------------------------------------------------------


def image_tokens(url: str, detail: str | None) -> int:
    """OpenAI's tile rule for one image."""
    if detail == "low":
        return 85
    size = _inline_size(url) or (1024, 1024)
    width, height = float(size[0]), float(size[1])
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def _inline_size(url: str) -> tuple[int, int] | None:
    """The width and height from a data URL's image header (PNG, GIF, JPEG, WebP)."""
    if not url.startswith("data:") or "," not in url[:100]:
        return None
    head = url.split(",", 1)[1][:65536]
    try:
        data = base64.b64decode(head[: len(head) // 4 * 4])
    except ValueError:
        return None
    return image_size(data)


def image_size(data: bytes) -> tuple[int, int] | None:
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        return width, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None


# --- answers -------------------------------------------------------------------------------


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    message: _Delta | None = None
    text: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] = []


_CHUNK = msgspec.json.Decoder(_Chunk)


def count_stream_output(frames: list[bytes], model: str) -> int:
    """Output tokens in the SSE frames relayed so far (a stream that ended without its usage
    chunk, or was cut): the text of every delta, counted once at the end."""
    parts: list[str] = []
    for frame in frames:
        for line in frame.split(b"\n"):
            if not line.startswith(b"data: {"):
                continue
            try:
                _texts(_CHUNK.decode(line[6:]), parts)
            except msgspec.MsgspecError:
                continue
    return count_text("".join(parts), model) if parts else 0


def count_answer_output(body: bytes, model: str) -> int:
    """Output tokens in a whole chat or text completion that reported no usage (some
    self-hosted servers send none): its messages' text, reasoning and tool calls."""
    parts: list[str] = []
    try:
        _texts(_CHUNK.decode(body), parts)
    except msgspec.MsgspecError:
        return 0
    return count_text("".join(parts), model) if parts else 0


def _texts(chunk: _Chunk, parts: list[str]) -> None:
    for choice in chunk.choices:
        delta = choice.delta or choice.message
        if delta is not None:
            parts.extend(t for t in (delta.content, delta.reasoning_content) if t)
            for call in delta.tool_calls or ():
                if call.function is not None:
                    parts.append(call.function.name + call.function.arguments)
        elif choice.text:
            parts.append(choice.text)
