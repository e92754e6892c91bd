"""The output side: a whole answer masked in place or withheld, and streams guarded through a
hold-back window per text (stream.py), in OpenAI's chunks and in Anthropic's events.

A block keeps the answer's shape and usage: OpenAI's `finish_reason: "content_filter"` with the
content withheld (Azure's semantics), Anthropic's `stop_reason: "refusal"`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from gateway.guardrails.detector import Numbering, mask
from gateway.guardrails.policy import Guardrail
from gateway.guardrails.report import Report
from gateway.guardrails.restore import Restorer, StreamRestorer
from gateway.guardrails.stream import HoldBack
from gateway.guardrails.texts import answer_texts, decode, encode, response_slots
from gateway.providers.base import Endpoint

_CITATION = re.compile(r"https?://[A-Za-z0-9]|\[\^?\d{1,3}\]|\[[^\]\n]{1,80}\]\(")


def has_citation(texts: Sequence[str], doc: Any = None) -> bool:
    if any(_CITATION.search(t) for t in texts):
        return True
    return doc is not None and _native_citations(doc)


def _native_citations(doc: Any) -> bool:
    if not isinstance(doc, dict):
        return False
    for choice in doc.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and message.get("annotations"):
            return True
    for block in doc.get("content") or ():
        if isinstance(block, dict) and block.get("citations"):
            return True
    return False


def withhold(endpoint: Endpoint, doc: Any) -> None:
    if not isinstance(doc, dict):
        return
    if endpoint is Endpoint.MESSAGES:
        doc["content"] = []
        doc["stop_reason"] = "refusal"
        return
    for choice in doc.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        choice["finish_reason"] = "content_filter"
        if endpoint is Endpoint.COMPLETIONS:
            choice["text"] = ""
        elif isinstance(choice.get("message"), dict):
            message = choice["message"]
            message["content"] = ""
            message.pop("tool_calls", None)
            message.pop("function_call", None)


def guard_body(
    endpoint: Endpoint,
    body: bytes,
    guardrails: Sequence[Guardrail],
    numbering: Numbering,
    report: Report,
    restorer: Restorer | None = None,
) -> bytes:
    doc: Any = None
    changed = False
    texts = answer_texts(body) if guardrails else None
    for g in guardrails:
        if g.scans and _may_find(g, body, texts):
            if doc is None:
                doc = decode(body)
            outcome = _scan(endpoint, doc, g, numbering, report)
            if outcome == "block":
                withhold(endpoint, doc)
                return encode(doc)
            changed = changed or outcome == "mask"
        if g.require_citation:
            if doc is None:
                doc = decode(body)
            said = [s.text for s in response_slots(endpoint, doc)]
            if said and not has_citation(said, doc):
                action = "block" if g.citation_action == "block" else "flag"
                report.add(g, "citation", action, "output")
                if action == "block" and g.mode == "enforce":
                    withhold(endpoint, doc)
                    return encode(doc)
    if restorer is not None and body.find(b"[") >= 0:
        if doc is None:
            doc = decode(body)
        changed = _restore(endpoint, doc, restorer) or changed
    return encode(doc) if changed else body


def _restore(endpoint: Endpoint, doc: Any, restorer: Restorer) -> bool:
    changed = False
    for slot in list(response_slots(endpoint, doc)):
        restored = restorer.text(slot.text)
        if restored != slot.text:
            slot.text = restored
            changed = True
    return changed


def _may_find(g: Guardrail, body: bytes, texts: list[str | bytes] | None) -> bool:
    """Whether the answer needs reading whole: a text with a finding (or a body of an
    unknown shape). The JSON around the texts (ids, timestamps) is never scanned."""
    if texts is None:
        return g.detector.quick(body)
    detector = g.detector
    for text in texts:
        if detector.quick(text) if isinstance(text, bytes) else detector.find(text):
            return True
    return False


def _scan(endpoint: Endpoint, doc: Any, g: Guardrail, numbering: Numbering, report: Report) -> str:
    outcome = "pass"
    for slot in list(response_slots(endpoint, doc)):
        text = slot.text
        blocking, spans = g.decide(g.detector.find(text), text, "output", report, slot.path)
        if blocking is not None:
            return "block"
        if spans:
            slot.text = mask(text, spans, numbering)
            outcome = "mask"
    return outcome


# --- streams ---------------------------------------------------------------------------------


class _StreamGuard:
    """Frames in, frames out: split on blank lines, texts fed to their hold-backs."""

    def __init__(  # noqa: PLR0913 - what guards one answer
        self,
        guardrails: Sequence[Guardrail],
        numbering: Numbering,
        report: Report,
        window: int,
        restorer: Restorer | None = None,
    ) -> None:
        self._restorer = restorer
        self._restores: dict[tuple[int, ...], StreamRestorer] = {}
        self._guardrails = [g for g in guardrails if g.scans]
        self._citing = [g for g in guardrails if g.require_citation]
        self._numbering = numbering
        self._report = report
        self._window = window
        self._holds: dict[tuple[int, ...], HoldBack] = {}
        self._seen: list[str] = []  # the answer's text, only when a citation is required
        self._blocked = False

    def _stopped(self) -> bool:
        """Whether a guardrail ended the answer (a call, since every feed may change it)."""
        return self._blocked

    def _hold(self, key: tuple[int, ...]) -> HoldBack:
        hold = self._holds.get(key)
        if hold is None:
            hold = self._holds[key] = HoldBack(
                self._guardrails, self._numbering, self._report, self._window
            )
        return hold

    def _text(self, key: tuple[int, ...], text: str) -> str:
        if self._citing:
            self._seen.append(text)
        out = text
        if self._guardrails:
            hold = self._hold(key)
            out = hold.feed(text)
            if hold.blocked is not None:
                self._blocked = True
                return ""
        return self._restored(key, out, final=False)

    def _flush(self, key: tuple[int, ...]) -> str:
        out = ""
        hold = self._holds.get(key)
        if hold is not None:
            out = hold.finish()
            if hold.blocked is not None:
                self._blocked = True
                return ""
        return self._restored(key, out, final=True)

    def _keys(self) -> set[tuple[int, ...]]:
        return set(self._holds) | set(self._restores)

    def _restored(self, key: tuple[int, ...], text: str, final: bool) -> str:
        if self._restorer is None:
            return text
        restore = self._restores.get(key)
        if restore is None:
            restore = self._restores[key] = self._restorer.stream()
        out = restore.feed(text) if text else ""
        return out + restore.finish() if final else out

    def _check_citation(self) -> None:
        if self._citing and not has_citation(["".join(self._seen)]):
            for g in self._citing:
                self._report.add(g, "citation", "flag", "output")

    async def convert(self, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        buffer = b""
        try:
            async for batch in events:
                frames = (buffer + batch).split(b"\n\n")
                buffer = frames.pop()
                out: list[bytes] = []
                for frame in frames:
                    out.extend(self.frame(frame))
                if out:
                    yield b"".join(f + b"\n\n" for f in out)
            if buffer.strip():
                yield b"".join(f + b"\n\n" for f in self.frame(buffer))
        finally:
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()

    def frame(self, frame: bytes) -> list[bytes]:
        raise NotImplementedError


class OpenAIStream(_StreamGuard):
    """chat.completion.chunk and text_completion frames (`data: {...}`, then `data: [DONE]`)."""

    def __init__(self, endpoint: Endpoint, *args: Any) -> None:
        super().__init__(*args)
        self._field = "text" if endpoint is Endpoint.COMPLETIONS else "content"
        self._skeleton: dict[str, Any] | None = None
        self._finished: set[int] = set()
        self._last_index = 0

    def frame(self, frame: bytes) -> list[bytes]:
        if not frame.startswith(b"data: "):
            return [frame]
        payload = frame[6:]
        if payload.strip() == b"[DONE]":
            return self._done(frame)
        if not self._guardrails and not self._citing and self._restorer is None:
            return [frame]
        chunk = decode(payload)
        return self._chunk(chunk, frame) if isinstance(chunk, dict) else [frame]

    def _done(self, frame: bytes) -> list[bytes]:
        was_blocked = self._stopped()
        out = self._flush_all()
        if self._stopped() and not was_blocked:
            out.append(self._filtered(self._last_index))
        self._check_citation()
        return [*out, frame]

    def _chunk(self, chunk: dict[str, Any], frame: bytes) -> list[bytes]:
        if self._skeleton is None:
            self._skeleton = {
                k: chunk[k] for k in ("id", "object", "created", "model") if k in chunk
            }
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            return [frame]  # the usage chunk
        if self._stopped():
            return []
        out: list[bytes] = []
        keep: list[Any] = []
        for choice in choices:
            piece = self._choice(choice, out)
            if self._stopped():
                out.append(self._filtered(choice.get("index", 0)))
                return out
            if piece:
                keep.append(choice)
        if keep:
            chunk["choices"] = keep
            out.append(b"data: " + encode(chunk))
        return out

    def _choice(self, choice: Any, out: list[bytes]) -> bool:
        """Feeds one choice's texts; False when nothing is left to send of it."""
        if not isinstance(choice, dict):
            return True
        index = choice.get("index", 0)
        field = self._field
        holder = choice if field == "text" else choice.get("delta")
        meaningful = False
        if isinstance(holder, dict):
            text = holder.get(field)
            if isinstance(text, str) and text:
                holder[field] = released = self._text((index, -1), text)
                meaningful = bool(released)
            calls = holder.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    function = call.get("function") if isinstance(call, dict) else None
                    args = function.get("arguments") if isinstance(function, dict) else None
                    if isinstance(function, dict) and isinstance(args, str) and args:
                        function["arguments"] = self._text((index, call.get("index", 0)), args)
                meaningful = True  # ids and names go out as they come
            if field == "content" and any(
                k not in ("content",) for k in holder if holder[k] is not None
            ):
                meaningful = True  # the role, a refusal, reasoning
        if choice.get("finish_reason") is not None:
            out.extend(self._flush_choice(index))
            if self._stopped():
                return False
            meaningful = True
        return meaningful or bool(choice.get("logprobs"))

    def _flush_choice(self, index: int) -> list[bytes]:
        out: list[bytes] = []
        for key in sorted(k for k in self._keys() if k[0] == index):
            rest = self._flush(key)
            if self._stopped():
                self._last_index = index
                return []
            if rest:
                out.append(self._piece(key, rest))
        self._finished.add(index)
        return out

    def _flush_all(self) -> list[bytes]:
        if self._stopped():
            return []
        out: list[bytes] = []
        for index in sorted({k[0] for k in self._keys()} - self._finished):
            out.extend(self._flush_choice(index))
            if self._stopped():
                return out
        return out

    def _piece(self, key: tuple[int, ...], text: str) -> bytes:
        index, call = key
        if self._field == "text":
            choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": None}
        elif call < 0:
            choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
        else:
            delta = {"tool_calls": [{"index": call, "function": {"arguments": text}}]}
            choice = {"index": index, "delta": delta, "finish_reason": None}
        return b"data: " + encode({**(self._skeleton or {}), "choices": [choice]})

    def _filtered(self, index: int) -> bytes:
        if self._field == "text":
            choice: dict[str, Any] = {"index": index, "text": "", "finish_reason": "content_filter"}
        else:
            choice = {"index": index, "delta": {}, "finish_reason": "content_filter"}
        return b"data: " + encode({**(self._skeleton or {}), "choices": [choice]})


