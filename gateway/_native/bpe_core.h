/* Exact byte-pair-encoding token counts for OpenAI's o200k_base and cl100k_base.
 *
 * Two steps, as tiktoken does them: the encoding's pre-tokenisation pattern splits the UTF-8
 * text into pieces, then each piece is merged by rank. The pattern is not run by a regex
 * engine: each encoding's alternatives are written out below as the backtracking matcher
 * would take them (leftmost alternative first, greedy quantifiers giving back one character
 * at a time, possessive ones never), over a two-stage Unicode class table that
 * scripts/export_vocab.py computes with the same properties tiktoken's regex uses.
 *
 * Merging is tiktoken's: repeatedly join the adjacent pair whose bytes have the lowest rank,
 * the leftmost on a tie. Short pieces use its quadratic scan; long ones (a hostile run of
 * one letter, say) a heap, so no input is quadratic.
 *
 * The vocabulary is an open-addressing table of 64-bit slots: a 32-bit hash tag and rank + 1.
 * Everything is read-only once built, so one table serves every thread.
 */
#ifndef GATEWAY_BPE_CORE_H
#define GATEWAY_BPE_CORE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BPE_L 1  /* \p{L} */
#define BPE_N 2  /* \p{N} */
#define BPE_S 4  /* \s (White_Space) */
#define BPE_U 8  /* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] */
#define BPE_W 16 /* [\p{Ll}\p{Lm}\p{Lo}\p{M}] */

#define BPE_CL100K 0
#define BPE_O200K 1

#define BPE_NONE UINT32_MAX
#define BPE_SMALL 96

#define BPE_CACHE 8192
#define BPE_CACHED_BYTES 15

/* Counts of recently seen short pieces, direct-mapped: a hit costs one line of a table that
 * stays in the core's cache, where the vocabulary lookup would cost up to three misses. The
 * bytes are kept, so a hit is exact; the callers hold the GIL, so entries are never torn. */
typedef struct {
    uint64_t hash;
    uint8_t len;
    uint8_t bytes[BPE_CACHED_BYTES];
    uint32_t count;
    uint32_t unused;
} bpe_cached;

typedef struct {
    const uint8_t *blob;     /* token bytes in rank order (borrowed from a bytes object) */
    uint32_t *offsets;       /* count + 1 offsets into blob */
    uint32_t count;
    uint32_t mask;
    uint64_t *slots;         /* (tag << 32) | (rank + 1); 0 is empty */
    const uint16_t *stage1;  /* 0x1100 block numbers */
    const uint8_t *stage2;   /* 256 classes per block */
    bpe_cached *cache;       /* BPE_CACHE entries: short pieces and their token counts */
    uint8_t ascii[128];
    uint32_t byte_rank[256];
    int scheme;
} bpe_t;

static inline uint64_t bpe_hash(const uint8_t *s, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n, v;
    while (n >= 8) {
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    v = 0;
    while (n > 0) {
        n--;
        v = (v << 8) | s[n];
    }
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static inline int bpe_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint64_t x, y;
    while (n >= 8) {
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y)
            return 0;
        a += 8;
        b += 8;
        n -= 8;
    }
    while (n > 0) {
        n--;
        if (a[n] != b[n])
            return 0;
    }
    return 1;
}

static inline uint32_t bpe_rank_hashed(const bpe_t *b, const uint8_t *s, size_t n, uint64_t h)
{
    uint32_t tag = (uint32_t)(h >> 32), i = (uint32_t)h & b->mask;
    for (;;) {
        uint64_t slot = b->slots[i];
        if (slot == 0)
            return BPE_NONE;
        if ((uint32_t)(slot >> 32) == tag) {
            uint32_t r = (uint32_t)slot - 1, off = b->offsets[r];
            if (b->offsets[r + 1] - off == n && bpe_equal(b->blob + off, s, n))
                return r;
        }
        i = (i + 1) & b->mask;
    }
}

static inline uint32_t bpe_rank(const bpe_t *b, const uint8_t *s, size_t n)
{
    return bpe_rank_hashed(b, s, n, bpe_hash(s, n));
}

