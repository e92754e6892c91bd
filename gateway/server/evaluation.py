"""POST /v1/feedback (any caller, on its own requests), GET /v1/usage/feedback and
GET /v1/usage/shadow (the master key): thin adapters to gateway/evaluation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import msgspec

from gateway.errors import ServiceUnavailable
from gateway.evaluation.feedback import Feedback
from gateway.evaluation.shadow import ShadowRunner
from gateway.metering.query import time_window
from gateway.observability.access import AccessLog
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.server.edge import Router
from gateway.server.handlers import logged
from gateway.server.http import Request
from gateway.store.base import StoreError

_JSON = msgspec.json.Encoder(decimal_format="number")


class FeedbackRoutes:
    def __init__(self, feedback: Feedback, auth: Authenticate) -> None:
        self._feedback = feedback
        self._auth = auth

    async def submit(self, request: Request, rid: str) -> Reply:
        principal = self._auth.identify(request.headers)
        answer = await self._feedback.submit(request.body, principal)
        return Reply(200, {}, body=_JSON.encode(answer))

    async def summary(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        params = request.query
        start, end = time_window(params, "last_7_days")
        groups = [g for g in params.get("group_by", "model").split(",") if g]
        answer = await self._feedback.summary(start, end, groups)
        return Reply(200, {}, body=_JSON.encode(answer))


class ShadowRoutes:
    def __init__(self, runner: ShadowRunner, auth: Authenticate) -> None:
        self._runner = runner
        self._auth = auth

    async def summary(self, request: Request, rid: str) -> Reply:
        """Per model and candidate, on the same sampled requests: both costs (nano-dollars)
        and latencies, mean similarity, exact-match and JSON-validity rates; `recent=N`
        adds the last N comparisons with both answers."""
        self._auth.check(request.headers)
        params = request.query
        start, end = time_window(params, "last_7_days")
        try:
            answer = await self._runner.summary(start, end)
            if params.get("recent"):
                asked = params["recent"]
                limit = max(1, min(100, int(asked) if asked.isdigit() else 10))
                answer["recent"] = await self._runner.recent(start, end, limit)
        except StoreError:
            raise ServiceUnavailable("Shadow comparisons are unavailable; retry shortly.") from None
        return Reply(200, {}, body=_JSON.encode(answer))


Summary = Callable[[float, float], Awaitable[dict[str, Any]]]


def summaries(feedback: Feedback | None, shadow: ShadowRunner | None) -> dict[str, Summary]:
    """What the dashboard shows of shadow traffic and feedback, where they are on."""
    found: dict[str, Summary] = {}
    if shadow is not None:
        found["shadow"] = shadow.summary
    if feedback is not None:
        found["feedback"] = partial(feedback.summary, group_by=["model", "route"])
    return found


def add_evaluation_routes(
    router: Router,
    auth: Authenticate,
    feedback: Feedback | None,
    shadow: ShadowRunner | None,
    log: AccessLog | None,
) -> None:
    for prefix in ("/v1", ""):
        if feedback is not None:
            routes = FeedbackRoutes(feedback, auth)
            router.add("POST", f"{prefix}/feedback", logged(routes.submit, "feedback", log))
            router.add("GET", f"{prefix}/usage/feedback",
                       logged(routes.summary, "usage/feedback", log))  # fmt: skip
        if shadow is not None:
            summary = ShadowRoutes(shadow, auth).summary
            router.add("GET", f"{prefix}/usage/shadow", logged(summary, "usage/shadow", log))
