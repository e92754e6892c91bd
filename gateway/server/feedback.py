"""POST /v1/feedback (any caller, on its own requests) and GET /v1/usage/feedback (the master
key): thin adapters to evaluation/feedback.py."""

from __future__ import annotations

import msgspec

from gateway.evaluation.feedback import Feedback
from gateway.metering.query import time_window
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.server.http import Request

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
