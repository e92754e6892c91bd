"""Declares the Cython extensions under gateway/_native; all metadata lives in pyproject.toml."""

import os
import sys

from setuptools import Extension, setup

NO_EXTENSIONS = bool(os.environ.get("GATEWAY_NO_EXTENSIONS")) or sys.implementation.name != "cpython"
DEBUG = bool(os.environ.get("GATEWAY_NATIVE_DEBUG"))
CFLAGS = (["-O0", "-g"] if DEBUG else ["-O2"]) + ["-Wall"]
MODULES = ("access", "balance", "bpe", "complexity", "embed", "json", "otlp", "scan")

if NO_EXTENSIONS:
    print("*** gateway: pure-Python build (GATEWAY_NO_EXTENSIONS) ***")
    setup()
else:
    from Cython.Build import cythonize

    extensions = [
        Extension(
            f"gateway._native._{name}_c",
            [f"gateway/_native/_{name}_c.pyx"],
            include_dirs=["gateway/_native"],
            depends=["gateway/_native/bpe_core.h"],
            extra_compile_args=CFLAGS,
        )
        for name in MODULES
    ]
    setup(
        ext_modules=cythonize(
            extensions,
            compiler_directives={"language_level": "3", "embedsignature": True},
            annotate=bool(os.environ.get("GATEWAY_CYTHON_ANNOTATE")),
        )
    )
