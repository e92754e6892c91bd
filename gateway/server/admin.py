"""Operator endpoints, behind the master key: clearing the response cache and its stats."""

from __future__ import annotations

from gateway.errors import InvalidRequest
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.pipeline.cache import ResponseCache
from gateway.server.handlers import json_reply
from gateway.server.http import Request


class CacheAdmin:
    def __init__(self, cache: ResponseCache, auth: Authenticate) -> None:
        self._cache = cache
        self._auth = auth

    async def delete(self, request: Request, rid: str) -> Reply:
        """DELETE /admin/cache?all=true | ?namespace=<partition> | ?key=<x-gateway-cache-key>."""
        self._auth.check(request.headers)
        query = request.query
        store = self._cache.store
        if "key" in query:
            deleted = await store.delete_matching(suffix=":" + query["key"])
        elif "namespace" in query:
            namespace = query["namespace"]
            deleted = await store.delete_matching(prefix=namespace + ":")
            deleted += await store.delete_matching(prefix=namespace + "/")
        elif query.get("all") == "true":
            deleted = await store.delete_matching(prefix="")
        else:
            raise InvalidRequest(
                "Say what to delete: ?all=true, ?namespace=<name> or ?key=<x-gateway-cache-key>.",
                param="query",
            )
        return json_reply({"deleted": deleted})

    async def stats(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        cache = self._cache
        store = cache.store
        return json_reply(
            {
                "entries": len(store.memory),
                "bytes": store.memory.bytes,
                "semantic_entries": cache.semantic.size,
                "semantic_pending": cache.semantic.pending,
                "redis": store.redis is not None,
            }
        )
