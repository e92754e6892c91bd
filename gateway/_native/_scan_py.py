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
    # The same pattern with its class-led run bounded, for `re` (whose backtracking would be
    # quadratic on a long run); a validator trims the other engines' matches to the same bound.
    bounded: str | None = None


_DIGIT = "\\d"  # a trigger meaning "a digit somewhere"
_DIGITS = "\\d\\d\\d"  # a trigger meaning "three digits in a row somewhere"
_HAS_DIGIT = re.compile(r"\d")
_HAS_DIGITS = re.compile(r"\d\d\d")


class Engine:
    __slots__ = ("_patterns",)

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        self._patterns = [
            (
                re.compile(p.bounded or p.source, re.ASCII | (re.IGNORECASE if p.caseless else 0)),
                p.triggers,
                p.caseless,
            )
            for p in patterns
        ]

    def any(self, data: bytes) -> bool:
        # The patterns are ASCII: any undecodable byte stands for a character none matches.
        text = data.decode("utf-8", "replace")
        lowered = text.lower()
        digits = _digits(text)
        for compiled, triggers, caseless in self._patterns:
            if triggers and not _triggered(text, lowered, triggers, caseless, digits):
                continue
            if compiled.search(text) is not None:
                return True
        return False

    def candidates(self, text: str) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        lowered = text.lower()
        digits = _digits(text)
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


def _digits(text: str) -> int:
    """2: three digits in a row somewhere; 1: a digit; 0: none."""
    if _HAS_DIGITS.search(text) is not None:
        return 2
    return 1 if _HAS_DIGIT.search(text) is not None else 0


def _triggered(
    text: str, lowered: str, triggers: tuple[str, ...], caseless: bool, digits: int
) -> bool:
    haystack = lowered if caseless else text
    for trigger in triggers:
        if trigger == _DIGIT:
            if digits:
                return True
        elif trigger == _DIGITS:
            if digits == 2:
                return True
        elif trigger in haystack:
            return True
    return False


# Each built-in kind's necessary condition (kinds.py): none of these, no kind can match.
_MAYBE = re.compile(
    r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]|\+\d|\d\d\d|\d[ .-]\d\d|[A-Z][A-Z]\d\d|\d\.\d"
    r"|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:|::[0-9A-Fa-f]|\d [A-Z0-9]|[A-Z0-9]{20}|[A-Za-z0-9/+]{40}"
    r"|gh[pousr]_|github_pat_|sk-|eyJ|-----BEGIN "
)


def maybe(data: str | bytes) -> bool:
    """False: no built-in kind can match anywhere in `data` (str or UTF-8 bytes)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return _MAYBE.search(text) is not None


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
