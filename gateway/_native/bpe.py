"""Picks the compiled BPE token counter, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._bpe_py import Encoding
else:
    try:
        from gateway._native._bpe_c import Encoding
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._bpe_py import Encoding

__all__ = ["Encoding"]