static void bpe_free(bpe_t *b)
{
    free(b->offsets);
    free(b->slots);
    free(b->cache);
    b->offsets = NULL;
    b->slots = NULL;
    b->cache = NULL;
}

/* 0 on success, -1 on a malformed blob, -2 out of memory. */
static int bpe_init(bpe_t *b, const uint8_t *ranks, size_t ranks_len, const uint8_t *classes,
                    size_t classes_len, int scheme)
{
    uint32_t count, size = 1, off = 0, i;
    memset(b, 0, sizeof *b);
    if (ranks_len < 12 || memcmp(ranks, "GWBPE1\0\0", 8) != 0)
        return -1;
    memcpy(&count, ranks + 8, 4);
    if (count < 256 || ranks_len < 12 + (size_t)count)
        return -1;
    if (classes_len < 8 + 0x1100 * 2 || memcmp(classes, "GWCLS1\0\0", 8) != 0)
        return -1;
    b->stage1 = (const uint16_t *)(classes + 8);
    b->stage2 = classes + 8 + 0x1100 * 2;
    for (i = 0; i < 0x1100; i++)
        if (8 + 0x1100 * 2 + ((size_t)b->stage1[i] + 1) * 256 > classes_len)
            return -1;
    for (i = 0; i < 128; i++)
        b->ascii[i] = b->stage2[(size_t)b->stage1[0] * 256 + i];
    b->offsets = malloc(sizeof(uint32_t) * ((size_t)count + 1));
    if (b->offsets == NULL)
        return -2;
    for (i = 0; i < count; i++) {
        b->offsets[i] = off;
        off += ranks[12 + i];
    }
    b->offsets[count] = off;
    if (ranks_len != 12 + (size_t)count + off) {
        free(b->offsets);
        b->offsets = NULL;
        return -1;
    }
    b->blob = ranks + 12 + count;
    b->count = count;
    while (size < count * 2)
        size <<= 1;
    b->mask = size - 1;
    b->slots = calloc(size, sizeof(uint64_t));
    if (b->slots == NULL) {
        free(b->offsets);
        b->offsets = NULL;
        return -2;
    }
    b->cache = calloc(BPE_CACHE, sizeof(bpe_cached));
    if (b->cache == NULL) {
        bpe_free(b);
        return -2;
    }
    for (i = 0; i < count; i++) {
        const uint8_t *tok = b->blob + b->offsets[i];
        size_t len = b->offsets[i + 1] - b->offsets[i];
        uint64_t h = bpe_hash(tok, len);
        uint32_t j = (uint32_t)h & b->mask;
        while (b->slots[j] != 0)
            j = (j + 1) & b->mask;
        b->slots[j] = ((h >> 32) << 32) | (uint64_t)(i + 1);
    }
    for (i = 0; i < 256; i++) {
        uint8_t byte = (uint8_t)i;
        b->byte_rank[i] = bpe_rank(b, &byte, 1);
        if (b->byte_rank[i] == BPE_NONE) {
            bpe_free(b);
            return -1;
        }
    }
    b->scheme = scheme;
    return 0;
}


/* ---- pre-tokenisation ---------------------------------------------------------------- */

/* The class of the character at s[i] (valid UTF-8, i < n); *next receives the next offset. */
static inline uint8_t bpe_class(const bpe_t *b, const uint8_t *s, size_t i, size_t n,
                                size_t *next)
{
    uint8_t c = s[i];
    uint32_t cp;
    if (c < 0x80) {
        *next = i + 1;
        return b->ascii[c];
    }
    if (c < 0xE0) {
        cp = ((uint32_t)(c & 0x1F) << 6) | (s[i + 1] & 0x3F);
        *next = i + 2;
    } else if (c < 0xF0) {
        cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
        *next = i + 3;
    } else {
        cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[i + 1] & 0x3F) << 12) |
             ((uint32_t)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
        *next = i + 4;
    }
    (void)n;
    return b->stage2[(size_t)b->stage1[cp >> 8] * 256 + (cp & 0xFF)];
}

