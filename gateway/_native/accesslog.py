"""Picks the compiled access-log formatter, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS
from gateway._native._access_py import Stamp

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._access_py import escape, format_batch
else:
    try:
        from gateway._native._access_c import escape, format_batch
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._access_py import escape, format_batch

__all__ = ["Stamp", "escape", "format_batch"]
