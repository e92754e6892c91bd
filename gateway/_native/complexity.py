"""Picks the compiled complexity scorer, or its pure-Python twin (GATEWAY_NO_EXTENSIONS=1)."""

from typing import TYPE_CHECKING

from gateway._native import NO_EXTENSIONS
from gateway._native._complexity_py import CLASSES, FEATURES

if TYPE_CHECKING or NO_EXTENSIONS:
    from gateway._native._complexity_py import features, score
else:
    try:
        from gateway._native._complexity_c import features, score
    except ImportError:  # pragma: no cover - a build without a compiler
        from gateway._native._complexity_py import features, score

__all__ = ["CLASSES", "FEATURES", "features", "score"]
