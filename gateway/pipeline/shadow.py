"""Stage: after a model with `shadow` configured has answered a non-stream chat request, a
sample of those answers is handed to the shadow runner (gateway/evaluation/shadow.py), which
asks the candidate model in the background. The client's answer is returned untouched."""

from __future__ import annotations

import random
from time import perf_counter

from gateway.evaluation.shadow import ShadowRunner
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint


class Shadow:
    def __init__(self, runner: ShadowRunner) -> None:
        self._runner = runner

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        reply = await call_next(call)
        route = call.route
        cfg = route.shadow if route is not None else None
        if (
            cfg is not None
            and reply.status == 200
            and reply.body is not None
            and call.endpoint is Endpoint.CHAT
            and call.exchange is None
            and random.random() < cfg.ratio
        ):
            self._runner.launch(call, reply.body, cfg, perf_counter() - call.started)
        return reply
