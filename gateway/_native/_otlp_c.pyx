# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""OTLP's ExportTraceServiceRequest, compiled; _otlp_py is its specification and must agree
byte for byte.

Each span is written into one reused C buffer (sizes known before each length prefix is
written: a KeyValue's from its parts), then copied into the request's buffer behind its own
tag and length; strings are copied from their UTF-8 buffers. Arrays of strings (the finish
reasons, on every root span) are written here too; any other array value by the twin.
"""

from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy
from libc.stdint cimport uint64_t, int64_t

from gateway._native._otlp_py import _any as _any_slow

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object unicode, Py_ssize_t* size) except NULL
    object PyBytes_FromStringAndSize(const char* v, Py_ssize_t len)


cdef struct Buf:
    char* data
    Py_ssize_t size
    Py_ssize_t cap


cdef int _grow(Buf* b, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap
    cdef char* data
    if b.size + need <= b.cap:
        return 0
    cap = b.cap * 2 if b.cap else 4096
    while cap < b.size + need:
        cap *= 2
    data = <char*>realloc(b.data, cap)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.cap = cap
    return 0


cdef inline int _byte(Buf* b, unsigned char c) except -1:
    _grow(b, 1)
    b.data[b.size] = <char>c
    b.size += 1
    return 0


cdef inline int _raw(Buf* b, const char* data, Py_ssize_t n) except -1:
    _grow(b, n)
    memcpy(b.data + b.size, data, n)
    b.size += n
    return 0


cdef inline Py_ssize_t _vsize(uint64_t v):
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline int _varint(Buf* b, uint64_t v) except -1:
    _grow(b, 10)
    while v >= 0x80:
        b.data[b.size] = <char>((v & 0x7F) | 0x80)
        b.size += 1
        v >>= 7
    b.data[b.size] = <char>v
    b.size += 1
    return 0


cdef inline int _fixed64(Buf* b, uint64_t v) except -1:
    cdef int i
    _grow(b, 8)
    for i in range(8):
        b.data[b.size + i] = <char>((v >> (8 * i)) & 0xFF)
    b.size += 8
    return 0


cdef int _bytes_field(Buf* b, int number, const char* data, Py_ssize_t n) except -1:
    _varint(b, (number << 3) | 2)
    _varint(b, n)
    _raw(b, data, n)
    return 0


cdef int _str_field(Buf* b, int number, str value) except -1:
    cdef Py_ssize_t n
    cdef const char* data = PyUnicode_AsUTF8AndSize(value, &n)
    return _bytes_field(b, number, data, n)


cdef bint _all_str(object values):
    for item in values:
        if type(item) is not str:
            return False
    return True


cdef int _attribute(Buf* b, int number, str key, object value) except -1:
    """KeyValue {1: key, 2: AnyValue}, behind field `number`."""
    cdef Py_ssize_t klen, vlen, anylen, kvlen
    cdef const char* kdata = PyUnicode_AsUTF8AndSize(key, &klen)
    cdef const char* vdata = NULL
    cdef uint64_t ivalue = 0
    cdef double dvalue = 0.0
    cdef bytes encoded
    cdef int kind
    cdef Py_ssize_t arrlen = 0, ilen, n
    cdef const char* idata
    if isinstance(value, (list, tuple)) and _all_str(value):
        kind = 6
        for item in value:  # ArrayValue {1: AnyValue {1: string}} per item
            PyUnicode_AsUTF8AndSize(item, &ilen)
            n = 1 + _vsize(ilen) + ilen
            arrlen += 1 + _vsize(n) + n
        anylen = 1 + _vsize(arrlen) + arrlen
    elif isinstance(value, str):
        kind = 1
        vdata = PyUnicode_AsUTF8AndSize(value, &vlen)
        anylen = 1 + _vsize(vlen) + vlen
    elif isinstance(value, bool):
        kind = 2
        anylen = 2
    elif isinstance(value, int):
        kind = 3
        ivalue = <uint64_t>(<int64_t>value)
        anylen = 1 + _vsize(ivalue)
    elif isinstance(value, float):
        kind = 4
        dvalue = value
        anylen = 9
    else:
        kind = 5
        encoded = _any_slow(value)
        vdata = encoded
        anylen = len(encoded)
    kvlen = 1 + _vsize(klen) + klen + 1 + _vsize(anylen) + anylen
    _varint(b, (number << 3) | 2)
    _varint(b, kvlen)
    _bytes_field(b, 1, kdata, klen)
    _byte(b, 0x12)
    _varint(b, anylen)
    if kind == 1:
        _bytes_field(b, 1, vdata, vlen)
    elif kind == 2:
        _byte(b, 0x10)
        _byte(b, 1 if value else 0)
    elif kind == 3:
        _byte(b, 0x18)
        _varint(b, ivalue)
    elif kind == 4:
        _byte(b, 0x21)
        _raw(b, <const char*>&dvalue, 8)
    elif kind == 6:
        _byte(b, 0x2A)  # 5: array_value
        _varint(b, arrlen)
        for item in value:
            idata = PyUnicode_AsUTF8AndSize(item, &ilen)
            _byte(b, 0x0A)  # ArrayValue.values
            _varint(b, 1 + _vsize(ilen) + ilen)
            _bytes_field(b, 1, idata, ilen)
    else:
        _raw(b, vdata, anylen)
    return 0


cdef int _attributes(Buf* b, int number, dict items) except -1:
    for key, value in items.items():
        if value is not None:
            _attribute(b, number, key, value)
    return 0


cdef int _span(Buf* out, Buf* tmp, bytes trace_id, object s) except -1:
    """ScopeSpans.spans (field 2): one Span, written into `tmp`, then behind its length."""
    cdef bytes span_id = s.span_id
    cdef object parent = s.parent
    cdef object error = s.error
    cdef str message
    cdef Py_ssize_t mlen
    cdef const char* mdata
    tmp.size = 0
    _bytes_field(tmp, 1, trace_id, len(trace_id))
    _bytes_field(tmp, 2, span_id, len(span_id))
    if parent:
        _bytes_field(tmp, 4, <bytes>parent, len(<bytes>parent))
    _str_field(tmp, 5, s.name)
    _byte(tmp, 0x30)
    _varint(tmp, <uint64_t>s.kind)
    _byte(tmp, 0x39)
    _fixed64(tmp, <uint64_t>s.start)
    _byte(tmp, 0x41)
    _fixed64(tmp, <uint64_t>s.end)
    _attributes(tmp, 9, s.attributes)
    if error:
        message = (<str>error)[:200]
        mdata = PyUnicode_AsUTF8AndSize(message, &mlen)
        _byte(tmp, 0x7A)  # 15: status
        _varint(tmp, 1 + _vsize(mlen) + mlen + 2)
        _bytes_field(tmp, 2, mdata, mlen)
        _byte(tmp, 0x18)
        _byte(tmp, 2)  # STATUS_CODE_ERROR
    _bytes_field(out, 2, tmp.data, tmp.size)
    return 0


def export_request(batch, dict resource, tuple scope):
    """ExportTraceServiceRequest with one ResourceSpans holding one ScopeSpans."""
    cdef Buf spans
    cdef Buf tmp
    cdef Buf head
    cdef Buf scope_spans
    cdef bytes trace_id
    spans.data = NULL; spans.size = 0; spans.cap = 0
    tmp.data = NULL; tmp.size = 0; tmp.cap = 0
    head.data = NULL; head.size = 0; head.cap = 0
    scope_spans.data = NULL; scope_spans.size = 0; scope_spans.cap = 0
    try:
        for trace, root in batch:
            trace_id = trace.trace_id
            for each in trace.spans:
                _span(&spans, &tmp, trace_id, each)
            _span(&spans, &tmp, trace_id, root)
        # ScopeSpans: 1 scope {1: name, 2: version}, then the spans.
        tmp.size = 0
        _str_field(&tmp, 1, scope[0])
        _str_field(&tmp, 2, scope[1])
        _bytes_field(&scope_spans, 1, tmp.data, tmp.size)
        _raw(&scope_spans, spans.data, spans.size)
        # ResourceSpans: 1 resource {1: attributes}, 2 scope_spans.
        tmp.size = 0
        _attributes(&tmp, 1, resource)
        _bytes_field(&head, 1, tmp.data, tmp.size)
        _bytes_field(&head, 2, scope_spans.data, scope_spans.size)
        tmp.size = 0
        _bytes_field(&tmp, 1, head.data, head.size)  # ExportTraceServiceRequest.resource_spans
        return PyBytes_FromStringAndSize(tmp.data, tmp.size)
    finally:
        free(spans.data)
        free(tmp.data)
        free(head.data)
        free(scope_spans.data)
