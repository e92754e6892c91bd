"""Picks the compiled OTLP encoder, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._otlp_py import export_request
else:
    try:
        from gateway._native._otlp_c import export_request
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._otlp_py import export_request

__all__ = ["export_request"]
