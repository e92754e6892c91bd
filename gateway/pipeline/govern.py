"""Stage: a virtual key's model allow-list, then the limits and budgets the request falls
under, reserved before the call and settled when it ends (gateway/governance)."""

from __future__ import annotations

from gateway.errors import PermissionDenied
from gateway.governance.governor import Governor, window_headers
from gateway.governance.records import allows
from gateway.governance.registry import Principal
from gateway.metering.record import Metering
from gateway.pipeline.call import Call, Handler, Reply
from gateway.pipeline.resolve import CONFIG_HEADER


class Govern:
    def __init__(self, governor: Governor, metering: Metering) -> None:
        self._governor = governor
        self._metering = metering

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        principal = call.principal
        if principal is not None:
            _check_models(call, principal)
        governor = self._governor
        rules = governor.rules(call, principal)
        if not rules:
            if governor.has_target_rules:
                call.leases = []
                call.on_end = self._settle
            return await call_next(call)
        lease = await governor.admit(call, rules)
        call.leases = [lease]
        call.on_end = self._settle
        reply = await call_next(call)
        reply.headers.update(window_headers(lease))
        return reply

    def _settle(self, call: Call) -> None:
        if call.leases:
            self._metering.usage(call)  # what the provider reported, else the gateway's count
            self._metering.cost(call)
            self._governor.settle_all(call, call.leases)


def _check_models(call: Call, principal: Principal) -> None:
    patterns = principal.model_patterns
    if not patterns:
        return
    assert call.view is not None and call.route is not None
    names: tuple[str, ...] = (call.view.model, call.route.name)
    if call.http.headers.get(CONFIG_HEADER):
        # A route sent with the request may name any provider's model: each must be allowed.
        targets = tuple(leaf.key for leaf in call.route.leaves())
        if all(all(allows(p, (t,)) for t in targets) for p in patterns):
            return
    elif all(allows(p, names) for p in patterns):
        return
    raise PermissionDenied(f"This key may not use the model `{call.view.model}`.", param="model")
