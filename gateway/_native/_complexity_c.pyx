# cython: language_level=3, embedsignature=True
"""The complexity scorer's counts, compiled; _complexity_py is their specification and must
agree exactly. Cue words are found in a small open-addressing table of FNV-1a hashes (each
slot keeps its word, compared in full), so a prompt is read once with no allocation."""

from libc.math cimport exp, log1p
from libc.stdint cimport uint64_t
from libc.string cimport memcmp

cimport cython

from gateway._native._complexity_py import (
    _CLASS_OF,
    BIAS,
    FEATURES,
    LONG_OUTPUT,
    MAX_SCAN,
    MAX_TURNS,
    STRUCTURED,
    TOOLS,
    TURN,
    WEIGHTS,
)

cdef enum:
    SLOTS = 1024  # a power of two, well above twice the cue words
    NFEATURES = 15
    BASE = 8  # where the cue classes start in FEATURES

cdef uint64_t FNV_OFFSET = 0xCBF29CE484222325ULL
cdef uint64_t FNV_PRIME = 0x100000001B3ULL
cdef Py_ssize_t C_MAX_SCAN = MAX_SCAN
cdef double C_BIAS = BIAS
cdef double C_TURN = TURN
cdef long C_MAX_TURNS = MAX_TURNS
cdef double C_TOOLS = TOOLS
cdef double C_STRUCTURED = STRUCTURED
cdef long C_LONG = LONG_OUTPUT[0]
cdef double C_LONG_ADD = LONG_OUTPUT[1]
cdef long C_MEDIUM = LONG_OUTPUT[2]
cdef double C_MEDIUM_ADD = LONG_OUTPUT[3]
cdef double C_WEIGHTS[NFEATURES]
for _k in range(NFEATURES):
    C_WEIGHTS[_k] = WEIGHTS[_k]
assert len(FEATURES) == NFEATURES and FEATURES[BASE] == "reason"

cdef uint64_t _hashes[SLOTS]
cdef const unsigned char *_words[SLOTS]
cdef Py_ssize_t _lengths[SLOTS]
cdef int _classes[SLOTS]
_KEEP = list(_CLASS_OF)  # the slots point into these bytes objects


cdef inline uint64_t _fnv(const unsigned char *data, Py_ssize_t n) noexcept:
    cdef uint64_t h = FNV_OFFSET
    cdef Py_ssize_t i
    for i in range(n):
        h ^= data[i]
        h *= FNV_PRIME
    return h


cdef void _fill():
    cdef Py_ssize_t i, slot
    cdef bytes word
    cdef uint64_t h
    for i in range(SLOTS):
        _lengths[i] = -1
    for word in _KEEP:
        h = _fnv(word, len(word))
        slot = <Py_ssize_t>(h & (SLOTS - 1))
        while _lengths[slot] >= 0:
            slot = (slot + 1) & (SLOTS - 1)
        _hashes[slot] = h
        _words[slot] = word
        _lengths[slot] = len(word)
        _classes[slot] = _CLASS_OF[word]


_fill()


cdef inline int _class_of(const unsigned char *data, Py_ssize_t n) noexcept:
    cdef uint64_t h = _fnv(data, n)
    cdef Py_ssize_t slot = <Py_ssize_t>(h & (SLOTS - 1))
    while _lengths[slot] >= 0:
        if _hashes[slot] == h and _lengths[slot] == n and memcmp(_words[slot], data, n) == 0:
            return _classes[slot]
        slot = (slot + 1) & (SLOTS - 1)
    return -1


cdef inline bint _inside(unsigned char byte) noexcept:
    return (97 <= byte <= 122) or (48 <= byte <= 57) or byte >= 128


cdef inline bint _is_code(unsigned char b) noexcept:
    return b in b"{}();[]<>"


cdef inline bint _is_math(unsigned char b) noexcept:
    return b in b"+*/^=%"


def features(str text):
    cdef long counts[NFEATURES]
    cdef Py_ssize_t j
    _count(text, counts)
    return tuple([counts[j] for j in range(NFEATURES)])


def score(str text, long turns=1, bint tools=False, max_tokens=None, bint structured=False):
    cdef long counts[NFEATURES]
    cdef long count
    cdef Py_ssize_t k
    cdef double value, logit = C_BIAS
    _count(text, counts)
    for k in range(8):
        count = counts[k]
        if k == 2:
            value = <double>(count if count < 5 else 5)
        elif k == 4:
            value = 1.0 if count > 0 else 0.0
        else:
            value = log1p(<double>count)
        logit += C_WEIGHTS[k] * value
    for k in range(8, NFEATURES):
        count = counts[k]
        logit += C_WEIGHTS[k] * <double>(count if count < 5 else 5)
    count = turns - 1 if turns > 1 else 0
    logit += C_TURN * <double>(count if count < C_MAX_TURNS else C_MAX_TURNS)
    if tools:
        logit += C_TOOLS
    if structured:
        logit += C_STRUCTURED
    if max_tokens is not None:
        if max_tokens >= C_LONG:
            logit += C_LONG_ADD
        elif max_tokens >= C_MEDIUM:
            logit += C_MEDIUM_ADD
    return 1.0 / (1.0 + exp(-logit))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _count(str text, long *counts) except *:
    cdef bytes data = text.lower().encode("utf-8")
    cdef const unsigned char *raw = data
    cdef Py_ssize_t n = min(len(data), C_MAX_SCAN)
    cdef Py_ssize_t i = 0, j, start = -1
    cdef int cls
    cdef unsigned char byte
    cdef bint line_start = True
    for j in range(NFEATURES):
        counts[j] = 0
    while i <= n:
        byte = raw[i] if i < n else 32
        if i < n and _inside(byte):
            if start < 0:
                start = i
        elif start >= 0:
            counts[0] += 1
            cls = _class_of(raw + start, i - start)
            if cls >= 0:
                counts[BASE + cls] += 1
            start = -1
        if i == n:
            break
        if line_start and byte != 32 and byte != 9:
            line_start = False
            if (byte == 45 or byte == 42) and i + 1 < n and raw[i + 1] == 32:
                counts[7] += 1
            elif 48 <= byte <= 57:
                j = i
                while j < n and 48 <= raw[j] <= 57:
                    j += 1
                if j < n and (raw[j] == 46 or raw[j] == 41):
                    counts[7] += 1
        if byte == 10:
            counts[1] += 1
            line_start = True
        elif byte == 63:
            counts[2] += 1
        elif _is_code(byte):
            counts[3] += 1
        elif _is_math(byte):
            counts[6] += 1
        elif 48 <= byte <= 57:
            counts[5] += 1
        elif byte == 96 and i + 2 < n and raw[i + 1] == 96 and raw[i + 2] == 96:
            counts[4] += 1
            i += 3
            continue
        i += 1
