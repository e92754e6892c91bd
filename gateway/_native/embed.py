"""Picks the compiled local embedder, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._embed_py import DIMENSIONS, embed, embed_f32
else:
    try:
        from gateway._native._embed_c import DIMENSIONS, embed, embed_f32
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._embed_py import DIMENSIONS, embed, embed_f32

__all__ = ["DIMENSIONS", "embed", "embed_f32"]
