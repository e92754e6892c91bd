"""Guarded streams: a hold-back window per text (a choice's content, a tool call's arguments,
an Anthropic content block), so that masking a stream gives exactly what masking the whole
text gives, for every chunking.

Text is released only up to `window` characters before the end of what has arrived, never in
the middle of a word (a run without whitespace) and never inside a finding; an open PEM block
is held until its END line (or the validator's cap). The validators read at most CONTEXT
characters before a span, kept from what was already sent, and LOOKAHEAD after it, which the
window covers. A block ends the text; nothing held is sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.guardrails.detector import Finding, Numbering, mask
from gateway.guardrails.policy import Guardrail
from gateway.guardrails.report import Report
from gateway.guardrails.validate import CONTEXT

_MIN_RELEASE = 16  # characters gathered past the window before a scan releases them


class HoldBack:
    __slots__ = (
        "_context",
        "_guardrails",
        "_numbering",
        "_pending",
        "_report",
        "_next_scan",
        "_sent",
        "_window",
        "blocked",
    )

    def __init__(
        self, guardrails: Sequence[Guardrail], numbering: Numbering, report: Report, window: int
    ) -> None:
        self._guardrails = guardrails
        self._numbering = numbering
        self._report = report
        self._window = window
        self._pending = ""
        self._context = ""  # the last CONTEXT characters already released, as they were
        self._sent = 0  # characters released so far (offsets in the log are in the whole text)
        self._next_scan = window + _MIN_RELEASE  # pending length that triggers the next scan
        self.blocked: tuple[Guardrail, Finding] | None = None

    def feed(self, text: str) -> str:
        if self.blocked is not None:
            return ""
        self._pending += text
        if len(self._pending) < self._next_scan:
            return ""
        out = self._release(final=False)
        # Held text (an open PEM block, a long word) is scanned again only once it has grown by
        # a quarter: a long held run costs O(n log n) scanning, not one rescan per chunk.
        held = len(self._pending)
        self._next_scan = max(self._window + _MIN_RELEASE, held + held // 4)
        return out

    def finish(self) -> str:
        if self.blocked is not None or not self._pending:
            return ""
        return self._release(final=True)

    def _release(self, final: bool) -> str:
        buf = self._context + self._pending
        off = len(self._context)
        found: list[tuple[Guardrail, Finding]] = []
        for g in self._guardrails:
            for f in g.detector.find(buf, cache=False):
                if f.end > off:
                    found.append((g, f))
        cut = len(buf) if final else self._cut(buf, off, found)
        if cut <= off:
            return ""
        spans: list[Finding] = []
        shift = self._sent - off  # offsets in the log are in the whole text
        for g in self._guardrails:
            released = [f for owner, f in found if owner is g and f.end <= cut]
            blocking, masked = g.decide(released, buf, "output", self._report, "stream", shift)
            if blocking is not None:
                self.blocked = (g, blocking)
                self._pending = ""
                return ""
            spans.extend(f for f in masked if f.start >= off)
        text = buf[:cut]
        if spans:
            spans.sort(key=lambda f: f.start)
            out = mask(text, spans, self._numbering)[off:]  # the prefix was sent already
        else:
            out = text[off:]
        self._context = text[-CONTEXT:]
        self._pending = buf[cut:]
        self._sent += cut - off
        return out

    def _cut(self, buf: str, off: int, found: list[tuple[Guardrail, Finding]]) -> int:
        cut = len(buf) - self._window
        while cut > off and not (buf[cut - 1].isspace() or buf[cut].isspace()):
            cut -= 1
        moved = True
        while moved:
            moved = False
            for _, f in found:
                if f.start < cut < f.end:
                    cut = f.start
                    moved = True
        return cut
