"""Chat completions as Responses: a whole completion as a Response object, and a chunk stream
as the Responses API's typed events, numbered, in the order the SDKs' accumulators need:
response.created, in_progress, then per output item added → parts/deltas → done, and
response.completed (or .incomplete, or .failed after an `error` event)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from random import getrandbits
from typing import Any

import msgspec

from gateway.api.chat import CHUNK_DECODER, read_completion
from gateway.api.usage import Usage
from gateway.responses import wire

_ENCODER = msgspec.json.Encoder()
_ERROR = msgspec.json.Decoder(dict[str, Any])
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
# A chunk that only carries more text, as the gateway's translators write it (sse.chunk_frame):
# its text's JSON string sits between these, and is copied into the delta event as it is.
_TEXT_AT = b'"choices":[{"index":0,"delta":{"content":'
_TEXT_END = b'},"finish_reason":null,"logprobs":null}]}'
_STRING = msgspec.json.Decoder(str)


def new_id(prefix: str) -> str:
    """A response's or item's id. Not a secret (a stored response is read only by the caller
    that made it), so a fast generator: os.urandom costs a system call per id."""
    return f"{prefix}_{getrandbits(192):048x}"


def shell(request: wire.ResponsesRequest, rid: str, raw_tools: list[Any]) -> dict[str, Any]:
    """The fields of a Response that echo its request."""
    fmt: Any = {"type": "text"}
    if request.text is not None and request.text.format is not None:
        fmt = msgspec.to_builtins(request.text.format)
    reasoning = msgspec.to_builtins(request.reasoning) if request.reasoning else None
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": request.parallel_tool_calls is not False,
        "previous_response_id": request.previous_response_id,
        "reasoning": reasoning or {"effort": None, "summary": None},
        "store": request.store is not False,
        "temperature": request.temperature if request.temperature is not None else 1.0,
        "text": {"format": fmt},
        "tool_choice": request.tool_choice if request.tool_choice is not None else "auto",
        "tools": raw_tools,
        "top_p": request.top_p if request.top_p is not None else 1.0,
        "truncation": request.truncation or "disabled",
        "usage": None,
        "user": request.user,
        "metadata": request.metadata or {},
    }


def usage_of(usage: Usage | None) -> dict[str, Any]:
    usage = usage or Usage()
    details = usage.completion_tokens_details
    written = usage.prompt_tokens_details.cache_write_tokens if usage.prompt_tokens_details else 0
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": written,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {
            "reasoning_tokens": details.reasoning_tokens if details is not None else 0
        },
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _refusal_part(text: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": text}


def _message(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "id": item_id, "type": "message", "status": status, "role": "assistant", "content": parts,
    }  # fmt: skip


def _call(  # noqa: PLR0913 - the item's fields
    item_id: str, call_id: str, name: str, arguments: str, status: str, namespace: str | None = None
) -> dict[str, Any]:
    item = {
        "id": item_id, "type": "function_call", "status": status, "call_id": call_id,
        "name": name, "arguments": arguments,
    }  # fmt: skip
    if namespace is not None:
        item["namespace"] = namespace
    return item


def _reasoning(item_id: str, text: str) -> dict[str, Any]:
    return {"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": text}]}


def _finish(response: dict[str, Any], finish_reason: str | None) -> None:
    reason = _INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None


def to_response(body: bytes, response: dict[str, Any]) -> dict[str, Any]:
    """A whole chat completion's answer, in the response shell (filled in place)."""
    completion, choice = read_completion(body)
    message = choice.message
    output: list[dict[str, Any]] = []
    if message.reasoning_content:
        output.append(_reasoning(new_id("rs"), message.reasoning_content))
    parts = [_text_part(message.content)] if message.content else []
    if message.refusal:
        parts.append(_refusal_part(message.refusal))
    if parts:
        output.append(_message(new_id("msg"), parts, "completed"))
    names = wire.namespaced(response.get("tools"))
    for call in message.tool_calls or ():
        namespace, name = names.get(call.function.name, (None, call.function.name))
        output.append(
            _call(new_id("fc"), call.id, name, call.function.arguments, "completed", namespace)
        )
    response["output"] = output
    response["usage"] = usage_of(completion.usage)
    response["model"] = completion.model or response["model"]
    _finish(response, choice.finish_reason)
    return response


