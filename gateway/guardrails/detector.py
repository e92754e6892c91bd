"""One guardrail's detector: its kinds' patterns in one compiled engine, then validation,
allowlists and overlap resolution; and masking with stable placeholders.

`quick(body)` runs on a request or response body as it arrived (JSON bytes): False means no
pattern matches anywhere in it, so nothing is decoded or walked (the cost of a clean request).
JSON escapes could hide a match from that pass (`\\u0040` for `@`, `\\/` inside a base64
secret), so a body with either is always decoded. `find(text)` gives the validated findings.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from gateway._native.scan import BACKEND, Engine, Pattern, maybe
from gateway.guardrails.fold import fold, needs_folding
from gateway.guardrails.kinds import FORMS, KINDS, SECRETS
from gateway.guardrails.validate import VALIDATORS, Span, Validator

# The compiled build checks every built-in kind's necessary condition in one C pass before
# Hyperscan; in the twin that pass is a regex as slow as the triggers it would save.
PREFILTER: Callable[[str | bytes], bool] | None = None if BACKEND == "re" else maybe
_CACHE_ENTRIES = 4096
_CACHE_MIN_CHARS = 64  # shorter texts are rescanned: cheaper than the cache's bookkeeping


class Finding(NamedTuple):
    kind: str
    start: int  # character offsets in the scanned text
    end: int


class CustomKind(NamedTuple):
    """An operator's regex, or a keyword list (whole words, any case)."""

    name: str
    regex: str | None = None
    words: tuple[str, ...] = ()
    context: Validator | None = None  # topics: exceptions and proximity, read around the match
    caseless: bool = False
    folded: bool = False  # also matched in the text's folded form (fold.py): topics


def _keyword_edges(text: str, start: int, end: int, form: str) -> Span:
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        return None
    if end < len(text) and (text[end].isalnum() or text[end] == "_"):
        return None
    return start, end


def _accept(text: str, start: int, end: int, form: str) -> Span:
    return start, end


@functools.lru_cache(maxsize=64)
def _compiled(engine: Callable[[list[Pattern]], Engine], patterns: tuple[Pattern, ...]) -> Engine:
    """One compiled engine per set of patterns, shared by every detector that has that set:
    a Hyperscan database takes ~0.3 s to compile, and a config reload rebuilds every
    guardrail (server/reload.py compiles changed ones in a thread first). Engines hold no
    per-scan state, and scans run on the event loop's thread only."""
    return engine(list(patterns))


