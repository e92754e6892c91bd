"""Picks the compiled guardrails scanner (Hyperscan), or its pure-Python twin
(GATEWAY_NO_EXTENSIONS=1, or no hyperscan wheel for this platform)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS
from gateway._native._scan_py import Pattern

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._scan_py import BACKEND, Engine, luhn, maybe, mod97
else:
    try:
        from gateway._native._scan_c import BACKEND, Engine, luhn, maybe, mod97
    except ImportError:  # pragma: no cover - a build without a compiler or without hyperscan
        from gateway._native._scan_py import BACKEND, Engine, luhn, maybe, mod97

__all__ = ["BACKEND", "Engine", "Pattern", "luhn", "maybe", "mod97"]
