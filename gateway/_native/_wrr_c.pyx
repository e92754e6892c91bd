# cython: language_level=3, embedsignature=True
"""Smooth weighted round robin (nginx's algorithm), compiled; see _wrr_py for the specification."""

from libc.math cimport isfinite
from libc.stdlib cimport calloc, free

cimport cython

cdef enum:
    MAX = 64
MAX_TARGETS = MAX


cdef double _checked(object weight) except -1.0:
    cdef double w = float(weight)
    if not (isfinite(w) and w >= 0.0):
        raise ValueError(f"weights must be finite and >= 0, got {w!r}")
    return w


@cython.final
cdef class SmoothWeighted:
    cdef int _n
    cdef double *_weights
    cdef double *_current

    def __cinit__(self, weights):
        cdef Py_ssize_t n = len(weights)
        if n > MAX:
            raise ValueError(f"at most {MAX} targets, got {n}")
        self._n = <int>n
        self._weights = <double *>calloc(max(n, 1), sizeof(double))
        self._current = <double *>calloc(max(n, 1), sizeof(double))
        if self._weights == NULL or self._current == NULL:
            raise MemoryError()
        for i in range(n):
            self._weights[i] = _checked(weights[i])

    def __dealloc__(self):
        free(self._weights)
        free(self._current)

    def __len__(self):
        return self._n

    @property
    def weights(self):
        return tuple(self._weights[i] for i in range(self._n))

    def set_weight(self, int index, weight):
        if not 0 <= index < self._n:
            raise IndexError(index)
        self._weights[index] = _checked(weight)
        self._current[index] = 0.0

    cpdef int pick(self, unsigned long long unavailable=0):
        cdef int i
        cdef int best = -1
        cdef double w, value
        cdef double total = 0.0
        cdef double best_value = 0.0
        for i in range(self._n):
            w = self._weights[i]
            if w <= 0.0 or (unavailable >> i) & 1:
                continue
            value = self._current[i] + w
            self._current[i] = value
            total += w
            if best < 0 or value > best_value:
                best = i
                best_value = value
        if best >= 0:
            self._current[best] -= total
        return best