class Detector:
    __slots__ = (
        "_allow",
        "_allow_patterns",
        "_cache",
        "_engine",
        "_folded",
        "_forms",
        "_maybe",
        "kinds",
    )

    def __init__(
        self,
        kinds: Iterable[str] = KINDS,
        custom: Sequence[CustomKind] = (),
        allow: Sequence[str] = (),
        allow_patterns: Sequence[str] = (),
        engine: Callable[[list[Pattern]], Engine] = Engine,
        prefilter: Callable[[str | bytes], bool] | None = PREFILTER,
    ) -> None:
        wanted = set(kinds)
        unknown = wanted - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kinds: {', '.join(sorted(unknown))}")
        forms: list[tuple[str, str, Validator]] = []
        patterns: list[Pattern] = []
        for form in FORMS:
            if form.kind in wanted:
                forms.append((form.kind, form.form, VALIDATORS[form.kind]))
                patterns.append(form.pattern)
        for kind in custom:
            if kind.regex is not None:
                patterns.append(Pattern(kind.regex, (), kind.caseless))
                forms.append((kind.name, "regex", kind.context or _accept))
            if kind.words:
                words = "|".join(_word_source(w) for w in kind.words)
                patterns.append(Pattern(f"(?:{words})", tuple(w.lower() for w in kind.words), True))
                forms.append((kind.name, "words", kind.context or _keyword_edges))
        self.kinds = frozenset(wanted | {k.name for k in custom})
        self._folded = frozenset(k.name for k in custom if k.folded)
        # Built-in kinds only: their necessary conditions, checked first in one cheap pass.
        self._maybe = None if custom else prefilter
        self._forms = forms
        try:
            self._engine = _compiled(engine, tuple(patterns))
        except Exception as err:  # noqa: BLE001 - either engine's compile error, for the config
            raise ValueError(f"a pattern does not compile: {err}") from None
        self._allow = frozenset(v.lower() for v in allow)
        self._allow_patterns = [re.compile(p) for p in allow_patterns]
        self._cache: dict[str, tuple[Finding, ...]] = {}

    def quick(self, body: bytes) -> bool:
        if body.find(b"\\u") >= 0 or body.find(b"\\/") >= 0:
            return True
        if self._maybe is not None and not self._maybe(body):
            return False
        return self._engine.any(body)

    def find(self, text: str, cache: bool = True) -> tuple[Finding, ...]:
        """Validated findings, in order. `cache`: remember the verdict by content (a long
        conversation's history is scanned once, not on every turn)."""
        cacheable = cache and len(text) >= _CACHE_MIN_CHARS
        if cacheable:
            hit = self._cache.get(text)
            if hit is not None:
                return hit
        found = self._find(text)
        if cacheable:
            verdicts = self._cache
            if len(verdicts) >= _CACHE_ENTRIES:
                del verdicts[next(iter(verdicts))]
            verdicts[text] = found
        return found

    def _find(self, text: str) -> tuple[Finding, ...]:
        found = self._validated(text)
        if self._folded and needs_folding(text):
            # Topics also in the folded text ("h0w to bu1ld a b0mb", fullwidth letters), their
            # spans mapped back onto the text as it was.
            have = {f.kind for f in found}
            folded, origin = fold(text)
            for f in self._validated(folded):
                if f.kind in self._folded and f.kind not in have:
                    found.append(Finding(f.kind, origin[f.start], origin[f.end - 1] + 1))
        return _resolve(found)

    def _validated(self, text: str) -> list[Finding]:
        if self._maybe is not None and not self._maybe(text):
            return []
        raw = self._engine.candidates(text)
        if not raw:
            return []
        forms = self._forms
        found: list[Finding] = []
        for ident, start, end in raw:
            kind, form, validator = forms[ident]
            span = validator(text, start, end, form)
            if span is None:
                continue
            value = text[span[0] : span[1]]
            if self._allowed(value):
                continue
            found.append(Finding(kind, span[0], span[1]))
        return found

    def _allowed(self, value: str) -> bool:
        if value.lower() in self._allow:
            return True
        return any(p.fullmatch(value) for p in self._allow_patterns)


def _word_source(word: str) -> str:
    return "".join(ch if ch.isalnum() else "\\" + ch if ch.isascii() else ch for ch in word)


def _rank(f: Finding) -> tuple[int, int]:
    return (1 if f.kind in SECRETS else 0, f.end - f.start)


def _resolve(found: list[Finding]) -> tuple[Finding, ...]:
    """Overlaps: one kind's pieces join; across kinds a secret wins, then the longer."""
    if len(found) < 2:
        return tuple(found)
    found.sort(key=lambda f: (f.start, -f.end))
    out: list[Finding] = []
    for f in found:
        if out and f.start < out[-1].end:
            last = out[-1]
            if f.kind == last.kind:
                out[-1] = Finding(last.kind, last.start, max(last.end, f.end))
            elif _rank(f) > _rank(last):
                out[-1] = f
            continue
        out.append(f)
    return tuple(out)


Numbering = dict[tuple[str, str], str]  # (kind, value) -> placeholder, for one request


def placeholder(numbering: Numbering, kind: str, value: str) -> str:
    key = (kind, value)
    token = numbering.get(key)
    if token is None:
        count = 1 + sum(1 for k, _ in numbering if k == kind)
        token = f"[{kind.upper()}_{count}]"
        numbering[key] = token
    return token


def mask(
    text: str,
    findings: Sequence[Finding],
    numbering: Numbering,
    masked: Callable[[str], bool] = lambda kind: True,
) -> str:
    """The text with each finding whose kind `masked` answers True replaced by its placeholder."""
    parts: list[str] = []
    at = 0
    for f in findings:
        if not masked(f.kind):
            continue
        parts.append(text[at : f.start])
        parts.append(placeholder(numbering, f.kind, text[f.start : f.end]))
        at = f.end
    if not parts:
        return text
    parts.append(text[at:])
    return "".join(parts)
