"""Images in OpenAI requests (data URLs or links), in the terms other providers want them."""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.errors import InvalidRequest

_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*?;base64,(?P<data>.*)$", re.S)
_EXTENSION_MIME = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
}


class InlineData(NamedTuple):
    mime_type: str
    data: str  # base64, as the client sent it


def inline_data(url: str, param: str) -> InlineData | None:
    """The base64 payload of a data URL, None for an http(s) link; anything else is a 400."""
    if url.startswith(("https://", "http://", "gs://")):
        return None
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidRequest(
            "Invalid image URL: expected an https URL or a base64 data URL.",
            param=param,
            code="invalid_image_url",
        )
    return InlineData(match["mime"], match["data"])


def mime_from_link(url: str) -> str | None:
    """The media type a link's file extension implies, for providers that require one."""
    path = url.split("?", 1)[0].rsplit("/", 1)[-1]
    _, dot, ext = path.rpartition(".")
    return _EXTENSION_MIME.get(ext.lower()) if dot else None
