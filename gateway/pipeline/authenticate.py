"""Stage: the caller must present the master key, when one is configured."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from gateway.errors import AuthenticationFailed
from gateway.pipeline.call import Call, Handler, Reply


class Authenticate:
    def __init__(self, master_key: str | None) -> None:
        self._key = master_key.encode() if master_key else None

    @property
    def required(self) -> bool:
        return self._key is not None

    def check(self, headers: Mapping[str, str]) -> None:
        if self._key is None:
            return
        presented = presented_key(headers)
        if presented is None:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
                code="missing_api_key",
            )
        if not hmac.compare_digest(presented.encode(), self._key):
            # Never echo the presented key back: it may be a real secret sent to the wrong place.
            raise AuthenticationFailed("Incorrect API key provided.")

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        self.check(call.http.headers)
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
