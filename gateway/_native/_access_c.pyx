# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""Access-log lines, compiled; _access_py is their specification and must agree byte for byte.

The escape check runs over the string's bytes in C (the usual id or model is plain ASCII and
comes back as it is); each line is one typed f-string, joined once per batch.
"""

from gateway._native._access_py import escape as _escape_slow

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object unicode)
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL


cdef inline bint _plain(str value):
    cdef Py_ssize_t n, i
    cdef const char* data
    cdef unsigned char c
    if not PyUnicode_IS_ASCII(value):
        return False
    data = PyUnicode_AsUTF8AndSize(value, &n)  # ASCII: the string's own buffer, no copy
    for i in range(n):
        c = <unsigned char>data[i]
        if c <= 32 or c >= 127 or c == 34 or c == 92 or c == 61:  # space, ", \, =
            return False
    return True


cpdef str escape(str value):
    if _plain(value):
        return value
    return _escape_slow(value)


def format_batch(list entries, stamp):
    cdef list lines = []
    cdef tuple entry
    cdef object model
    cdef str shown
    for item in entries:
        entry = <tuple>item
        if len(entry) == 2:
            lines.append(f"{stamp(entry[0])}{entry[1]}\n")
            continue
        model = entry[3]
        shown = escape(model) if model is not None else "-"
        lines.append(
            f"{stamp(entry[0])}{escape(entry[1])} {entry[2]} model={shown} provider={entry[4]}"
            f" status={entry[5]} ms={entry[6]:.1f} tokens={entry[7]}/{entry[8]}"
            f"{' stream_error' if entry[9] else ''}\n"
        )
    return "".join(lines).encode("utf-8", "replace")
