"""A policy tried on a text without any provider: `POST /admin/guardrails/check` and
`gateway guardrails check FILE` answer the same verdict, spans and masked text."""

from __future__ import annotations

from functools import cache
from typing import Any

from gateway.config.guardrails import GuardrailCfg
from gateway.guardrails.detector import mask
from gateway.guardrails.policy import Guardrail, Guardrails
from gateway.guardrails.report import STRENGTH


@cache
def _default() -> Guardrail:
    """Every kind with the defaults; built on first use, not at start-up (its compile costs
    a fifth of a second)."""
    return Guardrail("default", GuardrailCfg(block_pii=True))


def pick(guardrails: Guardrails | None, name: str | None) -> Guardrail:
    if name is None:
        return _default()
    found = guardrails.by_name.get(name) if guardrails is not None else None
    if found is None:
        raise LookupError(name)
    return found


def check_text(guardrail: Guardrail, text: str) -> dict[str, Any]:
    findings = guardrail.detector.find(text, cache=False)
    verdict = "pass"
    spans = []
    for f in findings:
        action = guardrail.action(f.kind)
        spans.append({"kind": f.kind, "start": f.start, "end": f.end, "action": action})
        if STRENGTH[action] > STRENGTH[verdict]:
            verdict = action
    masked = mask(text, [f for f in findings if guardrail.action(f.kind) == "mask"], {})
    return {
        "guardrail": guardrail.name,
        "mode": guardrail.mode,
        "verdict": verdict,
        "findings": spans,
        "masked": masked,
    }
