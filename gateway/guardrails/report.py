"""What the guardrails did to one request: the answer's header, the metrics and the log."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING

from gateway.observability import metrics

LOG = logging.getLogger("gateway.guardrails")

if TYPE_CHECKING:
    from gateway.guardrails.policy import Guardrail

# Which outcome wins when several findings meet: a block over a mask over a flag.
STRENGTH = {"pass": 0, "flag": 1, "shadow": 1, "mask": 2, "block": 3}


class _Entry:
    __slots__ = ("action", "count", "kinds")

    def __init__(self, action: str, kind: str) -> None:
        self.action = action
        self.count = 1
        self.kinds = [kind]


class Report:
    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def add(  # noqa: PLR0913 - the decision, and where it was made
        self,
        guardrail: Guardrail,
        kind: str,
        action: str,
        direction: str,
        where: str = "",
        value: str | None = None,
    ) -> None:
        """Counts one decision. The log line (INFO for a block, DEBUG otherwise) names the
        kind, where it was and a hash of the value: never the value."""
        shown = action if guardrail.mode == "enforce" else "shadow"
        metrics.observe_guardrail(guardrail.name, kind, direction, shown)
        level = logging.INFO if shown == "block" else logging.DEBUG
        if LOG.isEnabledFor(level):
            digest = hashlib.sha256(value.encode()).hexdigest()[:16] if value is not None else "-"
            LOG.log(level, "guardrail=%s direction=%s action=%s kind=%s at=%s sha256=%s",
                    guardrail.name, direction, shown, kind, where or "-", digest)  # fmt: skip
        entry = self._entries.get(guardrail.name)
        if entry is None:
            self._entries[guardrail.name] = _Entry(shown, kind)
            return
        if STRENGTH[shown] > STRENGTH[entry.action]:
            entry.action = shown
        entry.count += 1
        if kind not in entry.kinds:
            entry.kinds.append(kind)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def header(self) -> str:
        """`pii; action=mask; count=2; kinds=email|phone`, one per guardrail, comma-separated."""
        return ", ".join(
            f"{name}; action={e.action}; count={e.count}; kinds={'|'.join(e.kinds)}"
            for name, e in self._entries.items()
        )
