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
        released = [(g, f) for g, f in found if f.end <= cut]
        for g, f in released:
            action = g.action(f.kind)
            where = f"stream:{self._sent + f.start - off}"
            self._report.add(g, f.kind, action, "output", where, buf[f.start : f.end])
            if action == "block" and g.mode == "enforce":
                self.blocked = (g, f)
                self._pending = ""
                return ""
        text = buf[:cut]
        spans = [
            f
            for g, f in released
            if f.start >= off and g.action(f.kind) == "mask" and g.mode == "enforce"
        ]
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
