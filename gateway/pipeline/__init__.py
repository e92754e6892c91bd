"""The request pipeline: stages composed once at startup, outermost first.

Each stage takes the Call and the next handler, so a later stage (limits, cache, guardrails)
is added to the list without touching the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from gateway.pipeline.call import Call, Handler, Reply, Stage


def compose(stages: Sequence[Stage], terminal: Handler) -> Handler:
    handler = terminal
    for stage in reversed(stages):
        handler = partial(stage, call_next=handler)
    return handler


__all__ = ["Call", "Handler", "Reply", "Stage", "compose"]
