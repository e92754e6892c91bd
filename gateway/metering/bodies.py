"""Request logs with bodies (`logging.bodies`, per model or virtual key): the request and the
answer (a stream's SSE as sent) kept with the request's ledger row, each cut to
`body_max_bytes` and masked by the guardrails' detector (every PII and secret kind becomes a
placeholder such as `[EMAIL_1]`) before it is queued for the store. Erased after
`body_retention_days`; nothing is kept unless the operator asks."""

from __future__ import annotations

from functools import cache

from gateway.config.schema import GatewayCfg
from gateway.guardrails.detector import Detector, mask
from gateway.pipeline.call import Call

TRUNCATED = "…[truncated]"


@cache
def _detector() -> Detector:
    return Detector()  # every built-in kind: PII and secrets


class BodyLog:
    def __init__(self, cfg: GatewayCfg) -> None:
        logging = cfg.logging
        self.max_bytes = logging.body_max_bytes
        self._all = logging.bodies
        self._models = {m.name: m.log_bodies for m in cfg.models if m.log_bodies is not None}

    def wanted(self, call: Call) -> bool:
        route = call.route
        if route is not None and route.name in self._models:
            return self._models[route.name]
        principal = call.principal
        if principal is not None and principal.key.metadata.get("log_bodies") in (True, "true"):
            return True
        return self._all

    def capture(self, call: Call, chunk: bytes) -> None:
        """Appends part of the answer, up to the cap (a stream's frames as they pass)."""
        kept = call.response_body
        if kept is None:
            kept = call.response_body = bytearray()
        room = self.max_bytes + 1 - len(kept)
        if room > 0:
            kept += chunk[:room]

    def texts(self, call: Call) -> tuple[str | None, str | None]:
        """The masked, capped request and answer, for the ledger row."""
        answer = call.response_body
        return self._text(call.raw), self._text(bytes(answer)) if answer is not None else None

    def _text(self, body: bytes) -> str | None:
        if not body:
            return None
        cut = len(body) > self.max_bytes
        text = body[: self.max_bytes].decode("utf-8", "replace")
        findings = _detector().find(text, cache=False)
        if findings:
            text = mask(text, findings, {})
        return text + TRUNCATED if cut else text
