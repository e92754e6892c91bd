"""The guardrails' scanner on google-re2, for platforms without a hyperscan wheel: a `Set`
answers which patterns match anywhere, then each of those gives its spans. Same API and the
same findings as _scan_c (tests/test_guardrails.py runs all three); RE2's matches are
leftmost-first, as Python's `re` is, and the patterns are built so that this is the longest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import re2

from gateway._native._scan_py import Pattern

BACKEND = "re2"


def _source(p: Pattern) -> str:
    return f"(?i:{p.source})" if p.caseless else p.source


class Engine:
    __slots__ = ("_each", "_set")

    def __init__(self, patterns: Sequence[Pattern]) -> None:
        options = re2.Options()
        options.max_mem = 64 << 20
        self._set: Any = None
        if patterns:
            self._set = re2.Set.SearchSet(options)
            for p in patterns:
                self._set.Add(_source(p))
            self._set.Compile()
        self._each = [re2.compile(_source(p), options) for p in patterns]

    def any(self, data: bytes) -> bool:
        return self._set is not None and self._set.Match(data) is not None

    def candidates(self, text: str) -> list[tuple[int, int, int]]:
        if self._set is None:
            return []
        hit = self._set.Match(text)
        if not hit:
            return []
        found: list[tuple[int, int, int]] = []
        for ident in hit:
            for match in self._each[ident].finditer(text):
                start, end = match.span()
                if end > start:
                    found.append((ident, start, end))
        found.sort(key=lambda item: (item[1], item[0], item[2]))
        return found
