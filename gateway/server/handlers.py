"""Route handlers: thin adapters from HTTP requests to the pipeline, the catalog and health."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from time import perf_counter

import msgspec

from gateway import __version__
from gateway._native.balance import Balancer
from gateway.errors import GatewayError, ModelNotFound
from gateway.governance.records import allows
from gateway.governance.registry import KeyRegistry
from gateway.metering.meter import Meter
from gateway.observability import metrics
from gateway.observability.access import AccessLog, escape
from gateway.pipeline import Call, Handler, Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.providers.base import Endpoint
from gateway.routing.catalog import Catalog, ModelInfo
from gateway.server.edge import RouteHandler
from gateway.server.http import Request

_JSON = msgspec.json.Encoder()
_STARTED = int(time.time())
_EXTENSIONS = "compiled" if Balancer.__module__.endswith("_c") else "pure"


def json_reply(document: object, status: int = 200) -> Reply:
    return Reply(status, {}, body=_JSON.encode(document))


def endpoint_handler(endpoint: Endpoint, pipeline: Handler) -> RouteHandler:
    async def handle(request: Request, rid: str) -> Reply:
        return await pipeline(Call(rid, endpoint, request, perf_counter()))

    handle.__name__ = f"handle_{endpoint.name.lower()}"
    return handle


def logged(handler: RouteHandler, name: str, log: AccessLog | None) -> RouteHandler:
    """An access-log line for a route outside the pipeline (which logs its own requests)."""
    if log is None:
        return handler

    async def handle(request: Request, rid: str) -> Reply:
        started = perf_counter()
        status = 500
        try:
            reply = await handler(request, rid)
            status = reply.status
            return reply
        except GatewayError as err:
            status = err.status
            raise
        finally:
            path = escape(request.path)
            ms = (perf_counter() - started) * 1000
            log.write(f"{escape(rid)} {name} path={path} status={status} ms={ms:.1f}")

    return handle


def _model_json(info: ModelInfo) -> dict[str, object]:
    return {"id": info.id, "object": "model", "created": _STARTED, "owned_by": info.owned_by}


class Models:
    """GET /v1/models and /v1/models/{id}."""

    def __init__(
        self,
        catalog: Catalog,
        auth: Authenticate,
        prefix: str,
        known: Sequence[ModelInfo] = (),
    ) -> None:
        self._catalog = catalog
        # Zero-config mode: the price catalog's models of each provider with credentials.
        self._known = list(known)
        self._auth = auth
        self._prefix = prefix

    async def list(self, request: Request, rid: str) -> Reply:
        principal = self._auth.identify(request.headers)
        models = self._catalog.models() + self._known
        if principal is not None:  # a virtual key sees the models it may use
            allowed = principal.model_patterns
            models = [m for m in models if all(allows(p, (m.id,)) for p in allowed)]
        return json_reply({"object": "list", "data": [_model_json(m) for m in models]})

    async def get(self, request: Request, rid: str) -> Reply:
        self._auth.identify(request.headers)
        # The path is already percent-decoded: newer openai SDKs encode "/" in ids as %2F.
        model_id = request.path[len(self._prefix) :]
        info = self._catalog.lookup(model_id)
        if info is None:
            raise ModelNotFound(
                f"The model `{model_id}` does not exist or you do not have access to it.",
                param="model",
            )
        return json_reply(_model_json(info))


class Health:
    """Liveness, and readiness that turns 503 while the process drains."""

    def __init__(
        self, catalog: Catalog, meter: Meter | None = None, keys: KeyRegistry | None = None
    ) -> None:
        self._catalog = catalog
        self._meter = meter
        self._keys = keys
        self.draining = False

    async def live(self, request: Request, rid: str) -> Reply:
        return json_reply({"status": "ok"})

    async def ready(self, request: Request, rid: str) -> Reply:
        if self.draining:
            return json_reply({"status": "draining"}, status=503)
        providers = sorted(self._catalog.providers)
        document: dict[str, object] = {
            "status": "ready", "providers": providers, "extensions": _EXTENSIONS,
        }  # fmt: skip
        meter = self._meter
        if meter is not None:  # degraded metering is reported, never a reason to refuse work
            document["metering"] = {
                "store": meter.store.description.split(":", 1)[0],
                "degraded": meter.degraded,
                "queued": meter.queued,
                **({"error": "store unavailable"} if meter.last_error else {}),
            }
        keys = self._keys
        if keys is not None:  # loaded before the port opened; a store outage serves the last read
            document["keys"] = {
                "loaded": len(keys.keys),
                "store": "up" if keys.store_up else "down",
            }
        return json_reply(document)


async def metrics_handler(request: Request, rid: str) -> Reply:
    body, content_type = await asyncio.to_thread(metrics.exposition)
    return Reply(200, {"content-type": content_type}, body=body)


async def index(request: Request, rid: str) -> Reply:
    """GET /: what this is and where to go, instead of an error."""
    return json_reply(
        {
            "name": "gateway",
            "version": __version__,
            "api": "/v1",
            "links": {
                "models": "/v1/models",
                "ready": "/health/ready",
                "live": "/health/live",
                "metrics": "/metrics",
                "usage": "/v1/usage",
                "dashboard": "/dashboard",
            },
        }
    )
