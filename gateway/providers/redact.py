"""Keeps provider keys out of messages a client or a log may see."""

from __future__ import annotations

import re

_KEY_LIKE = re.compile(r"\b(?:(?:sk|gsk|xai|pk)-[A-Za-z0-9*_\-]{6,}|AIza[0-9A-Za-z_\-]{30,})")


def redact(text: str, secret: str | None) -> str:
    if secret:
        text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)
