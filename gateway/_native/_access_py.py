"""Access-log lines, formatted a batch at a time on the log's writer thread; _access_c is the
compiled twin and must write exactly the same bytes.

An entry is `(time, message)` for a line already made safe, or a request's fields:
`(time, request_id, endpoint, model, provider, status, ms, prompt_tokens, completion_tokens,
stream_error)`. Client strings (the request id, the model) go through `escape`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any


def escape(value: str) -> str:
    """A log-safe rendering of a client string: as it is when it is printable ASCII with no
    space, quote, backslash or `=`; else a JSON string literal with everything escaped, so a
    newline cannot forge a line nor a space a field."""
    if (
        value.isascii()
        and value.isprintable()
        and " " not in value
        and '"' not in value
        and "\\" not in value
        and "=" not in value
    ):
        return value
    return json.dumps(value, ensure_ascii=True)


class Stamp:
    """`2026-12-02 13:44:01,123 INFO gateway.access[42]: `, the second's part formatted once."""

    __slots__ = ("_prefix", "_second", "_stamps", "_tail")

    def __init__(self, logger: str = "gateway.access") -> None:
        self._second = -1
        self._prefix = ""
        self._tail = f" INFO {logger}[{os.getpid()}]: "
        self._stamps: list[str] = []  # the second's 1,000 millisecond stamps, made as needed

    def __call__(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            self._stamps = [""] * 1000
        ms = int((now - second) * 1000)
        stamp = self._stamps[ms]
        if not stamp:
            stamp = self._stamps[ms] = f"{self._prefix},{ms:03d}{self._tail}"
        return stamp


def format_batch(entries: Sequence[tuple[Any, ...]], stamp: Stamp) -> bytes:
    lines = []
    for entry in entries:
        if len(entry) == 2:
            lines.append(f"{stamp(entry[0])}{entry[1]}\n")
            continue
        at, rid, endpoint, model, provider, status, ms, prompt, completion, failed = entry
        shown = escape(model) if model is not None else "-"
        lines.append(
            f"{stamp(at)}{escape(rid)} {endpoint} model={shown} provider={provider}"
            f" status={status} ms={ms:.1f} tokens={prompt}/{completion}"
            f"{' stream_error' if failed else ''}\n"
        )
    return "".join(lines).encode("utf-8", "replace")
