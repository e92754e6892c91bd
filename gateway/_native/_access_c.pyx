# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""Access-log lines, compiled; _access_py is their specification and must agree byte for byte.

A batch is written into one growing byte buffer: strings are copied from their own UTF-8
buffers (for the usual ASCII id or model, the string's storage itself), numbers printed with
snprintf (correctly rounded, as Python's own formatting is), the escape check runs over the
bytes, and a stamp is reused while the millisecond does not change.
"""

from libc.stdio cimport snprintf
from libc.string cimport memcpy

from gateway._native._access_py import escape as _escape_slow

cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object unicode)
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    object PyBytes_FromStringAndSize(const char* v, Py_ssize_t len)


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


cdef class _Buffer:
    cdef bytearray data
    cdef Py_ssize_t used

    def __cinit__(self, Py_ssize_t size):
        self.data = bytearray(size)  # zero-filled: sized to the batch, not a fixed 64 KiB
        self.used = 0

    cdef inline void reserve(self, Py_ssize_t more):
        cdef Py_ssize_t size = len(self.data)
        if self.used + more > size:
            self.data.extend(bytes(max(size, more)))

    cdef inline void raw(self, const char* text, Py_ssize_t n):
        self.reserve(n)
        memcpy(<char*>self.data + self.used, text, n)
        self.used += n

    cdef inline void text(self, str value):
        cdef Py_ssize_t n
        cdef const char* data = PyUnicode_AsUTF8AndSize(value, &n)
        self.raw(data, n)

    cdef inline void number(self, long long value):
        cdef char digits[32]
        cdef int n = snprintf(digits, 32, "%lld", value)
        self.raw(digits, n)

    cdef inline void tenths(self, double value):
        cdef char digits[64]
        cdef int n = snprintf(digits, 64, "%.1f", value)
        self.raw(digits, n)

    cdef bytes take(self):
        return PyBytes_FromStringAndSize(<char*>self.data, self.used)


def format_batch(list entries, stamp):
    cdef _Buffer out = _Buffer(len(entries) * 160 + 64)  # a line is ~130 bytes
    cdef tuple entry
    cdef object model
    cdef long long last_ms = -1, ms_key, second
    cdef str last_stamp = ""
    cdef double at
    for item in entries:
        entry = <tuple>item
        at = entry[0]
        second = <long long>at  # the millisecond exactly as Stamp computes it
        ms_key = second * 1000 + <long long>((at - second) * 1000)
        if ms_key != last_ms:
            last_stamp = stamp(at)
            last_ms = ms_key
        out.text(last_stamp)
        if len(entry) == 2:
            out.text(entry[1])
            out.raw(b"\n", 1)
            continue
        out.text(escape(entry[1]))
        out.raw(b" ", 1)
        out.text(entry[2])
        out.raw(b" model=", 7)
        model = entry[3]
        if model is None:
            out.raw(b"-", 1)
        else:
            out.text(escape(model))
        out.raw(b" provider=", 10)
        out.text(entry[4])
        out.raw(b" status=", 8)
        out.number(entry[5])
        out.raw(b" ms=", 4)
        out.tenths(entry[6])
        out.raw(b" tokens=", 8)
        out.number(entry[7])
        out.raw(b"/", 1)
        out.number(entry[8])
        if entry[9]:
            out.raw(b" stream_error", 13)
        out.raw(b"\n", 1)
    return out.take()
