"""Stage: choose the target that serves this call (weighted, skipping unusable targets)."""

from __future__ import annotations

from gateway.errors import InvalidRequest, ServiceUnavailable
from gateway.pipeline.call import Call, Handler, Reply
from gateway.providers.base import Endpoint

_ANTHROPIC = (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS)


class SelectTarget:
    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        route = call.route
        assert route is not None
        # /v1/messages is served natively or translated to chat completions (frontdoor.py).
        needed = Endpoint.CHAT if call.endpoint in _ANTHROPIC else call.endpoint
        unsupported = 0
        for i, target in enumerate(route.targets):
            if not target.provider.supports(needed):
                unsupported |= 1 << i
        picked = route.pick(unsupported)
        if picked is None:
            if unsupported:
                raise InvalidRequest(
                    f"Model `{route.name}` cannot serve /v1/{call.endpoint.value}.", param="model"
                )
            raise ServiceUnavailable(f"No target of model `{route.name}` is available.")
        call.target = picked
        return await call_next(call)
