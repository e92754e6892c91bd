"""HTTP handlers: thin adapters from aiohttp to the pipeline and the catalog."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from time import perf_counter
from urllib.parse import unquote

import msgspec
from aiohttp import web

from gateway._native.balance import Balancer
from gateway.errors import ModelNotFound
from gateway.observability import metrics
from gateway.pipeline import Call
from gateway.providers.base import Endpoint
from gateway.routing.catalog import ModelInfo
from gateway.server.keys import AUTH, CATALOG, LIFECYCLE, PIPELINE, REQUEST_ID
from gateway.server.respond import RequestBody, respond

_JSON = msgspec.json.Encoder()
_STARTED = int(time.time())
_EXTENSIONS = "compiled" if Balancer.__module__.endswith("_c") else "pure"
WebHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint_handler(endpoint: Endpoint) -> WebHandler:
    async def handle(request: web.Request) -> web.StreamResponse:
        call = Call(request[REQUEST_ID], endpoint, RequestBody(request), perf_counter())
        reply = await request.app[PIPELINE](call)
        return await respond(request, reply)

    handle.__name__ = f"handle_{endpoint.name.lower()}"
    return handle


def _model_json(info: ModelInfo) -> dict[str, object]:
    return {"id": info.id, "object": "model", "created": _STARTED, "owned_by": info.owned_by}


def _json(document: object, status: int = 200) -> web.Response:
    return web.Response(body=_JSON.encode(document), status=status, content_type="application/json")


async def list_models(request: web.Request) -> web.Response:
    request.app[AUTH].check(request.headers)
    models = request.app[CATALOG].models()
    return _json({"object": "list", "data": [_model_json(m) for m in models]})


async def get_model(request: web.Request) -> web.Response:
    request.app[AUTH].check(request.headers)
    # Newer openai SDKs percent-encode "/" in ids (%2F); older ones send it raw.
    model_id = unquote(request.match_info["model_id"])
    info = request.app[CATALOG].lookup(model_id)
    if info is None:
        raise ModelNotFound(
            f"The model `{model_id}` does not exist or you do not have access to it.",
            param="model",
        )
    return _json(_model_json(info))


async def live(request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    if request.app[LIFECYCLE].draining:
        return _json({"status": "draining"}, status=503)
    providers = sorted(request.app[CATALOG].providers)
    return _json({"status": "ready", "providers": providers, "extensions": _EXTENSIONS})


async def metrics_handler(request: web.Request) -> web.Response:
    body, content_type = await asyncio.to_thread(metrics.exposition)
    return web.Response(body=body, headers={"content-type": content_type})
