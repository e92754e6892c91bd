"""Reusable codecs, and the patch that rewrites a few top-level fields of a raw JSON body."""

from collections.abc import Mapping
from typing import Final

import msgspec
from msgspec import Raw

ENCODER: Final = msgspec.json.Encoder()
_TOP_LEVEL: Final = msgspec.json.Decoder(dict[str, Raw])


class _Remove:
    __slots__ = ()


REMOVE: Final = _Remove()


def patch_fields(raw: bytes, changes: Mapping[str, object]) -> bytes:
    """Returns `raw` with top-level fields replaced (or removed with REMOVE).

    Every other field is copied through as bytes, so unknown client fields survive.
    """
    top = _TOP_LEVEL.decode(raw)
    for name, value in changes.items():
        if value is REMOVE:
            top.pop(name, None)
        else:
            top[name] = Raw(ENCODER.encode(value))
    return ENCODER.encode(top)
