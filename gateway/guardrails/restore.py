"""Reversible masking (`restore: true`): the provider sees placeholders, the caller gets its
own values back in the answer, whole or streamed (a placeholder split across chunks is held
until its closing bracket, at most MAX_TOKEN characters)."""

from __future__ import annotations

import re
from collections.abc import Mapping

MAX_TOKEN = 40  # "[AWS_SECRET_KEY_123]" and the like; a longer bracket is not a placeholder


class Restorer:
    __slots__ = ("_pattern", "_values")

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)  # placeholder -> the value it replaced
        alternatives = sorted(self._values, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(t) for t in alternatives))

    def text(self, text: str) -> str:
        if "[" not in text:
            return text
        return self._pattern.sub(lambda m: self._values[m.group()], text)

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self)


class StreamRestorer:
    __slots__ = ("_held", "_restorer")

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._held = ""

    def feed(self, text: str) -> str:
        text = self._held + text
        self._held = ""
        open_at = text.rfind("[")
        if open_at >= 0 and "]" not in text[open_at:] and len(text) - open_at < MAX_TOKEN:
            text, self._held = text[:open_at], text[open_at:]
        return self._restorer.text(text)

    def finish(self) -> str:
        text, self._held = self._held, ""
        return self._restorer.text(text)


def restorer_for(numbering: Mapping[tuple[str, str], str]) -> Restorer | None:
    values = {token: value for (_, value), token in numbering.items()}
    return Restorer(values) if values else None
