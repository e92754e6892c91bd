"""One whole call to a provider outside the request pipeline (a stored response's DELETE, a
token count): the adapter's fresh credentials added, the body read, and an answer outside
`ok` raised as the provider's error, scrubbed of the request's credentials."""

from __future__ import annotations

import msgspec

from gateway.errors import UpstreamError
from gateway.providers.base import ProviderAdapter, Timeouts, UpstreamRequest
from gateway.providers.redact import request_secrets, scrub
from gateway.providers.transport import Transport


async def call(
    adapter: ProviderAdapter,
    transport: Transport,
    request: UpstreamRequest,
    timeouts: Timeouts,
    ok: tuple[int, ...] = (200,),
) -> bytes:
    """The body of an answer whose status is in `ok`; raises UpstreamError otherwise."""
    if adapter.credentials is not None:
        fresh = await adapter.credentials.headers()
        request = msgspec.structs.replace(request, headers={**request.headers, **fresh})
    try:
        status, headers, body = await transport.fetch(request, timeouts, adapter.name)
        if status not in ok:
            raise adapter.map_error(status, headers, body)
        return body
    except UpstreamError as err:
        raise scrub(err, request_secrets(request.headers, adapter.secrets)) from None
