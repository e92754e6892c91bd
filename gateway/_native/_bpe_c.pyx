# cython: language_level=3, embedsignature=True, boundscheck=False, wraparound=False
"""Exact BPE token counts for o200k_base and cl100k_base, compiled; _bpe_py is its
specification and must agree exactly. The work is in bpe_core.h: pre-tokenisation and merges
in C over the string's own UTF-8. The GIL is held throughout: the core's cache of recent
pieces is written as it counts."""

from cpython.unicode cimport PyUnicode_AsUTF8AndSize

cdef extern from "bpe_core.h" nogil:
    ctypedef struct bpe_t:
        unsigned int count
    int bpe_init(bpe_t *b, const unsigned char *ranks, size_t ranks_len,
                 const unsigned char *classes, size_t classes_len, int scheme)
    void bpe_free(bpe_t *b)
    size_t bpe_count(const bpe_t *b, const unsigned char *s, size_t n)
    size_t bpe_next(const bpe_t *b, const unsigned char *s, size_t i, size_t n)
    size_t bpe_piece(const bpe_t *b, const unsigned char *p, size_t n, unsigned int *out)
    int BPE_CL100K, BPE_O200K

from libc.stdlib cimport free, malloc

SCHEMES = {"cl100k_base": BPE_CL100K, "o200k_base": BPE_O200K}


cdef inline str _replace_surrogates(str text):
    # tiktoken's own rule for strings that are not valid Unicode (lone surrogates).
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


cdef class Encoding:
    """An encoding's vocabulary and pattern: `Encoding(ranks, classes, "o200k_base")`, from
    gateway/metering/data's <name>.bpe and classes.bin."""

    cdef bpe_t core
    cdef bytes _ranks, _classes  # the core borrows their buffers
    cdef readonly str name

    def __cinit__(self, bytes ranks, bytes classes, str name):
        if name not in SCHEMES:
            raise ValueError(f"unknown encoding {name!r}")
        self._ranks, self._classes, self.name = ranks, classes, name
        rc = bpe_init(&self.core, ranks, len(ranks), classes, len(classes), SCHEMES[name])
        if rc == -2:
            raise MemoryError()
        if rc != 0:
            raise ValueError("malformed vocabulary or class table")

    def __dealloc__(self):
        bpe_free(&self.core)

    @property
    def n_vocab(self) -> int:
        return self.core.count

    def count(self, str text) -> int:
        """The number of tokens tiktoken's encode_ordinary(text) returns."""
        cdef Py_ssize_t size = 0
        cdef const char *data
        cdef size_t total
        try:
            data = PyUnicode_AsUTF8AndSize(text, &size)
        except UnicodeEncodeError:
            text = _replace_surrogates(text)
            data = PyUnicode_AsUTF8AndSize(text, &size)
        total = bpe_count(&self.core, <const unsigned char *>data, size)
        if total == <size_t>-1:
            raise MemoryError()
        return total

    def encode(self, str text) -> list:
        """The token ids tiktoken's encode_ordinary(text) returns."""
        cdef Py_ssize_t size = 0
        cdef const char *data
        cdef const unsigned char *s
        cdef size_t i = 0, e, t, k
        cdef unsigned int *out
        cdef list ids = []
        try:
            data = PyUnicode_AsUTF8AndSize(text, &size)
        except UnicodeEncodeError:
            text = _replace_surrogates(text)
            data = PyUnicode_AsUTF8AndSize(text, &size)
        s = <const unsigned char *>data
        out = <unsigned int *>malloc(sizeof(unsigned int) * (size + 1))
        if out == NULL:
            raise MemoryError()
        try:
            while i < <size_t>size:
                e = bpe_next(&self.core, s, i, size)
                t = bpe_piece(&self.core, s + i, e - i, out)
                if t == <size_t>-1:
                    raise MemoryError()
                for k in range(t):
                    ids.append(out[k])
                i = e
        finally:
            free(out)
        return ids
