"""Responses a provider keeps itself (OpenAI's and Azure's own store, for responses they
answered natively): a DELETE through the gateway deletes them there too, so a client's
deletion is not only the gateway's copy."""

from __future__ import annotations

from gateway.providers import direct
from gateway.providers.base import ProviderAdapter
from gateway.providers.transport import Transport


async def delete_at_provider(
    adapter: ProviderAdapter, transport: Transport, response_id: str
) -> None:
    """Deletes the provider's copy; one it no longer has (404) counts as deleted. Raises the
    provider's error, scrubbed of the request's credentials, when it refuses or is away."""
    make = getattr(adapter, "stored_response", None)
    if make is None:  # a provider without a store of its own
        return
    request = make("DELETE", response_id)
    await direct.call(adapter, transport, request, adapter.timeouts, ok=(200, 204, 404))