class _Open:
    """An output item being streamed."""

    __slots__ = ("call_id", "head", "id", "index", "kind", "name", "namespace", "tail", "text")

    def __init__(  # noqa: PLR0913 - a function call's fields
        self, kind: str, index: int, call_id: str = "", name: str = "", namespace: str | None = None
    ) -> None:
        self.kind = kind
        self.index = index
        self.id = new_id({"message": "msg", "refusal": "msg", "reasoning": "rs"}.get(kind, "fc"))
        self.call_id = call_id
        self.name = name
        self.namespace = namespace
        self.text: list[str] = []
        # Its delta events, written around the sequence number and the delta's JSON string
        # (the hot path of a translated stream: one event per chunk).
        event, where, self.tail = _DELTAS[kind]
        self.head = (
            b'event: %s\ndata: {"type":"%s","sequence_number":' % (event, event),
            b',"item_id":"%s","output_index":%d%s,"delta":' % (self.id.encode(), index, where),
        )

    def final(self) -> dict[str, Any]:
        """The item as the response's output and its `output_item.done` event give it."""
        text = "".join(self.text)
        if self.kind == "message":
            return _message(self.id, [_text_part(text)], "completed")
        if self.kind == "refusal":
            return _message(self.id, [_refusal_part(text)], "completed")
        if self.kind == "reasoning":
            return _reasoning(self.id, text)
        return _call(self.id, self.call_id, self.name, text, "completed", self.namespace)


_DELTAS = {
    "message": (b"response.output_text.delta", b',"content_index":0', b',"logprobs":[]}\n\n'),
    "refusal": (b"response.refusal.delta", b',"content_index":0', b"}\n\n"),
    "reasoning": (b"response.reasoning_summary_text.delta", b',"summary_index":0', b"}\n\n"),
    "function_call": (b"response.function_call_arguments.delta", b"", b"}\n\n"),
}


