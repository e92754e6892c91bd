"""Typed application keys for what the app builds once at startup."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.cache.runtime import CacheRuntime
from gateway.config.schema import ServerCfg
from gateway.pipeline import Handler
from gateway.pipeline.authenticate import Authenticate
from gateway.pipeline.cache import ResponseCache
from gateway.providers.transport import Transport
from gateway.routing.catalog import Catalog
from gateway.routing.shared import SharedBreakers


@dataclass(slots=True)
class Lifecycle:
    draining: bool = False


SETTINGS = web.AppKey("settings", ServerCfg)
CATALOG = web.AppKey("catalog", Catalog)
TRANSPORT = web.AppKey("transport", Transport)
PIPELINE: web.AppKey[Handler] = web.AppKey("pipeline")
AUTH = web.AppKey("auth", Authenticate)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
REQUEST_ID = "gateway.request_id"
SHARED: web.AppKey[SharedBreakers | None] = web.AppKey("shared_breakers")
CACHE = web.AppKey("cache", ResponseCache)
CACHE_RUNTIME = web.AppKey("cache_runtime", CacheRuntime)
