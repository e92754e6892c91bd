"""What routing may ask about a request, worked out only when asked.

Conditional queries read `signals.*` (routing/conditions.py), the ranked modes read the same
signals (routing/smart.py), and every configured route checks each target against what the
request needs (a context window, tools, images, a JSON schema). The body is decoded once per
request, and the costly signals (the exact token count, the complexity score) are computed
on first use and kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from gateway.api.requests import ChatView
from gateway.metering.tokens import count_request
from gateway.routing.complexity import score

_BODY = msgspec.json.Decoder(dict[str, Any])
_PART = msgspec.json.Decoder()
_IMAGE_PARTS = frozenset({"image_url", "image", "input_image"})
_TEXT_PARTS = frozenset({"text", "input_text"})
_COMPUTED = ("prompt_tokens", "complexity")


def fits_by_size(size: int, max_tokens: int | None, window: int) -> bool:
    """Whether a body of `size` bytes and the reply it asks room for surely fit `window`
    tokens: the body's size bounds its token count (every token covers at least one byte of
    it, and the JSON around each message outweighs OpenAI's per-message overhead), images
    aside (billed by tiles)."""
    return size + (max_tokens or 0) <= window


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS
        )
    return ""


def _parts(content: list[msgspec.Raw]) -> list[Any]:
    """A message's content parts, decoded (the view keeps them raw)."""
    return [_PART.decode(part) for part in content]


def _has_images(messages: list[Any]) -> bool:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") in _IMAGE_PARTS for part in content
        ):
            return True
    return False


class Signals(Mapping[str, Any]):
    """A request's signals: `prompt_tokens` (counted exactly for OpenAI models), `complexity`
    (routing/complexity.py), `max_tokens`, `turns` (user turns), `has_tools`, `has_images`,
    `json_schema` and `stream`. A chat request's are read from its typed view (no second
    decode of the body); other bodies are decoded once, generically."""

    __slots__ = ("_known", "_model", "_raw", "last_user")

    def __init__(self, raw: bytes, params: Mapping[str, Any], stream: bool) -> None:
        self._raw = raw
        self._model = str(params.get("model", ""))
        messages = params.get("messages")
        messages = messages if isinstance(messages, list) else []
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        self.last_user = _text(users[-1].get("content")) if users else _text(params.get("prompt"))
        fmt = params.get("response_format")
        max_tokens = next(
            (params[k] for k in ("max_completion_tokens", "max_tokens") if k in params), None
        )
        self._known: dict[str, Any] = {
            "max_tokens": max_tokens if isinstance(max_tokens, int) else None,
            "turns": len(users),
            "has_tools": bool(params.get("tools")),
            "has_images": _has_images(messages),
            "json_schema": isinstance(fmt, dict) and fmt.get("type") == "json_schema",
            "stream": stream,
        }

    @classmethod
    def of(cls, raw: bytes, stream: bool, view: Any = None) -> Signals:
        """The signals of a request: from its chat view when it has one, else its body."""
        if isinstance(view, ChatView):
            return cls._of_chat(raw, view, stream)
        try:
            params = _BODY.decode(raw)
        except msgspec.MsgspecError:
            params = {}
        return cls(raw, params, stream)

    @classmethod
    def _of_chat(cls, raw: bytes, view: ChatView, stream: bool) -> Signals:
        signals = cls.__new__(cls)
        signals._raw = raw
        signals._model = view.model
        users = [m for m in view.messages if m.role == "user"]
        last = users[-1].content if users else None
        signals.last_user = _text(_parts(last) if isinstance(last, list) else last)
        # The byte search rules most requests out at once.
        images = raw.find(b"image") >= 0 and _has_images(
            [{"content": _parts(m.content)} for m in view.messages if isinstance(m.content, list)]
        )
        fmt = view.response_format
        signals._known = {
            "max_tokens": view.max_completion_tokens or view.max_tokens,
            "turns": len(users),
            "has_tools": bool(view.tools),
            "has_images": images,
            "json_schema": isinstance(fmt, dict) and fmt.get("type") == "json_schema",
            "stream": stream,
        }
        return signals

    def __getitem__(self, name: str) -> Any:
        known = self._known
        if name not in known:
            if name == "prompt_tokens":
                known[name] = count_request(self._raw, self._model)[0]
            elif name == "complexity":
                known[name] = score(
                    self.last_user, turns=known["turns"], tools=known["has_tools"],
                    max_tokens=known["max_tokens"], structured=known["json_schema"],
                )  # fmt: skip
            else:
                raise KeyError(name)
        return known[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._known, *(n for n in _COMPUTED if n not in self._known)])

    def __len__(self) -> int:
        return len(self._known) + sum(n not in self._known for n in _COMPUTED)

    def within(self, window: int) -> bool:
        """Whether the prompt and the reply it asks room for fit `window` tokens; the exact
        count is only made for bodies near the limit, or with images (fits_by_size)."""
        max_tokens = self._known["max_tokens"]
        if not self._known["has_images"] and fits_by_size(len(self._raw), max_tokens, window):
            return True
        return bool(self["prompt_tokens"] <= window - (max_tokens or 0))

    def lacks(self, supports: frozenset[str]) -> str | None:
        """What the request needs that a target without `supports` lacks, if anything."""
        known = self._known
        if known["has_tools"] and "tools" not in supports:
            return "tools"
        if known["has_images"] and "vision" not in supports:
            return "vision"
        if known["json_schema"] and "json_schema" not in supports:
            return "json_schema"
        return None


class Params(Mapping[str, Any]):
    """The body's top-level fields, for `params.*` conditions: decoded on first read."""

    __slots__ = ("_fields", "_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._fields: dict[str, Any] | None = None

    def _decoded(self) -> dict[str, Any]:
        if self._fields is None:
            try:
                self._fields = _BODY.decode(self._raw)
            except msgspec.MsgspecError:
                self._fields = {}
        return self._fields

    def __getitem__(self, name: str) -> Any:
        return self._decoded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())
