# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The guardrails' multi-pattern scanner, compiled; _scan_py is its specification.

Matching runs in Hyperscan (all patterns in one pass over the UTF-8 bytes): a SINGLEMATCH
database answers `any` and stops at the first match; a SOM_LEFTMOST database gives the spans,
and is scanned only when the prefilter fired. Ours, in C: the leftmost-longest non-overlapping
selection per pattern, byte to character offsets for non-ASCII text, Luhn and mod-97.
Without the hyperscan wheel `HYPERSCAN` is False and scan.py takes google-re2's engine (or the
twin's), keeping this module's prefilter and checksums.
"""

from libc.string cimport memcmp

from gateway._native._scan_py import Pattern

try:
    import hyperscan
except ImportError:  # no wheel for this platform: scan.py picks another engine
    hyperscan = None

BACKEND = "hyperscan"
HYPERSCAN = hyperscan is not None

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


cdef class _Any:
    cdef public bint seen

    def __call__(self, unsigned int ident, unsigned long long start, unsigned long long end,
                 unsigned int flags, object context):
        self.seen = True
        return 0  # SINGLEMATCH: each pattern reports once at most; no exception to unwind


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
        seen = _Any()
        self._any.scan(data, match_event_handler=seen)
        return seen.seen

    def candidates(self, str text):
        if self._count == 0:
            return []
        cdef bint ascii = PyUnicode_IS_ASCII(text)
        cdef Py_ssize_t size
        cdef const char* raw = PyUnicode_AsUTF8AndSize(text, &size)
        cdef bytes data = raw[:size]
        seen = _Any()
        self._any.scan(data, match_event_handler=seen)
        if not seen.seen:
            return []
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


cdef inline bint _digit(unsigned char c):
    return 48 <= c <= 57


cdef inline bint _upper(unsigned char c):
    return 65 <= c <= 90


cdef inline bint _hex(unsigned char c):
    return _digit(c) or 65 <= c <= 70 or 97 <= c <= 102


cdef inline bint _alnum(unsigned char c):
    return _digit(c) or _upper(c) or 97 <= c <= 122


cdef inline bint _local(unsigned char c):
    return _alnum(c) or c == 46 or c == 95 or c == 37 or c == 43 or c == 45  # . _ % + -


cdef bint _maybe(const unsigned char* p, Py_ssize_t n):
    cdef Py_ssize_t i, j
    cdef int digits = 0, b64 = 0, ids = 0
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if _digit(c):
            digits += 1
            if digits >= 3:
                return True
            if i + 3 < n and (p[i + 1] == 32 or p[i + 1] == 46 or p[i + 1] == 45) and _digit(p[i + 2]) and _digit(p[i + 3]):
                return True
            if i + 2 < n and p[i + 1] == 46 and _digit(p[i + 2]):
                return True
            if i + 2 < n and p[i + 1] == 32 and (_upper(p[i + 2]) or _digit(p[i + 2])):
                return True
        else:
            digits = 0
        if _alnum(c) or c == 47 or c == 43:
            b64 += 1
            if b64 >= 40:
                return True
        else:
            b64 = 0
        if _upper(c) or _digit(c):
            ids += 1
            if ids >= 20:
                return True
            if i + 3 < n and _upper(c) and _upper(p[i + 1]) and _digit(p[i + 2]) and _digit(p[i + 3]):
                return True
        else:
            ids = 0
        if c == 64:  # @
            if 0 < i < n - 1 and _local(p[i - 1]) and (_alnum(p[i + 1]) or p[i + 1] == 45):
                return True
        elif c == 43:  # +
            if i + 1 < n and _digit(p[i + 1]):
                return True
        elif c == 58:  # :
            if i + 2 < n and p[i + 1] == 58 and _hex(p[i + 2]):
                return True
            if i > 0 and _hex(p[i - 1]):
                j = i + 1
                while j < n and j <= i + 5 and _hex(p[j]):
                    j += 1
                if j < n and p[j] == 58:
                    return True
        elif c == 115:  # sk-
            if i + 2 < n and p[i + 1] == 107 and p[i + 2] == 45:
                return True
        elif c == 101:  # eyJ
            if i + 2 < n and p[i + 1] == 121 and p[i + 2] == 74:
                return True
        elif c == 103:  # gh?_ and github_pat_
            if i + 3 < n and p[i + 1] == 104 and p[i + 3] == 95 and p[i + 2] in b"pousr":
                return True
            if i + 10 < n and memcmp(p + i, b"github_pat_", 11) == 0:
                return True
        elif c == 45:  # -----BEGIN
            if i + 10 < n and memcmp(p + i, b"-----BEGIN ", 11) == 0:
                return True
    return False


def maybe(object data):
    """False: no built-in kind can match anywhere in `data` (str or UTF-8 bytes). One pass in
    C over the bytes, checking each kind's necessary condition; it spares short clean texts a
    Hyperscan call, whose first touch of its tables costs microseconds from a cold cache."""
    cdef Py_ssize_t size
    cdef const char* raw
    if isinstance(data, str):
        raw = PyUnicode_AsUTF8AndSize(data, &size)
        return _maybe(<const unsigned char*>raw, size)
    cdef bytes b = data
    return _maybe(<const unsigned char*>(<const char*>b), len(b))


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


__all__ = ["BACKEND", "HYPERSCAN", "Engine", "Pattern", "luhn", "maybe", "mod97"]
