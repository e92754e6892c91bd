"""Process-wide logging setup; nothing here ever formats secrets (they are never passed in)."""

import logging
import sys


def setup(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
