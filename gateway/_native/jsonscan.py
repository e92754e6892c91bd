"""Picks the compiled JSON body inspector, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS
from gateway._native._json_py import DUPLICATE_KEY, OK, TOO_DEEP

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._json_py import inspect
else:
    try:
        from gateway._native._json_c import inspect
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._json_py import inspect

__all__ = ["DUPLICATE_KEY", "OK", "TOO_DEEP", "inspect"]
