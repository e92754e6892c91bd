"""The usage API's routes, behind the master key: thin adapters to metering/query.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from gateway.errors import ServiceUnavailable
from gateway.metering.query import UsageQueries, parse_time
from gateway.metering.record import Metering
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.server.http import Request
from gateway.store.base import StoreError

_JSON = msgspec.json.Encoder(decimal_format="number")  # money as exact decimal numbers


# The limits a /v1/usage query's `key` and `team` filters name, with their current use.
Limits = Callable[[list[tuple[str, str]]], Awaitable[list[dict[str, Any]]]]


class UsageRoutes:
    def __init__(
        self, queries: UsageQueries, auth: Authenticate, limits: Limits | None = None
    ) -> None:
        self._queries = queries
        self._auth = auth
        self._limits = limits

    async def _answer(self, request: Request, kind: str) -> Reply:
        self._auth.check(request.headers)
        pairs = request.query_pairs
        queries = self._queries
        try:
            if kind == "usage":
                document = await queries.usage(pairs)
                if self._limits is not None:
                    found = await self._limits(pairs)
                    if found:
                        document["limits"] = found
            elif kind == "requests":
                document = await queries.requests(pairs)
            elif kind == "costs":
                document = await queries.openai_costs(pairs)
            else:
                document = await queries.openai_usage(pairs, kind)
        except StoreError:
            raise ServiceUnavailable("The usage store is unavailable; try again shortly.") from None
        return Reply(200, {}, body=_JSON.encode(document))

    async def usage(self, request: Request, rid: str) -> Reply:
        return await self._answer(request, "usage")

    async def requests(self, request: Request, rid: str) -> Reply:
        return await self._answer(request, "requests")

    async def completions(self, request: Request, rid: str) -> Reply:
        return await self._answer(request, "completions")

    async def embeddings(self, request: Request, rid: str) -> Reply:
        return await self._answer(request, "embeddings")

    async def costs(self, request: Request, rid: str) -> Reply:
        return await self._answer(request, "costs")


class RepriceRoute:
    """POST /admin/usage/reprice?since=<unix seconds or ISO 8601>: prices rows that were
    recorded unpriced (default: the raw rows' whole retention)."""

    def __init__(self, metering: Metering, auth: Authenticate) -> None:
        self._metering = metering
        self._auth = auth

    async def __call__(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        since = request.query.get("since")
        start = parse_time(since, "since") if since else 0.0
        try:
            priced = await self._metering.reprice(start)
        except StoreError:
            raise ServiceUnavailable("The usage store is unavailable; try again shortly.") from None
        return Reply(200, {}, body=_JSON.encode({"repriced": priced}))