class EventWriter:
    """Chat chunk frames in, Responses events out. `done` gets the final response (once)."""

    def __init__(self, response: dict[str, Any], done: Callable[[dict[str, Any]], None]) -> None:
        self._response = response
        self._names = wire.namespaced(response.get("tools"))
        self._done = done
        self._seq = 0
        self._items: list[_Open] = []
        self._text: _Open | None = None
        self._refusal: _Open | None = None
        self._thought: _Open | None = None
        self._calls: dict[int, _Open] = {}
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._ended = False

    async def convert(self, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        yield b"".join(self._start())
        async with aclosing(frames):  # type: ignore[type-var]
            async for batch in frames:
                out: list[bytes] = []
                for frame in batch.split(b"\n\n"):
                    if frame.startswith(b"data: ") and not self._ended:
                        out.extend(self._on_data(frame[6:]))
                if out:
                    yield b"".join(out)
        if not self._ended:  # the stream stopped without its end: the client is told
            yield b"".join(self._fail("server_error", "The provider's stream ended early."))

    def _delta(self, item: _Open, text: str, literal: bytes | None = None) -> bytes:
        """A delta event; `literal`, when given, is `text` as a JSON string already."""
        item.text.append(text)
        seq = self._seq
        self._seq = seq + 1
        head, where = item.head
        return head + str(seq).encode() + where + (literal or _ENCODER.encode(text)) + item.tail

    def _more_text(self, payload: bytes) -> bytes | None:
        """The delta event of a chunk that only adds to the open message's text, without
        decoding the chunk (most of a stream is such chunks); None for any other chunk. The
        text is checked to be exactly one JSON string before its bytes are copied."""
        item = self._text
        if item is None or not payload.endswith(_TEXT_END):
            return None
        at = payload.find(_TEXT_AT)
        if at < 0 or b'"usage"' in payload[:at]:
            return None
        literal = payload[at + len(_TEXT_AT) : -len(_TEXT_END)]
        try:
            text = _STRING.decode(literal)
        except msgspec.MsgspecError:
            return None
        return self._delta(item, text, literal) if text else None

    def _event(self, kind: str, document: dict[str, Any]) -> bytes:
        document = {"type": kind, "sequence_number": self._seq, **document}
        self._seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _ENCODER.encode(document) + b"\n\n"

    def _start(self) -> list[bytes]:
        snapshot = dict(self._response)
        return [
            self._event("response.created", {"response": snapshot}),
            self._event("response.in_progress", {"response": snapshot}),
        ]

    def _on_data(self, payload: bytes) -> list[bytes]:
        fast = self._more_text(payload)
        if fast is not None:
            return [fast]
        if payload == b"[DONE]":
            return self._complete()
        if payload.startswith(b'{"error"'):
            try:
                detail = _ERROR.decode(payload).get("error") or {}
            except msgspec.MsgspecError:
                detail = {}
            code = detail.get("code")
            code = code if isinstance(code, str) else "server_error"
            return self._fail(code, str(detail.get("message") or "The provider's stream failed."))
        try:
            chunk = CHUNK_DECODER.decode(payload)
        except msgspec.MsgspecError:
            return []
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.model:
            self._response["model"] = chunk.model
        return self._choice(chunk.choices[0]) if chunk.choices else []

    def _choice(self, choice: Any) -> list[bytes]:
        out: list[bytes] = []
        delta = choice.delta
        if delta.reasoning_content:
            out += self._reason(delta.reasoning_content)
        if delta.content:
            out += self._say(delta.content)
        if delta.refusal:
            out += self._refuse(delta.refusal)
        for call in delta.tool_calls or ():
            out += self._tool(call.index, call.id, call.function)
        if choice.finish_reason:
            self._finish_reason = choice.finish_reason
        return out

    def _open(self, item: _Open, document: dict[str, Any]) -> bytes:
        self._items.append(item)
        return self._event("response.output_item.added", {"output_index": item.index,
                                                          "item": document})  # fmt: skip

    def _reason(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        item = self._thought
        if item is None:
            out += self._close_text()
            item = self._thought = _Open("reasoning", len(self._items))
            out.append(self._open(item, {"id": item.id, "type": "reasoning", "summary": []}))
            out.append(self._event("response.reasoning_summary_part.added", {
                "item_id": item.id, "output_index": item.index, "summary_index": 0,
                "part": {"type": "summary_text", "text": ""},
            }))  # fmt: skip
        out.append(self._delta(item, text))
        return out

    def _say(self, text: str) -> list[bytes]:
        item = self._text
        if item is not None:  # the common case: more of the open message
            return [self._delta(item, text)]
        out = self._close_thought()
        item = self._text = _Open("message", len(self._items))
        return out + self._start_part(item, _text_part("")) + [self._delta(item, text)]

    def _refuse(self, text: str) -> list[bytes]:
        """A refusal: a message of its own whose one part is the refusal's text."""
        item = self._refusal
        if item is not None:
            return [self._delta(item, text)]
        out = self._close_thought() + self._close_text()
        item = self._refusal = _Open("refusal", len(self._items))
        return out + self._start_part(item, _refusal_part("")) + [self._delta(item, text)]

    def _start_part(self, item: _Open, part: dict[str, Any]) -> list[bytes]:
        """A message opened with its one content part (text or refusal), empty so far."""
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        return [
            self._open(item, _message(item.id, [], "in_progress")),
            self._event("response.content_part.added", {**where, "part": part}),
        ]

    def _end_part(
        self, item: _Open, done: str, fields: dict[str, Any], part: dict[str, Any]
    ) -> list[bytes]:
        """A message's one part finished: its own done event, the part's, the item's."""
        where = {"item_id": item.id, "output_index": item.index, "content_index": 0}
        return [
            self._event(done, {**where, **fields}),
            self._event("response.content_part.done", {**where, "part": part}),
            self._done_event(item),
        ]

    def _close_refusal(self) -> list[bytes]:
        item, self._refusal = self._refusal, None
        if item is None:
            return []
        text = "".join(item.text)
        return self._end_part(item, "response.refusal.done", {"refusal": text}, _refusal_part(text))

    def _tool(self, index: int, call_id: str | None, function: Any) -> list[bytes]:
        out: list[bytes] = []
        item = self._calls.get(index)
        if item is None:
            out += self._close_thought() + self._close_text()
            name = function.name if function is not None and function.name else ""
            namespace, name = self._names.get(name, (None, name))
            call_id = call_id or new_id("call")
            item = _Open("function_call", len(self._items), call_id, name, namespace)
            self._calls[index] = item
            out.append(
                self._open(item, _call(item.id, item.call_id, name, "", "in_progress", namespace))
            )
        if function is not None and function.arguments:
            out.append(self._delta(item, function.arguments))
        return out

    def _close_thought(self) -> list[bytes]:
        item, self._thought = self._thought, None
        if item is None:
            return []
        text = "".join(item.text)
        part = {"type": "summary_text", "text": text}
        where = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
        return [
            self._event("response.reasoning_summary_text.done", {**where, "text": text}),
            self._event("response.reasoning_summary_part.done", {**where, "part": part}),
            self._done_event(item),
        ]

    def _close_text(self) -> list[bytes]:
        item, self._text = self._text, None
        if item is None:
            return []
        text = "".join(item.text)
        fields = {"text": text, "logprobs": []}
        return self._end_part(item, "response.output_text.done", fields, _text_part(text))

    def _close_calls(self) -> list[bytes]:
        out = []
        for item in self._calls.values():
            arguments = "".join(item.text)
            out.append(self._event("response.function_call_arguments.done", {
                "item_id": item.id, "output_index": item.index, "name": item.name,
                "arguments": arguments,
            }))  # fmt: skip
            out.append(self._done_event(item))
        self._calls = {}
        return out

    def _done_event(self, item: _Open) -> bytes:
        return self._event(
            "response.output_item.done", {"output_index": item.index, "item": item.final()}
        )

    def _output(self) -> list[dict[str, Any]]:
        return [item.final() for item in self._items]

    def _complete(self) -> list[bytes]:
        out = self._close_thought() + self._close_text() + self._close_refusal()
        out += self._close_calls()
        self._ended = True
        response = self._response
        response["output"] = self._output()
        response["usage"] = usage_of(self._usage)
        _finish(response, self._finish_reason)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        out.append(self._event(kind, {"response": response}))
        self._done(response)
        return out

    def _fail(self, code: str, message: str) -> list[bytes]:
        self._ended = True
        response = self._response
        response["status"] = "failed"
        response["error"] = {"code": code, "message": message}
        response["output"] = self._output()
        response["usage"] = usage_of(self._usage)
        return [
            self._event("error", {"code": code, "message": message, "param": None}),
            self._event("response.failed", {"response": response}),
        ]
