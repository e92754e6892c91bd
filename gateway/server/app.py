"""Assembles the aiohttp application and runs it until SIGTERM, draining in-flight work."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping

from aiohttp import web

from gateway.cache.embedders import Embedder, LocalEmbedder, ProviderEmbedder
from gateway.cache.runtime import CacheRuntime
from gateway.cache.semantic import SemanticIndex, SemanticSync
from gateway.cache.store import CacheStore, MemoryStore, RedisStore
from gateway.config.errors import ConfigError
from gateway.config.schema import GatewayCfg
from gateway.errors import GatewayError
from gateway.observability import metrics
from gateway.pipeline import compose
from gateway.pipeline.account import Account
from gateway.pipeline.authenticate import Authenticate
from gateway.pipeline.cache import ResponseCache
from gateway.pipeline.failover import Failover
from gateway.pipeline.frontdoor import AnthropicFrontDoor
from gateway.pipeline.parse import Parse, decode_view
from gateway.pipeline.resolve import Resolve
from gateway.pipeline.upstream import CallProvider
from gateway.providers.base import Endpoint
from gateway.providers.transport import Transport
from gateway.routing.catalog import build_catalog
from gateway.routing.health import HealthRegistry, State
from gateway.routing.shared import SharedBreakers
from gateway.server import admin, handlers
from gateway.server.keys import (
    AUTH,
    CACHE,
    CACHE_RUNTIME,
    CATALOG,
    LIFECYCLE,
    PIPELINE,
    SETTINGS,
    SHARED,
    TRANSPORT,
    Lifecycle,
)
from gateway.server.middleware import add_request_id, errors_middleware

LOG = logging.getLogger("gateway.server")


def build_app(cfg: GatewayCfg, env: Mapping[str, str]) -> web.Application:
    health = HealthRegistry()
    catalog = build_catalog(cfg, env, health)
    transport = Transport()
    auth = Authenticate(cfg.server.master_key)
    routing = cfg.routing
    redis_url = routing.redis_url or env.get("REDIS_URL")
    cache_redis = cfg.cache.redis_url or redis_url
    store = CacheStore(
        MemoryStore(cfg.cache.max_entries, cfg.cache.max_bytes),
        RedisStore(cache_redis, timeout_ms=cfg.cache.redis_timeout_ms, queue=cfg.cache.write_queue)
        if cache_redis
        else None,
    )
    semantic = SemanticIndex(cfg.cache.max_entries)
    sync = SemanticSync(cache_redis, semantic, cfg.cache.write_queue) if cache_redis else None
    if cfg.cache.embedder != "local":
        try:
            catalog.resolve(cfg.cache.embedder)
        except GatewayError as err:
            raise ConfigError(f"cache.embedder: {err.message}") from None
    embedder: Embedder = (
        LocalEmbedder()
        if cfg.cache.embedder == "local"
        else ProviderEmbedder(cfg.cache.embedder, catalog, transport)
    )
    cache = ResponseCache(store, cfg.cache, semantic, embedder, sync)
    cache_runtime = CacheRuntime(store, semantic, sync, cfg.cache.snapshot_path)
    pipeline = compose(
        [
            Account(access_log=cfg.server.access_log),
            auth,
            Parse(),
            Resolve(catalog, config_header=routing.config_header),
            cache,
            Failover(routing, decode_view),
            AnthropicFrontDoor(),
        ],
        CallProvider(transport),
    )
    shared = SharedBreakers(redis_url, health) if redis_url else None

    def on_transition(key: str, state: State, until: float, trips: int) -> None:
        metrics.observe_breaker(key, int(state), tripped=state is State.OPEN)
        if shared is not None:
            shared.transition(key, state, until, trips)

    health.listener = on_transition
    app = web.Application(
        middlewares=[errors_middleware], client_max_size=cfg.server.max_body_bytes
    )
    app[SETTINGS] = cfg.server
    app[CATALOG] = catalog
    app[TRANSPORT] = transport
    app[AUTH] = auth
    app[PIPELINE] = pipeline
    app[SHARED] = shared
    app[CACHE] = cache
    app[CACHE_RUNTIME] = cache_runtime
    app[LIFECYCLE] = Lifecycle()
    app.on_response_prepare.append(add_request_id)
    app.on_startup.append(_start_transport)
    app.on_cleanup.append(_close_transport)
    _add_routes(app)
    return app


def _add_routes(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        for endpoint in Endpoint:
            app.router.add_post(f"{prefix}/{endpoint.value}", handlers.endpoint_handler(endpoint))
        app.router.add_get(f"{prefix}/models", handlers.list_models)
        app.router.add_get(f"{prefix}/models/{{model_id:.+}}", handlers.get_model)
    app.router.add_get("/health/live", handlers.live)
    app.router.add_get("/health/ready", handlers.ready)
    app.router.add_get("/metrics", handlers.metrics_handler)
    app.router.add_delete("/admin/cache", admin.delete_cache)
    app.router.add_get("/admin/cache/stats", admin.cache_stats)


async def _start_transport(app: web.Application) -> None:
    await app[TRANSPORT].start()
    shared = app[SHARED]
    if shared is not None:
        await shared.start()
    await app[CACHE_RUNTIME].start()


async def _close_transport(app: web.Application) -> None:
    await app[CACHE_RUNTIME].stop()
    shared = app[SHARED]
    if shared is not None:
        await shared.stop()
    await app[TRANSPORT].close()


async def serve(app: web.Application, *, reuse_port: bool = False) -> None:
    """Serves until SIGTERM or SIGINT, then stops accepting and lets in-flight requests and
    streams finish (up to server.shutdown_timeout) before closing upstream connections."""
    settings = app[SETTINGS]
    runner = web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=settings.shutdown_timeout,
        handler_cancellation=True,  # a client that disconnects cancels its upstream request
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(
        runner,
        settings.host,
        settings.port,
        backlog=2048,
        reuse_port=reuse_port or None,
        shutdown_timeout=settings.shutdown_timeout,
    )
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    LOG.info("listening on http://%s:%d", settings.host, settings.port)
    try:
        await stop.wait()
    finally:
        app[LIFECYCLE].draining = True
        LOG.info("draining: waiting up to %.0fs for in-flight requests", settings.shutdown_timeout)
        await runner.cleanup()
        LOG.info("stopped")
