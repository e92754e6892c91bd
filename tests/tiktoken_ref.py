"""tiktoken, the reference for token counts, run offline: its `.tiktoken` files are rebuilt
from the vocabularies the gateway ships into a private cache directory, under the names
tiktoken looks for. tiktoken checks each file against the SHA-256 it pins, so a vocabulary
that is not OpenAI's byte for byte fails here rather than agreeing with itself."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent.parent / "gateway" / "metering" / "data"
URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"


def tiktoken_text(name: str) -> bytes:
    blob = (DATA / f"{name}.bpe").read_bytes()
    (count,) = struct.unpack_from("<I", blob, 8)
    lengths, offset, lines = blob[12 : 12 + count], 12 + count, []
    for rank, length in enumerate(lengths):
        token = blob[offset : offset + length]
        offset += length
        lines.append(base64.b64encode(token) + b" %d\n" % rank)
    return b"".join(lines)


@cache
def encoding(name: str) -> Any:
    directory = tempfile.mkdtemp(prefix="tiktoken-")
    for each in ("o200k_base", "cl100k_base"):
        key = hashlib.sha1(URL.format(each).encode()).hexdigest()
        Path(directory, key).write_bytes(tiktoken_text(each))
    os.environ["TIKTOKEN_CACHE_DIR"] = directory
    import tiktoken

    return tiktoken.get_encoding(name)
