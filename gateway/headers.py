"""Header lines that are safe to write, for both HTTP hops."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from urllib.parse import quote

LOG = logging.getLogger("gateway.server")

# What a header value may hold as it is: printable ASCII. Anything else (CR and LF above all,
# which would let a client-chosen string end the head and forge headers or a whole response) is
# percent-encoded; a name that is not a token is dropped.
_VALUE_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_lines(headers: Mapping[str, str]) -> str:
    """Header lines for a message head, every value made safe to write. Both hops build their
    heads here, so nothing that reaches a header (a model name, an upstream's value) is written
    raw. The check is one C loop over the joined values (names are the gateway's own, checked
    on the slow path); only a bad value costs more."""
    joined = "".join(headers.values())
    if joined.isascii() and joined.isprintable():
        return "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    lines = []
    for name, value in headers.items():
        if not name or not _TOKEN.issuperset(name):
            LOG.warning("dropped a header with an invalid name: %r", name[:64])
            continue
        if not (value.isascii() and value.isprintable()):
            value = quote(value, safe=_VALUE_SAFE)
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)
