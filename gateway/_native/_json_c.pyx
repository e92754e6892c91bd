# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""The JSON body inspector, compiled; _json_py is its specification and must agree exactly.

One pass in C over the bytes: strings are skipped with their escapes, brackets counted, and the
top-level keys' spans kept in a small array and compared with memcmp, so a request pays about a
nanosecond a byte and allocates nothing unless a key holds an escape.
"""

from libc.string cimport memcmp

from gateway._native._json_py import DUPLICATE_KEY, OK, TOO_DEEP, key_text

cdef enum:
    MAX_SPANS = 128


def inspect(const unsigned char[::1] data, int max_depth):
    """(OK, None); (TOO_DEEP, the top-level key it happened under, or None); or
    (DUPLICATE_KEY, the key)."""
    cdef Py_ssize_t n = data.shape[0]
    cdef Py_ssize_t i = 0, start, j, k
    cdef int depth = 0
    cdef bint top_object = False, key_next = False, escaped
    cdef unsigned char c
    cdef Py_ssize_t starts[MAX_SPANS]
    cdef Py_ssize_t ends[MAX_SPANS]
    cdef Py_ssize_t spans = 0
    cdef Py_ssize_t key_start = -1, key_end = -1
    cdef object seen = None  # keys with escapes, or past MAX_SPANS: decoded, in a set
    cdef object text
    while i < n:
        c = data[i]
        if c == 34:  # '"'
            start = i + 1
            i += 1
            escaped = False
            while i < n:
                c = data[i]
                if c == 92:  # '\\'
                    escaped = True
                    i += 2
                    continue
                if c == 34:
                    break
                i += 1
            if i > n:
                i = n
            if depth == 1 and key_next:
                key_next = False
                key_start, key_end = start, i
                if seen is None and not escaped and spans < MAX_SPANS:
                    for k in range(spans):
                        if ends[k] - starts[k] == i - start and memcmp(
                            &data[starts[k]], &data[start], i - start
                        ) == 0:
                            return DUPLICATE_KEY, key_text(bytes(data[start:i]))
                    starts[spans] = start
                    ends[spans] = i
                    spans += 1
                else:  # a key with an escape, or very many keys: compared decoded, in a set
                    if seen is None:
                        seen = {key_text(bytes(data[starts[k]:ends[k]])) for k in range(spans)}
                    text = key_text(bytes(data[start:i]))
                    if text in seen:
                        return DUPLICATE_KEY, text
                    seen.add(text)
            i += 1
            continue
        if c == 123 or c == 91:  # '{' '['
            depth += 1
            if depth > max_depth:
                if top_object and key_start >= 0:
                    return TOO_DEEP, key_text(bytes(data[key_start:key_end]))
                return TOO_DEEP, None
            if depth == 1 and c == 123:
                top_object = True
                key_next = True
        elif c == 125 or c == 93:  # '}' ']'
            depth -= 1
        elif c == 44 and depth == 1 and top_object:  # ','
            key_next = True
        i += 1
    return OK, None
