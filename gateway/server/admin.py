"""Operator endpoints, behind the master key: clearing the response cache and its stats."""

from __future__ import annotations

import msgspec
from aiohttp import web

from gateway.errors import InvalidRequest
from gateway.server.keys import AUTH, CACHE

_JSON = msgspec.json.Encoder()


def _json(document: object) -> web.Response:
    return web.Response(body=_JSON.encode(document), content_type="application/json")


async def delete_cache(request: web.Request) -> web.Response:
    """DELETE /admin/cache?all=true | ?namespace=<partition> | ?key=<x-gateway-cache-key>."""
    request.app[AUTH].check(request.headers)
    query = request.query
    cache = request.app[CACHE]
    if "key" in query:
        deleted = await cache.store.delete_matching(suffix=":" + query["key"])
    elif "namespace" in query:
        namespace = query["namespace"]
        deleted = await cache.store.delete_matching(prefix=namespace + ":")
        deleted += await cache.store.delete_matching(prefix=namespace + "/")
    elif query.get("all") == "true":
        deleted = await cache.store.delete_matching(prefix="")
    else:
        raise InvalidRequest(
            "Say what to delete: ?all=true, ?namespace=<name> or ?key=<x-gateway-cache-key>.",
            param="query",
        )
    return _json({"deleted": deleted})


async def cache_stats(request: web.Request) -> web.Response:
    request.app[AUTH].check(request.headers)
    cache = request.app[CACHE]
    store = cache.store
    return _json(
        {
            "entries": len(store.memory),
            "bytes": store.memory.bytes,
            "semantic_entries": cache.semantic.size,
            "semantic_pending": cache.semantic.pending,
            "redis": store.redis is not None,
        }
    )
