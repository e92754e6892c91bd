"""A structural look at a JSON body before it is decoded: nesting depth and duplicate keys.

Two things a decoder does not refuse, and the gateway must: nesting deep enough to exhaust
every recursive decoder and encoder after it (a 2 KB body of brackets is a RecursionError),
and a top-level key given twice, which msgspec resolves to the last and a provider's parser
may resolve to the first, so the gateway would route and bill one model while the provider
serves another. `inspect` answers both in one pass. It does not validate the JSON: the decoder
does that next. _json_c is the compiled twin and must agree exactly.
"""

from __future__ import annotations

import json
import re

OK = 0
TOO_DEEP = 1
DUPLICATE_KEY = 2

_INTERESTING = re.compile(rb'["\[\]{},]')
_QUOTE = ord('"')
_COMMA = ord(",")
_BRACE = ord("{")
_OPEN = frozenset(b"[{")


def key_text(raw: bytes) -> str:
    """A key's text from its bytes between the quotes (escapes decoded)."""
    if b"\\" not in raw:
        return raw.decode("utf-8", "replace")
    try:
        value = json.loads(b'"' + raw + b'"')
    except ValueError:
        return raw.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _string_end(data: bytes, start: int) -> int:
    """Where the string whose text begins at `start` ends (its closing quote, or the end)."""
    n = len(data)
    i = start
    while True:
        quote = data.find(b'"', i)
        slash = data.find(b"\\", i, quote if quote >= 0 else n)
        if slash < 0:
            return quote if quote >= 0 else n
        i = slash + 2  # an escape: the byte after the backslash is never the end
        if i >= n:
            return n


def inspect(data: bytes, max_depth: int) -> tuple[int, str | None]:
    """(OK, None); (TOO_DEEP, the top-level key it happened under, or None); or
    (DUPLICATE_KEY, the key)."""
    depth = 0
    top_object = False
    key_next = False
    key: str | None = None
    seen: set[str] = set()
    search = _INTERESTING.search
    i = 0
    while (match := search(data, i)) is not None:
        at = match.start()
        first = data[at]
        i = at + 1
        if first == _QUOTE:
            end = _string_end(data, i)
            if depth == 1 and key_next:
                key_next = False
                key = key_text(data[i:end])
                if key in seen:
                    return DUPLICATE_KEY, key
                seen.add(key)
            i = end + 1
        elif first in _OPEN:
            depth += 1
            if depth > max_depth:
                return TOO_DEEP, key if top_object else None
            if depth == 1 and first == _BRACE:
                top_object = key_next = True
        elif first == _COMMA:
            if depth == 1 and top_object:
                key_next = True
        else:
            depth -= 1
    return OK, None
