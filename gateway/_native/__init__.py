"""Compiled kernels, each with a pure-Python twin; GATEWAY_NO_EXTENSIONS=1 selects the twins."""

import os
import sys

NO_EXTENSIONS: bool = (
    bool(os.environ.get("GATEWAY_NO_EXTENSIONS")) or sys.implementation.name != "cpython"
)
