"""Exact BPE token counts for o200k_base and cl100k_base, in pure Python: the specification of
the compiled _bpe_c (bpe_core.h), which must agree with it exactly, and the build
GATEWAY_NO_EXTENSIONS=1 selects.

Pre-tokenisation is each encoding's pattern written out as a backtracking regex engine would
take it, over the Unicode class table in gateway/metering/data/classes.bin; merging is
tiktoken's (lowest rank first, leftmost on a tie), with a heap for long pieces.
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable

LETTER, NUMBER, SPACE, UPPERISH, LOWERISH = 1, 2, 4, 8, 16
SMALL = 96
NONE = 1 << 32
_CR_LF = "\r\n"


def _replace_surrogates(text: str) -> str:
    # tiktoken's own rule for strings that are not valid Unicode (lone surrogates).
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Encoding:
    """An encoding's vocabulary and pattern: `Encoding(ranks, classes, "o200k_base")`."""

    def __init__(self, ranks: bytes, classes: bytes, name: str) -> None:
        if name not in ("o200k_base", "cl100k_base"):
            raise ValueError(f"unknown encoding {name!r}")
        if ranks[:8] != b"GWBPE1\0\0" or classes[:8] != b"GWCLS1\0\0":
            raise ValueError("malformed vocabulary or class table")
        (count,) = struct.unpack_from("<I", ranks, 8)
        lengths = ranks[12 : 12 + count]
        if len(ranks) != 12 + count + sum(lengths):
            raise ValueError("malformed vocabulary or class table")
        self.name = name
        self.n_vocab = count
        self._ranks: dict[bytes, int] = {}
        offset = 12 + count
        for rank, length in enumerate(lengths):
            self._ranks[ranks[offset : offset + length]] = rank
            offset += length
        self._stage1 = struct.unpack_from("<4352H", classes, 8)
        self._stage2 = classes[8 + 4352 * 2 :]
        self._o200k = name == "o200k_base"
        self._next: Callable[[str, list[int], int, int], int] = (
            self._next_o200k if self._o200k else self._next_cl100k
        )

    # -- pre-tokenisation -----------------------------------------------------------------

    def _classes(self, text: str) -> list[int]:
        stage1, stage2 = self._stage1, self._stage2
        return [stage2[stage1[cp >> 8] * 256 + (cp & 0xFF)] for cp in map(ord, text)]

    def pieces(self, text: str) -> list[str]:
        try:
            text.encode()
        except UnicodeEncodeError:
            text = _replace_surrogates(text)
        cls, i, n, out = self._classes(text), 0, len(text), []
        while i < n:
            e = self._next(text, cls, i, n)
            out.append(text[i:e])
            i = e
        return out

    @staticmethod
    def _run(cls: list[int], i: int, n: int, bits: int) -> int:
        while i < n and cls[i] & bits:
            i += 1
        return i

    @staticmethod
    def _contraction(text: str, i: int, n: int) -> int:
        """After an apostrophe, at i: [sdmt] | ll | ve | re, case-insensitively (U+017F, the
        long s, folds to s). The length, or 0."""
        if i >= n:
            return 0
        c = text[i]
        if c == "\u017f" or c.lower() in ("s", "d", "m", "t") and c.isascii():
            return 1
        if (
            i + 1 < n
            and text[i : i + 2].isascii()
            and text[i : i + 2].lower() in ("ll", "ve", "re")
        ):
            return 2
        return 0

    def _punct(self, text: str, cls: list[int], i: int, n: int) -> int:
        """[^\\s\\p{L}\\p{N}]+ then CR/LF (and '/' for o200k)."""
        while i < n and not cls[i] & (SPACE | LETTER | NUMBER):
            i += 1
        tail = "\r\n/" if self._o200k else _CR_LF
        while i < n and text[i] in tail:
            i += 1
        return i

    def _spaces(self, text: str, cls: list[int], i: int, n: int) -> int:
        j, newline_end = i, 0
        while j < n and cls[j] & SPACE:
            if text[j] in _CR_LF:
                newline_end = j + 1
            j += 1
        if self._o200k:
            if newline_end:
                return newline_end  # \s*[\r\n]+
            if j == n:
                return n  # \s+(?!\S) at the end
        else:
            if j == n:
                return n  # \s++$
            if newline_end:
                return newline_end  # \s*[\r\n]
        if j - i >= 2:
            return j - 1  # \s+(?!\S): all but the last
        return j  # \s, \s+

    @staticmethod
    def _upper_lower(cls: list[int], a: int, n: int) -> int:
        """[U]*[W]+ from a, backtracking; 0 when it cannot match."""
        j, last_w_end = a, 0
        while j < n and cls[j] & UPPERISH:
            if cls[j] & LOWERISH:
                last_w_end = j + 1
            j += 1
        if j < n and cls[j] & LOWERISH:
            while j < n and cls[j] & LOWERISH:
                j += 1
            return j
        return last_w_end

    def _next_o200k(self, text: str, cls: list[int], i: int, n: int) -> int:
        c0 = cls[i]
        prefix = not c0 & (LETTER | NUMBER) and text[i] not in _CR_LF
        c1 = cls[i + 1] if i + 1 < n else 0
        e = self._upper_lower(cls, i + 1, n) if prefix and i + 1 < n else 0
        if e == 0:
            e = self._upper_lower(cls, i, n)
        if e == 0:
            if prefix and i + 1 < n and c1 & UPPERISH:
                e = self._run(cls, self._run(cls, i + 1, n, UPPERISH), n, LOWERISH)
            elif c0 & UPPERISH:
                e = self._run(cls, self._run(cls, i, n, UPPERISH), n, LOWERISH)
        if e:
            if e < n and text[e] == "'":
                length = self._contraction(text, e + 1, n)
                if length:
                    e += 1 + length
            return e
        return self._rest(text, cls, i, n, c0, c1)

    def _next_cl100k(self, text: str, cls: list[int], i: int, n: int) -> int:
        c0 = cls[i]
        c1 = cls[i + 1] if i + 1 < n else 0
        if text[i] == "'":
            length = self._contraction(text, i + 1, n)
            if length:
                return i + 1 + length
        if c0 & LETTER:
            return self._run(cls, i + 1, n, LETTER)
        if not c0 & NUMBER and text[i] not in _CR_LF and i + 1 < n and c1 & LETTER:
            return self._run(cls, i + 2, n, LETTER)
        return self._rest(text, cls, i, n, c0, c1)

    def _rest(self, text: str, cls: list[int], i: int, n: int, c0: int, c1: int) -> int:  # noqa: PLR0913
        """The alternatives both encodings share after their letter ones."""
        if c0 & NUMBER:  # \p{N}{1,3}
            j = i + 1
            while j < n and j < i + 3 and cls[j] & NUMBER:
                j += 1
            return j
        if text[i] == " " and i + 1 < n and not c1 & (SPACE | LETTER | NUMBER):
            return self._punct(text, cls, i + 1, n)
        if not c0 & (SPACE | LETTER | NUMBER):
            return self._punct(text, cls, i, n)
        return self._spaces(text, cls, i, n)

    # -- merging ----------------------------------------------------------------------------

    def _merge(self, piece: bytes) -> list[int]:
        """The boundaries of piece's tokens after tiktoken's merges."""
        ranks, n = self._ranks, len(piece)
        if n > SMALL:
            return self._merge_heap(piece)
        starts = list(range(n + 1))
        rank = [ranks.get(piece[i : i + 2], NONE) for i in range(n - 1)] + [NONE, NONE]
        while True:
            best = min(range(len(starts) - 1), key=rank.__getitem__)
            if rank[best] == NONE:
                break
            m = len(starts)
            if best > 0:
                rank[best - 1] = (
                    ranks.get(piece[starts[best - 1] : starts[best + 2]], NONE)
                    if best + 2 < m
                    else NONE
                )
            rank[best] = (
                ranks.get(piece[starts[best] : starts[best + 3]], NONE) if best + 3 < m else NONE
            )
            del starts[best + 1], rank[best + 1]
        return starts

    def _merge_heap(self, piece: bytes) -> list[int]:
        ranks, n = self._ranks, len(piece)
        nxt = list(range(1, n + 2))
        prev = [-1, *range(n)]
        rank = [ranks.get(piece[k : k + 2], NONE) if k + 2 <= n else NONE for k in range(n + 1)]
        heap = [(r, k) for k, r in enumerate(rank) if r != NONE]
        heapq.heapify(heap)
        alive = [True] * (n + 1)
        while heap:
            r, a = heapq.heappop(heap)
            if not alive[a] or rank[a] != r:
                continue
            c = nxt[a]
            d = nxt[c]
            nxt[a] = d
            if d <= n:
                prev[d] = a
            alive[c] = False
            rank[a] = ranks.get(piece[a : nxt[d]], NONE) if d < n else NONE
            if rank[a] != NONE:
                heapq.heappush(heap, (rank[a], a))
            z = prev[a]
            if z >= 0:
                rank[z] = ranks.get(piece[z:d], NONE)
                if rank[z] != NONE:
                    heapq.heappush(heap, (rank[z], z))
        starts, k = [], 0
        while k <= n:
            starts.append(k)
            k = nxt[k]
        return starts

    def _piece_ids(self, piece: bytes) -> list[int]:
        rank = self._ranks.get(piece)
        if rank is not None:
            return [rank]
        starts = self._merge(piece)
        return [self._ranks[piece[a:b]] for a, b in zip(starts, starts[1:], strict=False)]

    # -- the API ----------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The token ids tiktoken's encode_ordinary(text) returns."""
        ids: list[int] = []
        for piece in self.pieces(text):
            ids.extend(self._piece_ids(piece.encode()))
        return ids

    def count(self, text: str) -> int:
        """The number of tokens tiktoken's encode_ordinary(text) returns."""
        ranks, total = self._ranks, 0
        for piece in self.pieces(text):
            data = piece.encode()
            total += 1 if data in ranks else len(self._merge(data)) - 1
        return total
