"""The exact-cache key: a hash of the canonical request, inside the caller's partition.

Canonical means the body's JSON with sorted keys, the model replaced by the route it resolved
to, and the fields that cannot change the answer left out (streaming, tracing, user ids).
Everything else, every message, tool and sampling parameter, is in the hash.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import msgspec

_DECODE = msgspec.json.Decoder(dict[str, Any])
_ENCODE = msgspec.json.Encoder(order="sorted")
# Fields that shape delivery or bookkeeping, not the answer.
_IGNORED: Final = frozenset(
    ("model", "stream", "stream_options", "user", "metadata", "store", "service_tier")
)


def partition(caller_key: str | None, namespace: str | None, sub: str | None) -> str:
    """Whose entries these are: the operator's shared namespace, else the caller's own key
    (hashed; a key is never stored), plus a client-chosen sub-namespace."""
    owner = namespace or hashlib.sha256((caller_key or "").encode()).hexdigest()[:16]
    return f"{owner}/{sub}" if sub else owner


def cache_key(endpoint: str, route: str, raw: bytes) -> str:
    body = _DECODE.decode(raw)
    canonical = {k: v for k, v in body.items() if k not in _IGNORED}
    digest = hashlib.sha256()
    digest.update(endpoint.encode())
    digest.update(b"\0")
    digest.update(route.encode())
    digest.update(b"\0")
    digest.update(_ENCODE.encode(canonical))
    return digest.hexdigest()[:40]
