"""Picks the guardrails' scanner: the compiled module with Hyperscan; where the hyperscan wheel
is missing, google-re2's engine with the compiled prefilter and checksums; else (or with
GATEWAY_NO_EXTENSIONS=1) the pure-Python twin. All give the same findings."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS
from gateway._native._scan_py import Pattern

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._scan_py import BACKEND, Engine, luhn, maybe, mod97
else:
    try:
        from gateway._native._scan_c import BACKEND, HYPERSCAN, Engine, luhn, maybe, mod97
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._scan_py import BACKEND, Engine, luhn, maybe, mod97
    else:
        if not HYPERSCAN:  # pragma: no cover - platforms without a hyperscan wheel
            try:
                from gateway._native._scan_re2 import BACKEND, Engine
            except ImportError:
                from gateway._native._scan_py import BACKEND, Engine

__all__ = ["BACKEND", "Engine", "Pattern", "luhn", "maybe", "mod97"]