#define BPE_LOWER(c) ((c) | 0x20)

/* After an apostrophe at s[i - 1]: the length of a contraction at s[i], or 0. cl100k:
 * (?i:[sdmt]|ll|ve|re); o200k: (?i:s|t|re|ve|m|ll|d). Both are [sdmt] | ll | ve | re, and
 * case-insensitive matching also takes U+017F (long s) for s. */
static inline size_t bpe_contraction(const uint8_t *s, size_t i, size_t n)
{
    uint8_t c, d;
    if (i >= n)
        return 0;
    c = BPE_LOWER(s[i]);
    if (s[i] == 0xC5 && i + 1 < n && s[i + 1] == 0xBF)
        return 2;
    if (s[i] >= 0x80)
        return 0;
    if (c == 's' || c == 'd' || c == 'm' || c == 't')
        return 1;
    if (i + 1 >= n || s[i + 1] >= 0x80)
        return 0;
    d = BPE_LOWER(s[i + 1]);
    if ((c == 'l' && d == 'l') || (c == 'v' && d == 'e') || (c == 'r' && d == 'e'))
        return 2;
    return 0;
}

/* A run of characters whose class has any of `bits`, from i; returns its end. */
static inline size_t bpe_run(const bpe_t *b, const uint8_t *s, size_t i, size_t n, uint8_t bits)
{
    size_t next;
    while (i < n && (bpe_class(b, s, i, n, &next) & bits))
        i = next;
    return i;
}

/* A run of non-space, non-letter, non-number characters from i, then the trailing bytes
 * (CR, LF, and for o200k also '/'). */
static inline size_t bpe_punct(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    size_t next;
    while (i < n && !(bpe_class(b, s, i, n, &next) & (BPE_S | BPE_L | BPE_N)))
        i = next;
    if (b->scheme == BPE_O200K)
        while (i < n && (s[i] == '\r' || s[i] == '\n' || s[i] == '/'))
            i++;
    else
        while (i < n && (s[i] == '\r' || s[i] == '\n'))
            i++;
    return i;
}

/* The whitespace alternatives, from i (a space character). */
static inline size_t bpe_spaces(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    size_t j = i, next, last = i, chars = 0, newline_end = 0;
    while (j < n && (bpe_class(b, s, j, n, &next) & BPE_S)) {
        if (s[j] == '\r' || s[j] == '\n')
            newline_end = j + 1;
        last = j;
        chars++;
        j = next;
    }
    if (b->scheme == BPE_CL100K) {
        if (j == n)
            return n;               /* \s++$ */
        if (newline_end)
            return newline_end;     /* \s*[\r\n] */
    } else {
        if (newline_end)
            return newline_end;     /* \s*[\r\n]+ */
        if (j == n)
            return n;               /* \s+(?!\S) at the end */
    }
    if (chars >= 2)
        return last;                /* \s+(?!\S): all but the last */
    return j;                       /* \s, \s+ */
}

/* The alternatives both encodings share after their letter ones, at i: \p{N}{1,3}, then
 *  ?[^\s\p{L}\p{N}]+ with its trailing bytes (bpe_punct), then white space. c0 and c1 are
 * the classes of the characters at i and j (the next one, if j < n); k is the one after. */
static inline size_t bpe_rest(const bpe_t *b, const uint8_t *s, size_t i, size_t n, uint8_t c0,
                              uint8_t c1, size_t j, size_t k)
{
    size_t e;
    if (c0 & BPE_N) {
        if (j < n && (c1 & BPE_N)) {
            if (k < n && (bpe_class(b, s, k, n, &e) & BPE_N))
                return e;
            return k;
        }
        return j;
    }
    if (s[i] == ' ' && j < n && !(c1 & (BPE_S | BPE_L | BPE_N)))
        return bpe_punct(b, s, j, n);
    if (!(c0 & (BPE_S | BPE_L | BPE_N)))
        return bpe_punct(b, s, i, n);
    return bpe_spaces(b, s, i, n);
}

