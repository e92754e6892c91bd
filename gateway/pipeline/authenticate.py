"""Stage: who is calling. The master key (everything), a virtual key (what its record allows),
or, on a gateway with no master key, anyone (a virtual key sent there still counts)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from gateway.errors import AuthenticationFailed
from gateway.governance.records import PREFIX
from gateway.governance.registry import KeyRegistry, Principal
from gateway.pipeline.call import Call, Handler, Reply

_MISSING = "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
# Never echo the presented key back: it may be a real secret sent to the wrong place.
_WRONG = "Incorrect API key provided."


class Authenticate:
    def __init__(self, master_key: str | None, registry: KeyRegistry | None = None) -> None:
        self._key = master_key.encode() if master_key else None
        self.registry = registry

    @property
    def required(self) -> bool:
        """Whether the stage has anything to do (else it is left out of the pipeline)."""
        return self._key is not None or self.registry is not None

    def check(self, headers: Mapping[str, str]) -> None:
        """The master key, for operator routes (admin, usage)."""
        if self._key is None:
            return
        presented = presented_key(headers)
        if presented is None:
            raise AuthenticationFailed(_MISSING, code="missing_api_key")
        if not hmac.compare_digest(presented.encode(), self._key):
            raise AuthenticationFailed(_WRONG)

    def identify(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller's virtual key, or None for the master key (or an open gateway)."""
        presented = presented_key(headers)
        registry = self.registry
        if registry is not None and presented and presented.startswith(PREFIX):
            principal = registry.lookup(presented)
            if principal is None or not principal.key.live(time.time()):
                raise AuthenticationFailed(_WRONG)
            return principal
        if self._key is None:
            return None
        if presented is None:
            raise AuthenticationFailed(_MISSING, code="missing_api_key")
        if not hmac.compare_digest(presented.encode(), self._key):
            raise AuthenticationFailed(_WRONG)
        return None

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        call.principal = self.identify(call.http.headers)
        return await call_next(call)


def presented_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return ""
    # Anthropic-style clients send the key in x-api-key.
    return headers.get("x-api-key")
