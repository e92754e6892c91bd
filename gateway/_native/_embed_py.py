"""The local text embedder: the typed specification of _embed_c, which must agree with it.

No model and no download: a text becomes a fixed-size vector by feature hashing. Features are
the words (letters and digits; any non-ASCII byte counts as a letter), word pairs in order, and
the character trigrams of each word padded with spaces, so that inflections and typos still
share most features. Very common function words weigh little. Each feature adds or subtracts
its weight at one position chosen by a 64-bit FNV-1a hash (the sign from another bit), and the
vector is scaled to unit length, so a dot product is a cosine similarity.
"""

import math
from array import array

DIMENSIONS = 512
_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = 0xFFFFFFFFFFFFFFFF
WORD_WEIGHT = 1.0
PAIR_WEIGHT = 0.6
TRIGRAM_WEIGHT = 0.35
FUNCTION_WEIGHT = 0.15
FUNCTION_WORDS = frozenset(
    b"a an the of to in on at for by with from and or is are was were be been am do does did "
    b"what whats which who whom how why when where can could would should will shall may might "
    b"i me my you your it its this that these those there please tell give show explain "
    b"about s".split()
)


def _fnv(data: bytes, seed: int) -> int:
    h = _FNV_OFFSET ^ seed
    for byte in data:
        h ^= byte
        h = (h * _FNV_PRIME) & _MASK
    return h


def _words(text: str) -> list[bytes]:
    data = text.lower().encode("utf-8")
    words: list[bytes] = []
    start = -1
    for i, byte in enumerate(data):
        inside = (97 <= byte <= 122) or (48 <= byte <= 57) or byte >= 128
        if inside and start < 0:
            start = i
        elif not inside and start >= 0:
            words.append(data[start:i])
            start = -1
    if start >= 0:
        words.append(data[start:])
    return words


def _add(vector: list[float], feature: bytes, seed: int, weight: float) -> None:
    h = _fnv(feature, seed)
    index = h % DIMENSIONS
    vector[index] += weight if (h >> 63) & 1 else -weight


def embed(text: str) -> list[float]:
    """A unit vector of DIMENSIONS floats (all zeros for a text without words)."""
    vector = [0.0] * DIMENSIONS
    words = _words(text)
    for i, word in enumerate(words):
        light = word in FUNCTION_WORDS
        _add(vector, word, 1, FUNCTION_WEIGHT if light else WORD_WEIGHT)
        if not light:
            padded = b" " + word + b" "
            for j in range(len(padded) - 2):
                _add(vector, padded[j : j + 3], 2, TRIGRAM_WEIGHT)
        if i + 1 < len(words):
            pair_weight = (
                FUNCTION_WEIGHT if light or words[i + 1] in FUNCTION_WORDS else PAIR_WEIGHT
            )
            _add(vector, word + b" " + words[i + 1], 3, pair_weight)
    norm = math.sqrt(sum(v * v for v in vector))
    if norm > 0.0:
        vector = [v / norm for v in vector]
    return vector


def embed_f32(text: str) -> bytes:
    """embed(text) as DIMENSIONS native float32s, each rounded to nearest: what NumPy reads
    with np.frombuffer, without converting a list of Python floats."""
    return array("f", embed(text)).tobytes()