/* o200k's first alternative without its prefix: [U]*[W]+, backtracking. 0 if no match. */
static inline size_t bpe_o200k_upper_lower(const bpe_t *b, const uint8_t *s, size_t a, size_t n)
{
    size_t j = a, next, last_w_end = 0;
    uint8_t c = 0;
    while (j < n && ((c = bpe_class(b, s, j, n, &next)) & BPE_U)) {
        if (c & BPE_W)
            last_w_end = next;
        j = next;
    }
    if (j < n && (c & BPE_W))
        return bpe_run(b, s, j, n, BPE_W);
    return last_w_end;
}

#define BPE_ASCII_UPPER(c) ((uint8_t)((c) - 'A') < 26)
#define BPE_ASCII_LOWER(c) ((uint8_t)((c) - 'a') < 26)
#define BPE_ASCII_ALPHA(c) ((uint8_t)(((c) | 0x20) - 'a') < 26)

/* A prefix [^\r\n\p{L}\p{N}] that is ASCII: the common " word" and "(word" openings. */
static inline size_t bpe_ascii_start(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    uint8_t c = s[i];
    if (c < 0x80 && c != '\r' && c != '\n' && !(b->ascii[c] & (BPE_L | BPE_N)) && i + 1 < n)
        return i + 1;
    return i;
}

/* o200k's letter alternatives over ASCII letters, when the characters that decide them are
 * all ASCII; 0 when the general matcher must decide. */
static inline size_t bpe_o200k_ascii(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    size_t a = bpe_ascii_start(b, s, i, n), e;
    if (!BPE_ASCII_ALPHA(s[a]))
        return 0;
    e = a;
    while (e < n && BPE_ASCII_UPPER(s[e]))
        e++;
    while (e < n && BPE_ASCII_LOWER(s[e]))
        e++;
    if (e < n && (s[e] >= 0x80 || s[e] == '\''))
        return 0;
    return e;
}

static size_t bpe_next_o200k(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    size_t j, k = 0, e = bpe_o200k_ascii(b, s, i, n);
    if (e)
        return e;
    uint8_t c0 = bpe_class(b, s, i, n, &j), c1 = 0;
    int prefix = !(c0 & (BPE_L | BPE_N)) && s[i] != '\r' && s[i] != '\n';
    if (j < n)
        c1 = bpe_class(b, s, j, n, &k);
    /* [^\r\n\p{L}\p{N}]?[U]*[W]+(?i:'s|'t|'re|'ve|'m|'ll|'d)? */
    e = (prefix && j < n) ? bpe_o200k_upper_lower(b, s, j, n) : 0;
    if (e == 0)
        e = bpe_o200k_upper_lower(b, s, i, n);
    if (e == 0) {
        /* [^\r\n\p{L}\p{N}]?[U]+[W]*(?i:...)? */
        if (prefix && j < n && (c1 & BPE_U))
            e = bpe_run(b, s, bpe_run(b, s, j, n, BPE_U), n, BPE_W);
        else if (c0 & BPE_U)
            e = bpe_run(b, s, bpe_run(b, s, i, n, BPE_U), n, BPE_W);
    }
    if (e) {
        size_t tail = (e < n && s[e] == '\'') ? bpe_contraction(s, e + 1, n) : 0;
        return tail ? e + 1 + tail : e;
    }
    return bpe_rest(b, s, i, n, c0, c1, j, k);
}

static size_t bpe_next_cl100k(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    size_t j, k = 0, e;
    if (s[i] != '\'') { /* [^\r\n\p{L}\p{N}]?+\p{L}++ over ASCII letters */
        e = bpe_ascii_start(b, s, i, n);
        if (BPE_ASCII_ALPHA(s[e])) {
            while (e < n && BPE_ASCII_ALPHA(s[e]))
                e++;
            if (e == n || s[e] < 0x80)
                return e;
        }
    }
    uint8_t c0 = bpe_class(b, s, i, n, &j), c1 = 0;
    if (j < n)
        c1 = bpe_class(b, s, j, n, &k);
    /* '(?i:[sdmt]|ll|ve|re) */
    if (s[i] == '\'' && (e = bpe_contraction(s, j, n)) != 0)
        return j + e;
    /* [^\r\n\p{L}\p{N}]?+\p{L}++ */
    if (c0 & BPE_L)
        return bpe_run(b, s, j, n, BPE_L);
    if (!(c0 & BPE_N) && s[i] != '\r' && s[i] != '\n' && j < n && (c1 & BPE_L))
        return bpe_run(b, s, k, n, BPE_L);
    return bpe_rest(b, s, i, n, c0, c1, j, k);
}

