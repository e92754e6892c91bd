"""The folded form of a text, for topic matching: NFKC (fullwidth and styled letters become
plain ones) and common leetspeak (0→o, 1→i, 3→e, 4→a, 5→s, 7→t, @→a, $→s), with each folded
character's origin in the text so a finding's span maps back."""

from __future__ import annotations

import unicodedata

_LEET = str.maketrans("013457@$", "oieasta" + "s")
_LEET_CHARS = frozenset("013457@$")


def needs_folding(text: str) -> bool:
    """Whether folding could change what matches: non-ASCII, or a leet character in a word."""
    if not text.isascii():
        return True
    return any(ch in _LEET_CHARS for ch in text)


def fold(text: str) -> tuple[str, list[int]]:
    pieces: list[str] = []
    origin: list[int] = []
    ascii_text = text.isascii()
    for i, ch in enumerate(text):
        out = ch if ascii_text or ch.isascii() else unicodedata.normalize("NFKC", ch)
        pieces.append(out)
        origin.extend([i] * len(out))
    return "".join(pieces).translate(_LEET), origin
