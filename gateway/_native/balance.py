"""Picks the compiled routing kernel, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._balance_py import MAX_TARGETS, Balancer
else:
    try:
        from gateway._native._balance_c import MAX_TARGETS, Balancer
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._balance_py import MAX_TARGETS, Balancer

__all__ = ["MAX_TARGETS", "Balancer"]
