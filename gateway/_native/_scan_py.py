"""The guardrails' multi-pattern scanner: the typed specification of _scan_c, which must agree.

An `Engine` holds a fixed set of patterns (ASCII regexes that both Python's `re` and Hyperscan
accept: no look-around, no back-references, no `.` or negated classes, so bytes and characters
match alike). `any(data)` answers "does anything here match?" for UTF-8 bytes (a request or
response body as it came); `candidates(text)` gives, per pattern, its leftmost-longest
non-overlapping matches as character offsets. Which matches are real (checksums, context,
placeholders) is decided above this, in gateway/guardrails.

This twin runs one `re` per pattern, skipped when none of the pattern's trigger literals is in
the text (a leading literal keeps `re` on its fast literal search).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

BACKEND = "re"


class Pattern(NamedTuple):
    source: str  # ASCII regex
    triggers: tuple[str, ...] = ()  # one of these must occur (as given, or lowercased if caseless)
    caseless: bool = False


_DIGIT = "\\d"  # a trigger meaning "a digit somewhere"
_HAS_DIGIT = re.compile(r"\d")


class Engine:
    __slots__ = ("_bytes", "_patterns")

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self._patterns = [
            (
                re.compile(p.source, re.ASCII | (re.IGNORECASE if p.caseless else 0)),
                p.triggers,
                p.caseless,
            )
            for p in patterns
        ]
        self._bytes = [
            re.compile(p.source.encode(), re.IGNORECASE if p.caseless else 0) for p in patterns
        ]

    def any(self, data: bytes) -> bool:
        lowered = data.lower()
        digits = _HAS_DIGIT.search(data.decode("latin-1")) is not None
        for compiled, (_, triggers, caseless) in zip(self._bytes, self._patterns, strict=True):
            if triggers and not _triggered(data, lowered, triggers, caseless, digits):
                continue
            if compiled.search(data) is not None:
                return True
        return False

    def candidates(self, text: str) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        lowered = text.lower()
        digits = _HAS_DIGIT.search(text) is not None
        for ident, (compiled, triggers, caseless) in enumerate(self._patterns):
            if triggers and not _triggered(text, lowered, triggers, caseless, digits):
                continue
            for match in compiled.finditer(text):
                if match.end() > match.start():
                    found.append((ident, match.start(), match.end()))
        found.sort(key=_by_start)
        return found


def _by_start(item: tuple[int, int, int]) -> tuple[int, int, int]:
    return (item[1], item[0], item[2])


def _triggered(
    text: str | bytes, lowered: str | bytes, triggers: tuple[str, ...], caseless: bool, digits: bool
) -> bool:
    for trigger in triggers:
        if trigger == _DIGIT:
            if digits:
                return True
            continue
        if isinstance(text, bytes):
            needle: str | bytes = trigger.encode()
            haystack = lowered if caseless else text
        else:
            needle = trigger
            haystack = lowered if caseless else text
        if needle in haystack:  # type: ignore[operator]
            return True
    return False


def luhn(digits: str) -> bool:
    """The Luhn check over a string of ASCII digits."""
    total = 0
    parity = len(digits) % 2
    for i, ch in enumerate(digits):
        d = ord(ch) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97(iban: str) -> bool:
    """ISO 13616's check: the country code and check digits moved to the end, letters as
    10..35, the number modulo 97 is 1. `iban` is upper-case letters and digits only."""
    moved = iban[4:] + iban[:4]
    remainder = 0
    for ch in moved:
        value = ord(ch) - 48 if ch <= "9" else ord(ch) - 55
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1
