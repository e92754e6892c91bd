"""Picks the compiled or the pure-Python smooth weighted round robin."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._wrr_py import MAX_TARGETS, SmoothWeighted
else:
    try:
        from gateway._native._wrr_c import MAX_TARGETS, SmoothWeighted
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._wrr_py import MAX_TARGETS, SmoothWeighted

__all__ = ["MAX_TARGETS", "SmoothWeighted"]
