"""Every text a provider sees in a request, and every text of an answer, as editable slots.

A body is decoded once into plain objects; `Slot`s point at its strings (with the path an
error names: `messages[2].content`), a guardrail rewrites the ones it masks, and `encode`
gives the body back. Images, audio and token arrays are not text and are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec

from gateway.providers.base import Endpoint

_DECODE = msgspec.json.Decoder()
_ENCODE = msgspec.json.Encoder()


class Slot:
    __slots__ = ("container", "key", "path")

    def __init__(self, container: Any, key: Any, path: str) -> None:
        self.container = container
        self.key = key
        self.path = path

    @property
    def text(self) -> str:
        value: str = self.container[self.key]
        return value

    @text.setter
    def text(self, value: str) -> None:
        self.container[self.key] = value


def decode(body: bytes) -> Any:
    return _DECODE.decode(body)


def encode(doc: Any) -> bytes:
    return _ENCODE.encode(doc)


def _parts(container: Any, key: Any, path: str) -> Iterator[Slot]:
    """A string, or a list of parts whose text parts count (OpenAI's and Anthropic's)."""
    value = container[key]
    if isinstance(value, str):
        yield Slot(container, key, path)
    elif isinstance(value, list):
        for i, part in enumerate(value):
            if isinstance(part, str):
                yield Slot(value, i, f"{path}[{i}]")
            elif isinstance(part, dict):
                yield from _block(part, f"{path}[{i}]")


def _block(part: dict[str, Any], path: str) -> Iterator[Slot]:
    kind = part.get("type")
    if kind in ("text", "input_text", "output_text") and isinstance(part.get("text"), str):
        yield Slot(part, "text", f"{path}.text")
    elif kind == "tool_use" and "input" in part:
        yield from _values(part, "input", f"{path}.input")
    elif kind == "tool_result" and "content" in part:
        yield from _parts(part, "content", f"{path}.content")


def _values(container: Any, key: Any, path: str) -> Iterator[Slot]:
    """Every string inside a JSON value (a tool call's input object)."""
    value = container[key]
    if isinstance(value, str):
        yield Slot(container, key, path)
    elif isinstance(value, dict):
        for k in value:
            yield from _values(value, k, f"{path}.{k}")
    elif isinstance(value, list):
        for i in range(len(value)):
            yield from _values(value, i, f"{path}[{i}]")


def _tool_calls(message: dict[str, Any], path: str) -> Iterator[Slot]:
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                yield Slot(function, "arguments", f"{path}.tool_calls[{j}].function.arguments")


def _messages(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    messages = doc.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict):
                yield f"messages[{i}]", message


def request_slots(endpoint: Endpoint, doc: Any) -> Iterator[Slot]:
    if not isinstance(doc, dict):
        return
    if endpoint is Endpoint.CHAT:
        for path, message in _messages(doc):
            if "content" in message:
                yield from _parts(message, "content", f"{path}.content")
            yield from _tool_calls(message, path)
    elif endpoint is Endpoint.COMPLETIONS or endpoint is Endpoint.EMBEDDINGS:
        field = "prompt" if endpoint is Endpoint.COMPLETIONS else "input"
        if field in doc:
            yield from _parts(doc, field, field)
    elif endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS):
        if "system" in doc:
            yield from _parts(doc, "system", "system")
        for path, message in _messages(doc):
            if "content" in message:
                yield from _parts(message, "content", f"{path}.content")


def response_slots(endpoint: Endpoint, doc: Any) -> Iterator[Slot]:
    if not isinstance(doc, dict):
        return
    if endpoint is Endpoint.MESSAGES:
        if isinstance(doc.get("content"), list):
            yield from _parts(doc, "content", "content")
        return
    choices = doc.get("choices")
    if not isinstance(choices, list):
        return
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        if endpoint is Endpoint.COMPLETIONS:
            if isinstance(choice.get("text"), str):
                yield Slot(choice, "text", f"choices[{i}].text")
            continue
        message = choice.get("message")
        if isinstance(message, dict):
            if "content" in message and message["content"] is not None:
                yield from _parts(message, "content", f"choices[{i}].message.content")
            yield from _tool_calls(message, f"choices[{i}].message")


# --- a narrow, typed read of an answer's texts: the cost of a clean answer -------------------


class _Function(msgspec.Struct):
    arguments: str | None = None


class _Call(msgspec.Struct):
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | list[msgspec.Raw] | None = None
    tool_calls: list[_Call] | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    text: str | None = None


class _Block(msgspec.Struct):
    text: str | None = None
    input: msgspec.Raw | None = None


class _Answer(msgspec.Struct):
    choices: list[_Choice] | None = None
    content: list[_Block] | None = None


_ANSWER = msgspec.json.Decoder(_Answer)


def answer_texts(body: bytes) -> list[str | bytes] | None:
    """The texts of a chat, completion or messages answer (tool inputs as their JSON bytes);
    None when the body is not one of those shapes (then it is read whole)."""
    try:
        answer = _ANSWER.decode(body)
    except msgspec.MsgspecError:
        return None
    texts: list[str | bytes] = []
    for choice in answer.choices or ():
        if choice.text:
            texts.append(choice.text)
        message = choice.message
        if message is None:
            continue
        if isinstance(message.content, str):
            texts.append(message.content)
        elif message.content:
            return None  # content parts: rare in answers, read whole
        for call in message.tool_calls or ():
            if call.function is not None and call.function.arguments:
                texts.append(call.function.arguments)
    for block in answer.content or ():
        if block.text:
            texts.append(block.text)
        if block.input is not None:
            texts.append(bytes(block.input))
    return texts