/* ---- merging ------------------------------------------------------------------------- */

static inline uint32_t bpe_span(const bpe_t *b, const uint8_t *p, uint32_t from, uint32_t to)
{
    return bpe_rank(b, p + from, to - from);
}

/* tiktoken's scan, for pieces of at most BPE_SMALL bytes. */
static size_t bpe_merge_small(const bpe_t *b, const uint8_t *p, size_t n, uint32_t *out)
{
    uint32_t start[BPE_SMALL + 1], rank[BPE_SMALL + 1];
    size_t m = n + 1, i, best;
    uint32_t min;
    for (i = 0; i + 1 < n; i++) {
        start[i] = (uint32_t)i;
        rank[i] = bpe_span(b, p, (uint32_t)i, (uint32_t)i + 2);
    }
    start[n - 1] = (uint32_t)n - 1;
    rank[n - 1] = BPE_NONE;
    start[n] = (uint32_t)n;
    rank[n] = BPE_NONE;
    for (;;) {
        min = BPE_NONE;
        best = 0;
        for (i = 0; i + 1 < m; i++)
            if (rank[i] < min) {
                min = rank[i];
                best = i;
            }
        if (min == BPE_NONE)
            break;
        if (best > 0)
            rank[best - 1] = best + 2 < m ? bpe_span(b, p, start[best - 1], start[best + 2]) : BPE_NONE;
        rank[best] = best + 3 < m ? bpe_span(b, p, start[best], start[best + 3]) : BPE_NONE;
        memmove(start + best + 1, start + best + 2, (m - best - 2) * sizeof(uint32_t));
        memmove(rank + best + 1, rank + best + 2, (m - best - 2) * sizeof(uint32_t));
        m--;
    }
    if (out != NULL)
        for (i = 0; i + 1 < m; i++)
            out[i] = bpe_span(b, p, start[i], start[i + 1]);
    return m - 1;
}

typedef struct {
    uint32_t rank, start, node, stamp;
} bpe_entry;

static inline int bpe_before(const bpe_entry *x, const bpe_entry *y)
{
    return x->rank < y->rank || (x->rank == y->rank && x->start < y->start);
}

static void bpe_push(bpe_entry *heap, size_t *size, bpe_entry e)
{
    size_t i = (*size)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bpe_before(&e, &heap[parent]))
            break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = e;
}

static bpe_entry bpe_pop(bpe_entry *heap, size_t *size)
{
    bpe_entry top = heap[0], last = heap[--(*size)];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *size)
            break;
        if (child + 1 < *size && bpe_before(&heap[child + 1], &heap[child]))
            child++;
        if (!bpe_before(&heap[child], &last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*size > 0)
        heap[i] = last;
    return top;
}

/* The same merges with a heap and a linked list: O(n log n). Returns (size_t)-1 when out of
 * memory. Node k starts at byte k; next/prev link the live parts; rank[k] is the rank of part
 * k joined with its successor, stamp[k] counts its updates so stale heap entries are skipped. */
