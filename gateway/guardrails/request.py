"""The input side: scan what the provider would see, mask or refuse, cap the answer's length,
and ask for citations; the body is rewritten (and its view decoded again) only when changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import ContentBlocked, InvalidRequest
from gateway.guardrails.detector import Finding, Numbering, mask
from gateway.guardrails.policy import Guardrail
from gateway.guardrails.report import Report
from gateway.guardrails.texts import Slot, decode, encode, request_slots
from gateway.metering.tokens import count_request
from gateway.providers.base import Endpoint

CITATION_INSTRUCTION = (
    "Cite the sources of your answer: a URL, or a bracketed reference such as [1] to a source "
    "you were given."
)


def blocked(guardrail: Guardrail, kind: str, where: str) -> ContentBlocked:
    err = ContentBlocked(
        f"Blocked by guardrail '{guardrail.name}': {kind} in {where}",
        param=where,
        headers={"x-gateway-guardrails": f"{guardrail.name}; action=block; kinds={kind}"},
    )
    err.status = guardrail.block_status
    return err


class RequestGuard:
    """One request's input pass over the guardrails that apply to it."""

    __slots__ = ("_doc", "_endpoint", "_numbering", "_report", "_slots", "_tokens", "changed")

    def __init__(self, endpoint: Endpoint, numbering: Numbering, report: Report) -> None:
        self._endpoint = endpoint
        self._numbering = numbering
        self._report = report
        self._doc: Any = None
        self._slots: list[Slot] | None = None
        self.changed = False
        self._tokens: int | None = None  # the body's count, once a guardrail needed it

    def run(self, raw: bytes, model: str, guardrails: Sequence[Guardrail]) -> bytes:
        for g in guardrails:
            if g.input:
                if g.max_tokens is not None:
                    self._count(raw, model, g)
                if g.scans and g.detector.quick(raw):
                    self._load(raw)
                    self._scan(g)
            if g.output:
                if g.max_tokens is not None:
                    self._load(raw)
                    self._cap(g)
                if g.require_citation:
                    self._load(raw)
                    self._ask_citation()
        return encode(self._doc) if self.changed else raw

    def _scan(self, g: Guardrail) -> None:
        for slot in self._all_slots():
            text = slot.text
            findings = g.detector.find(text)
            if findings:
                self._act(g, slot, text, findings)

    def _act(self, g: Guardrail, slot: Slot, text: str, findings: Sequence[Finding]) -> None:
        blocking, spans = g.decide(findings, text, "input", self._report, slot.path)
        if blocking is not None:
            raise blocked(g, blocking.kind, slot.path)
        if spans:
            slot.text = mask(text, spans, self._numbering)
            self.changed = True

    def texts(self, raw: bytes) -> list[str]:
        """Every text the provider will see, as the guardrails left them."""
        self._load(raw)
        return [slot.text for slot in self._all_slots()]

    def _all_slots(self) -> list[Slot]:
        if self._slots is None:
            self._slots = list(request_slots(self._endpoint, self._doc))
        return self._slots

    def _load(self, raw: bytes) -> None:
        if self._doc is None:
            self._doc = decode(raw)

    def _count(self, raw: bytes, model: str, g: Guardrail) -> None:
        assert g.max_tokens is not None
        if self._tokens is None:
            self._tokens = count_request(raw, model)[0]
        tokens = self._tokens
        if tokens > g.max_tokens:
            self._report.add(g, "max_tokens", "block", "input")
            if g.mode == "enforce":
                raise InvalidRequest(
                    f"Blocked by guardrail '{g.name}': the input is {tokens} tokens, over its"
                    f" limit of {g.max_tokens}.",
                    param="messages",
                    code="guardrail_max_tokens",
                )

    def _cap(self, g: Guardrail) -> None:
        doc = self._doc
        if not isinstance(doc, dict) or self._endpoint is Endpoint.EMBEDDINGS:
            return
        cap = g.max_tokens
        assert cap is not None
        fields = [f for f in ("max_completion_tokens", "max_tokens") if isinstance(doc.get(f), int)]
        if not fields:
            doc["max_tokens"] = cap
            self.changed = True
            return
        for field in fields:
            if doc[field] > cap:
                if g.over_max_tokens == "refuse" and g.mode == "enforce":
                    raise InvalidRequest(
                        f"Blocked by guardrail '{g.name}': {field} may be at most {cap}.",
                        param=field,
                        code="guardrail_max_tokens",
                    )
                self._report.add(g, "max_tokens", "flag", "output")
                if g.mode == "enforce":
                    doc[field] = cap
                    self.changed = True

    def _ask_citation(self) -> None:
        doc = self._doc
        if not isinstance(doc, dict):
            return
        if self._endpoint is Endpoint.CHAT and isinstance(doc.get("messages"), list):
            doc["messages"].insert(0, {"role": "system", "content": CITATION_INSTRUCTION})
            self._slots = None
            self.changed = True
        elif self._endpoint is Endpoint.MESSAGES:
            system = doc.get("system")
            if isinstance(system, list):
                system.append({"type": "text", "text": CITATION_INSTRUCTION})
            else:
                doc["system"] = (
                    f"{system}\n\n{CITATION_INSTRUCTION}" if system else CITATION_INSTRUCTION
                )
            self._slots = None
            self.changed = True
