"""What the gateway answers while it warms up: it listens at once, so probes see it, but
readiness is 503 (naming what it still waits for) and every other route a 503 `warming_up`
with `retry-after: 1`, until the ledger, keys, limits, caches and the semantic index are up."""

from __future__ import annotations

import msgspec

from gateway.errors import ServiceUnavailable
from gateway.pipeline import Reply
from gateway.server.edge import error_reply, request_id
from gateway.server.http import Request

_JSON = msgspec.json.Encoder()
# What each long-lived part is, in readiness's words.
NAMES = {
    "Transport": "upstream connections", "Meter": "usage store",
    "SharedBreakers": "shared breakers", "Governance": "virtual keys and limits",
    "CacheRuntime": "response cache and semantic index", "Watcher": "alerts",
    "Tracer": "tracing",
}  # fmt: skip


class Warming:
    def __init__(self) -> None:
        self.waiting_for: list[str] = []

    def starting(self, part: object) -> None:
        name = NAMES.get(type(part).__name__, type(part).__name__)
        self.waiting_for = [name]

    async def dispatch(self, request: Request) -> Reply:
        rid = request_id(request.headers)
        if request.path == "/health/live":
            return Reply(200, {"x-request-id": rid, "content-type": "application/json"},
                         body=_JSON.encode({"status": "ok", "warming": True}))  # fmt: skip
        if request.path == "/health/ready":
            document = {"status": "warming", "waiting_for": self.waiting_for}
            return Reply(503, {"x-request-id": rid, "content-type": "application/json",
                               "retry-after": "1"}, body=_JSON.encode(document))  # fmt: skip
        err = ServiceUnavailable(
            "The gateway is starting; try again in a moment.",
            code="warming_up", headers={"retry-after": "1"},
        )  # fmt: skip
        return error_reply(err, rid, anthropic="/messages" in request.path)