static size_t bpe_merge_heap(const bpe_t *b, const uint8_t *p, size_t n, uint32_t *out)
{
    uint32_t *next = malloc(sizeof(uint32_t) * (n + 1) * 4);
    bpe_entry *heap = malloc(sizeof(bpe_entry) * (n * 3 + 1));
    uint32_t *prev, *rank, *stamp, k, count = (uint32_t)n;
    size_t size = 0;
    if (next == NULL || heap == NULL) {
        free(next);
        free(heap);
        return (size_t)-1;
    }
    prev = next + (n + 1);
    rank = prev + (n + 1);
    stamp = rank + (n + 1);
    for (k = 0; k <= n; k++) {
        next[k] = k + 1;
        prev[k] = k ? k - 1 : BPE_NONE;
        stamp[k] = 0;
        rank[k] = (k + 2 <= n) ? bpe_span(b, p, k, k + 2) : BPE_NONE;
        if (rank[k] != BPE_NONE) {
            bpe_entry e = {rank[k], k, k, 0};
            bpe_push(heap, &size, e);
        }
    }
    while (size > 0) {
        bpe_entry e = bpe_pop(heap, &size);
        uint32_t a = e.node, c, d;
        if (stamp[a] != e.stamp || rank[a] != e.rank || next[a] > n)
            continue;
        c = next[a];     /* merged into a */
        d = next[c];     /* a's new successor */
        next[a] = d;
        if (d <= n)
            prev[d] = a;
        count--;
        stamp[c] = UINT32_MAX; /* dead */
        rank[c] = BPE_NONE;
        stamp[a]++;
        rank[a] = (d < n) ? bpe_span(b, p, a, next[d]) : BPE_NONE;
        if (rank[a] != BPE_NONE) {
            bpe_entry f = {rank[a], a, a, stamp[a]};
            bpe_push(heap, &size, f);
        }
        if (prev[a] != BPE_NONE) {
            uint32_t z = prev[a];
            stamp[z]++;
            rank[z] = bpe_span(b, p, z, d);
            if (rank[z] != BPE_NONE) {
                bpe_entry f = {rank[z], z, z, stamp[z]};
                bpe_push(heap, &size, f);
            }
        }
    }
    if (out != NULL) {
        size_t i = 0;
        for (k = 0; k < n; k = next[k])
            out[i++] = bpe_span(b, p, k, next[k]);
    }
    free(next);
    free(heap);
    return count;
}

/* The tokens of one piece; out (room for n ranks) receives them when not NULL. */
static inline size_t bpe_piece(const bpe_t *b, const uint8_t *p, size_t n, uint32_t *out)
{
    uint32_t r;
    if (n == 1) {
        if (out != NULL)
            out[0] = b->byte_rank[p[0]];
        return 1;
    }
    r = bpe_rank(b, p, n);
    if (r != BPE_NONE) {
        if (out != NULL)
            out[0] = r;
        return 1;
    }
    if (n <= BPE_SMALL)
        return bpe_merge_small(b, p, n, out);
    return bpe_merge_heap(b, p, n, out);
}

static inline size_t bpe_next(const bpe_t *b, const uint8_t *s, size_t i, size_t n)
{
    return b->scheme == BPE_O200K ? bpe_next_o200k(b, s, i, n) : bpe_next_cl100k(b, s, i, n);
}

static inline size_t bpe_count_piece(const bpe_t *b, const uint8_t *p, size_t n)
{
    uint64_t h;
    uint32_t r;
    bpe_cached *c;
    size_t t;
    if (n == 1)
        return 1;
    if (n > BPE_CACHED_BYTES)
        return bpe_piece(b, p, n, NULL);
    h = bpe_hash(p, n);
    c = &b->cache[h & (BPE_CACHE - 1)];
    if (c->hash == h && c->len == n && bpe_equal(c->bytes, p, n))
        return c->count;
    r = bpe_rank_hashed(b, p, n, h);
    t = r != BPE_NONE ? 1 : bpe_merge_small(b, p, n, NULL);
    c->hash = h;
    c->len = (uint8_t)n;
    memcpy(c->bytes, p, n);
    c->count = (uint32_t)t;
    return t;
}

/* Tokens in s[0:n]; (size_t)-1 when out of memory. */
static size_t bpe_count(const bpe_t *b, const uint8_t *s, size_t n)
{
    size_t i = 0, total = 0;
    while (i < n) {
        size_t e = bpe_next(b, s, i, n), t = bpe_count_piece(b, s + i, e - i);
        if (t == (size_t)-1)
            return t;
        total += t;
        i = e;
    }
    return total;
}

#endif
