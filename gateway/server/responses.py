"""GET and DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items: what the gateway
stored of a response, for the caller that made it (anyone else is told it does not exist).
A response a provider answered natively is deleted at that provider too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.errors import InvalidRequest, NotFound
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.providers.base import ProviderAdapter
from gateway.providers.transport import Transport
from gateway.responses.held import delete_at_provider
from gateway.responses.state import Conversations, Stored, partition_of
from gateway.server.handlers import json_reply
from gateway.server.http import Request

_MAX_LIMIT = 100


class StoredResponses:
    def __init__(
        self,
        conversations: Conversations,
        auth: Authenticate,
        providers: Mapping[str, ProviderAdapter],
        transport: Transport,
    ) -> None:
        self._conversations = conversations
        self._auth = auth
        self._providers = providers
        self._transport = transport

    async def _find(self, request: Request, prefix: str) -> tuple[Stored, str]:
        principal = self._auth.identify(request.headers)
        rest = request.path[len(prefix) :]
        response_id, _, tail = rest.partition("/")
        record = (
            await self._conversations.find(response_id, partition_of(principal))
            if response_id and tail in ("", "input_items")
            else None
        )
        if record is None:
            raise NotFound(
                f"No response found with id '{response_id[:100]}'.", param="response_id",
                code="response_not_found",
            )  # fmt: skip
        return record, tail

    async def get(self, request: Request, rid: str, prefix: str) -> Reply:
        record, tail = await self._find(request, prefix)
        if tail == "input_items":
            return json_reply(_page(record, request.query))
        return json_reply(record.response)

    async def delete(self, request: Request, rid: str, prefix: str) -> Reply:
        record, tail = await self._find(request, prefix)
        if tail:
            raise NotFound("Not found.", code="not_found")
        adapter = self._providers.get(record.provider) if record.native else None
        if adapter is not None:  # the provider's copy first: if it refuses, nothing is forgotten
            await delete_at_provider(adapter, self._transport, record.id)
        await self._conversations.forget(record.id, record.partition)
        return json_reply({"id": record.id, "object": "response.deleted", "deleted": True})


def _listed(item: dict[str, Any], fallback_id: str) -> dict[str, Any]:
    """An input item as the list shows it: with an id, and a message's text as a part."""
    item = {**item, "id": item.get("id") or fallback_id}
    if item.get("type") == "message":
        content = item.get("content")
        if isinstance(content, str):
            kind = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": content}]
        item.setdefault("status", "completed")
    return item


def _page(record: Stored, query: dict[str, str]) -> dict[str, Any]:
    """The input items, newest first unless `order=asc`, `limit` (1-100, default 20) from
    after `after` (an item id)."""
    try:
        limit = int(query.get("limit", "20"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= _MAX_LIMIT:
        raise InvalidRequest(
            f"Invalid 'limit': expected an integer from 1 to {_MAX_LIMIT}.", param="limit",
            code="invalid_value",
        )  # fmt: skip
    items = [_listed(item, f"{record.id}_item_{i}") for i, item in enumerate(record.input)]
    if query.get("order", "desc") != "asc":
        items.reverse()
    after = query.get("after")
    if after:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
