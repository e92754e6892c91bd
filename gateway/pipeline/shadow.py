"""Stage: after a model with `shadow` configured has answered a chat request, a sample of
those answers is handed to the shadow runner (gateway/evaluation/shadow.py), which asks the
candidate model in the background. A sampled stream is read as it goes to the client (the
cache's assembler) and handed over once it has ended whole. The client's answer is untouched."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from time import perf_counter

from gateway.cache.replay import StreamAssembler, assembling
from gateway.config.routing import ShadowCfg
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
            cfg is None
            or reply.status != 200
            or call.endpoint is not Endpoint.CHAT
            or call.exchange is not None
            or random.random() >= cfg.ratio
        ):
            return reply
        if reply.events is not None:
            reply.events = self._read(call, reply.events, cfg)
        elif reply.body is not None:
            self._runner.launch(call, reply.body, cfg, perf_counter() - call.started)
        return reply

    def _read(
        self, call: Call, events: AsyncIterator[bytes], cfg: ShadowCfg
    ) -> AsyncIterator[bytes]:
        def ended(assembler: StreamAssembler) -> None:
            self._runner.launch(call, assembler.completion(), cfg, perf_counter() - call.started)

        return assembling(events, ended, lambda: call.stream_error is None)
