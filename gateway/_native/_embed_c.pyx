# cython: language_level=3, embedsignature=True
"""The local text embedder, compiled; _embed_py is its specification and must agree exactly."""

from libc.math cimport sqrt
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint64_t

cimport cython

from gateway._native._embed_py import (
    DIMENSIONS,
    FUNCTION_WEIGHT,
    FUNCTION_WORDS,
    PAIR_WEIGHT,
    TRIGRAM_WEIGHT,
    WORD_WEIGHT,
)

cdef enum:
    DIM = 512

cdef uint64_t FNV_OFFSET = 0xCBF29CE484222325ULL
cdef uint64_t FNV_PRIME = 0x100000001B3ULL
cdef double C_WORD = WORD_WEIGHT
cdef double C_PAIR = PAIR_WEIGHT
cdef double C_TRIGRAM = TRIGRAM_WEIGHT
cdef double C_FUNCTION = FUNCTION_WEIGHT
assert DIMENSIONS == DIM


@cython.cdivision(True)
cdef inline void _add(double *vector, const unsigned char *data, Py_ssize_t n, uint64_t seed,
                      double weight) noexcept:
    cdef uint64_t h = FNV_OFFSET ^ seed
    cdef Py_ssize_t i
    for i in range(n):
        h ^= data[i]
        h *= FNV_PRIME
    cdef Py_ssize_t index = <Py_ssize_t>(h % DIM)
    if (h >> 63) & 1:
        vector[index] += weight
    else:
        vector[index] -= weight


cdef inline bint _inside(unsigned char byte) noexcept:
    return (97 <= byte <= 122) or (48 <= byte <= 57) or byte >= 128


def embed(str text):
    cdef double vector[DIM]
    cdef Py_ssize_t i
    _fill(text, vector)
    return [vector[i] for i in range(DIM)]


def embed_f32(str text):
    """embed(text) as DIMENSIONS native float32s (np.frombuffer reads them as they are)."""
    cdef double vector[DIM]
    cdef float out[DIM]
    cdef Py_ssize_t i
    _fill(text, vector)
    for i in range(DIM):
        out[i] = <float>vector[i]
    return PyBytes_FromStringAndSize(<char *>out, DIM * sizeof(float))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef void _fill(str text, double *vector) except *:
    """The unit vector of `text` (all zeros for a text without words)."""
    cdef bytes data = text.lower().encode("utf-8")
    cdef const unsigned char *raw = data
    cdef Py_ssize_t length = len(data)
    cdef Py_ssize_t i, j, start = -1, count = 0
    cdef list spans = []
    for i in range(DIM):
        vector[i] = 0.0
    for i in range(length):
        if _inside(raw[i]):
            if start < 0:
                start = i
        elif start >= 0:
            spans.append((start, i))
            start = -1
    if start >= 0:
        spans.append((start, length))
    count = len(spans)
    cdef list light = [data[s:e] in FUNCTION_WORDS for s, e in spans]
    cdef Py_ssize_t s0, e0, s1, e1
    cdef bytes padded, pair
    cdef const unsigned char *p
    cdef bint is_light
    for i in range(count):
        s0, e0 = spans[i]
        is_light = light[i]
        _add(vector, raw + s0, e0 - s0, 1, C_FUNCTION if is_light else C_WORD)
        if not is_light:
            padded = b" " + data[s0:e0] + b" "
            p = padded
            for j in range(len(padded) - 2):
                _add(vector, p + j, 3, 2, C_TRIGRAM)
        if i + 1 < count:
            s1, e1 = spans[i + 1]
            pair = data[s0:e0] + b" " + data[s1:e1]
            _add(vector, pair, len(pair), 3, C_FUNCTION if (is_light or light[i + 1]) else C_PAIR)
    cdef double norm = 0.0
    for i in range(DIM):
        norm += vector[i] * vector[i]
    norm = sqrt(norm)
    if norm > 0.0:
        for i in range(DIM):
            vector[i] = vector[i] / norm
