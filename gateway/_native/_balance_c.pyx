# cython: language_level=3, embedsignature=True
"""The routing kernel, compiled; _balance_py is its specification and must agree exactly."""

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
@cython.cdivision(True)
cdef class Balancer:
    cdef int _n
    cdef int _probe_every
    cdef double _alpha
    cdef double *_weights
    cdef double *_current
    cdef double *_ewma
    cdef long *_in_flight
    cdef long *_since

    def __cinit__(self, weights, int probe_every=32, double alpha=0.3):
        cdef Py_ssize_t n = len(weights)
        if n > MAX:
            raise ValueError(f"at most {MAX} targets, got {n}")
        self._n = <int>n
        cdef size_t size = max(n, 1)
        self._weights = <double *>calloc(size, sizeof(double))
        self._current = <double *>calloc(size, sizeof(double))
        self._ewma = <double *>calloc(size, sizeof(double))
        self._in_flight = <long *>calloc(size, sizeof(long))
        self._since = <long *>calloc(size, sizeof(long))
        if (self._weights == NULL or self._current == NULL or self._ewma == NULL
                or self._in_flight == NULL or self._since == NULL):
            raise MemoryError()
        for i in range(n):
            self._weights[i] = _checked(weights[i])
        self._probe_every = max(1, probe_every)
        self._alpha = alpha

    def __dealloc__(self):
        free(self._weights)
        free(self._current)
        free(self._ewma)
        free(self._in_flight)
        free(self._since)

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

    def in_flight(self, int index):
        if not 0 <= index < self._n:
            raise IndexError(index)
        return self._in_flight[index]

    def latency(self, int index):
        if not 0 <= index < self._n:
            raise IndexError(index)
        return self._ewma[index]

    cpdef void begin(self, int index) except *:
        if not 0 <= index < self._n:
            raise IndexError(index)
        self._in_flight[index] += 1

    cpdef void end(self, int index, double seconds, bint ok) except *:
        if not 0 <= index < self._n:
            raise IndexError(index)
        if self._in_flight[index] > 0:
            self._in_flight[index] -= 1
        cdef double current = self._ewma[index]
        cdef double observed = seconds if ok else 2.0 * max(seconds, current)
        if current == 0.0:
            self._ewma[index] = observed
        else:
            self._ewma[index] = current + self._alpha * (observed - current)

    cdef inline int _picked(self, int index):
        cdef int i
        for i in range(self._n):
            self._since[i] += 1
        self._since[index] = 0
        return index

    cdef inline bint _usable(self, int i, unsigned long long unavailable):
        return self._weights[i] > 0.0 and not ((unavailable >> i) & 1)

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
        if best < 0:
            return -1
        self._current[best] -= total
        return self._picked(best)

    cpdef int least_busy(self, unsigned long long unavailable=0):
        cdef int i
        cdef int best = -1
        cdef double load
        cdef double best_load = 0.0
        for i in range(self._n):
            if not self._usable(i, unavailable):
                continue
            load = self._in_flight[i] / self._weights[i]
            if best < 0 or load < best_load or (
                load == best_load and self._since[i] > self._since[best]
            ):
                best = i
                best_load = load
        return -1 if best < 0 else self._picked(best)

    cpdef int least_latency(self, unsigned long long unavailable, double r1, double r2):
        cdef int available[MAX]
        cdef int n = 0
        cdef int i, a, b, first, second
        cdef int starved = -1
        for i in range(self._n):
            if self._usable(i, unavailable):
                available[n] = i
                n += 1
        if n == 0:
            return -1
        for a in range(n):
            i = available[a]
            if self._since[i] >= self._probe_every and (
                starved < 0 or self._since[i] > self._since[starved]
            ):
                starved = i
        if starved >= 0:
            return self._picked(starved)
        if n == 1:
            return self._picked(available[0])
        a = (<int>(r1 * n)) % n
        b = (<int>(r2 * (n - 1))) % (n - 1)
        if b >= a:
            b += 1
        first = available[a]
        second = available[b]
        return self._picked(second if self._ewma[second] < self._ewma[first] else first)