class AnthropicStream(_StreamGuard):
    """/v1/messages events: text_delta and input_json_delta per content block."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._open: set[int] = set()
        self._kinds: dict[int, str] = {}  # block index -> "text" or "partial_json"

    def frame(self, frame: bytes) -> list[bytes]:
        data_at = frame.find(b"data: ")
        if data_at < 0:
            return [frame]
        event = decode(frame[data_at + 6 :])
        kind = event.get("type") if isinstance(event, dict) else None
        if self._stopped():
            if kind == "message_delta":
                event.setdefault("delta", {})["stop_reason"] = "refusal"
                return [_event("message_delta", event)]
            return [frame] if kind in ("message_stop", "ping", "error") else []
        if kind == "content_block_start":
            self._open.add(int(event.get("index", 0)))
            return [frame]
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_stop":
            index = int(event.get("index", 0))
            rest = self._flush((index,))
            if self._stopped():
                return self._refuse()
            self._open.discard(index)
            out = [self._delta_frame(index, rest)] if rest else []
            return [*out, frame]
        if kind == "message_delta":
            self._check_citation()
        return [frame]

    def _delta(self, event: dict[str, Any]) -> list[bytes]:
        index = int(event.get("index", 0))
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return [_event("content_block_delta", event)]
        field = "text" if delta.get("type") == "text_delta" else "partial_json"
        text = delta.get(field)
        if not isinstance(text, str):
            return [_event("content_block_delta", event)]
        released = self._text((index,), text)
        if self._stopped():
            return self._refuse()
        self._kinds[index] = field
        if not released:
            return []
        delta[field] = released
        return [_event("content_block_delta", event)]

    def _delta_frame(self, index: int, text: str) -> bytes:
        field = self._kinds.get(index, "text")
        delta = {"type": "text_delta" if field == "text" else "input_json_delta", field: text}
        return _event(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def _refuse(self) -> list[bytes]:
        out = [
            _event("content_block_stop", {"type": "content_block_stop", "index": i})
            for i in sorted(self._open)
        ]
        self._open.clear()
        return out


def _event(name: str, data: Any) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + encode(data)
