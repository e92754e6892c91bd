# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The guardrails' multi-pattern scanner, compiled; _scan_py is its specification.

Matching runs in Hyperscan (all patterns in one pass over the UTF-8 bytes): a SINGLEMATCH
database answers `any` and stops at the first match; a SOM_LEFTMOST database gives the spans,
and is scanned only when the prefilter fired. Ours, in C: the leftmost-longest non-overlapping
selection per pattern, byte to character offsets for non-ASCII text, Luhn and mod-97.
Without the hyperscan wheel the module does not import and the twin is used.
"""

import hyperscan

from gateway._native._scan_py import Pattern

BACKEND = "hyperscan"

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object unicode)
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL


cdef class _Collect:
    cdef public dict best  # (id, start) -> longest end

    def __init__(self):
        self.best = {}

    def __call__(self, unsigned int ident, unsigned long long start, unsigned long long end,
                 unsigned int flags, object context):
        cdef tuple key = (ident, start)
        cdef object seen = self.best.get(key)
        if seen is None or <unsigned long long>seen < end:
            self.best[key] = end
        return 0


def _stop(ident, start, end, flags, context):
    return 1


cdef class Engine:
    cdef object _any
    cdef object _spans
    cdef object _any_scratch
    cdef object _spans_scratch
    cdef int _count

    def __init__(self, patterns):
        patterns = list(patterns)
        self._count = len(patterns)
        sources = [p.source.encode() for p in patterns]
        ids = list(range(len(patterns)))
        caseless = [hyperscan.HS_FLAG_CASELESS if p.caseless else 0 for p in patterns]
        self._any = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._spans = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        if patterns:
            self._any.compile(
                expressions=sources, ids=ids, elements=len(sources),
                flags=[hyperscan.HS_FLAG_SINGLEMATCH | c for c in caseless],
            )
            self._spans.compile(
                expressions=sources, ids=ids, elements=len(sources),
                flags=[hyperscan.HS_FLAG_SOM_LEFTMOST | c for c in caseless],
            )

    def any(self, bytes data):
        if self._count == 0:
            return False
        try:
            self._any.scan(data, match_event_handler=_stop)
        except hyperscan.ScanTerminated:
            return True
        return False

    def candidates(self, str text):
        if self._count == 0:
            return []
        cdef bint ascii = PyUnicode_IS_ASCII(text)
        cdef Py_ssize_t size
        cdef const char* raw = PyUnicode_AsUTF8AndSize(text, &size)
        cdef bytes data = raw[:size]
        try:
            self._any.scan(data, match_event_handler=_stop)
            return []
        except hyperscan.ScanTerminated:
            pass
        collect = _Collect()
        self._spans.scan(data, match_event_handler=collect)
        cdef list keys = sorted(collect.best)
        cdef dict last = {}
        cdef list found = []
        cdef unsigned long long start, end
        for ident, start in keys:
            end = collect.best[(ident, start)]
            if start < <unsigned long long>last.get(ident, 0):
                continue
            last[ident] = end
            found.append((ident, start, end))
        if not ascii:
            found = [(i, _chars(raw, s), _chars(raw, e)) for i, s, e in found]
        found.sort(key=_by_start)
        return found


def _by_start(item):
    return (item[1], item[0], item[2])


cdef Py_ssize_t _chars(const char* raw, Py_ssize_t byte_offset):
    """Characters in the first `byte_offset` bytes of UTF-8: every byte but continuations."""
    cdef Py_ssize_t i, n = 0
    for i in range(byte_offset):
        if (<unsigned char>raw[i] & 0xC0) != 0x80:
            n += 1
    return n


def luhn(str digits):
    cdef Py_ssize_t n = len(digits), i
    cdef int total = 0, d
    cdef int parity = n % 2
    for i in range(n):
        d = <int>ord(digits[i]) - 48
        if i % 2 == parity:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97(str iban):
    cdef str moved = iban[4:] + iban[:4]
    cdef long remainder = 0
    cdef int value
    for ch in moved:
        value = <int>ord(ch)
        value = value - 48 if value <= 57 else value - 55
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


__all__ = ["BACKEND", "Engine", "Pattern", "luhn", "mod97"]
