"""Assembles the gateway from its config and serves it until SIGTERM, draining in-flight work."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Mapping, Sequence
from functools import partial
from typing import NamedTuple

from gateway.api.usage import Usage
from gateway.cache.embedders import Embedder, LocalEmbedder, NeuralEmbedder, ProviderEmbedder
from gateway.cache.runtime import CacheRuntime
from gateway.cache.semantic import SemanticIndex, SemanticSync
from gateway.cache.store import CacheStore, MemoryStore, RedisStore
from gateway.config.errors import ConfigError
from gateway.config.schema import GatewayCfg, ServerCfg
from gateway.errors import GatewayError
from gateway.governance.service import Governance, build_governance
from gateway.guardrails.policy import build_guardrails
from gateway.metering.meter import Meter
from gateway.metering.prices import Catalog as PriceCatalog
from gateway.metering.prices import Pricer
from gateway.metering.query import UsageQueries
from gateway.metering.record import Metering
from gateway.observability import metrics
from gateway.observability.access import AccessLog
from gateway.pipeline import Handler, Stage, compose
from gateway.pipeline.account import Account
from gateway.pipeline.authenticate import Authenticate
from gateway.pipeline.cache import ResponseCache
from gateway.pipeline.failover import Failover
from gateway.pipeline.frontdoor import AnthropicFrontDoor
from gateway.pipeline.govern import Govern
from gateway.pipeline.guard import Guard
from gateway.pipeline.parse import Parse, decode_view
from gateway.pipeline.resolve import Resolve
from gateway.pipeline.upstream import CallProvider
from gateway.providers.base import Endpoint
from gateway.providers.transport import Transport
from gateway.routing.catalog import Catalog, ModelInfo, build_catalog
from gateway.routing.health import HealthRegistry, State
from gateway.routing.shared import SharedBreakers
from gateway.server.admin import CacheAdmin
from gateway.server.config_admin import ConfigAdmin
from gateway.server.cors import Cors
from gateway.server.edge import Router, refusal
from gateway.server.guardrails import GuardrailAdmin
from gateway.server.handlers import (
    Health,
    Models,
    endpoint_handler,
    index,
    logged,
    metrics_handler,
)
from gateway.server.http import HttpServer
from gateway.server.keys import KeyAdmin
from gateway.server.tls import tls_context
from gateway.server.usage import RepriceRoute, UsageRoutes
from gateway.store import open_store

LOG = logging.getLogger("gateway.server")


def build_app(cfg: GatewayCfg, env: Mapping[str, str]) -> Gateway:
    health = HealthRegistry()
    catalog = build_catalog(cfg, env, health)
    transport = Transport(max_body_bytes=cfg.server.max_upstream_body_bytes)
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
    embedder = _embedder(cfg, catalog, transport)
    metering = _metering(cfg, env, catalog)

    def price(provider: str, model: str, usage: Usage) -> int | None:
        return metering.price_usage(provider, model, usage)[0]

    governance = build_governance(cfg, env, price)
    guardrails = build_guardrails(cfg, transport, catalog)
    auth = Authenticate(cfg.server.master_key, governance.registry)
    cache = ResponseCache(store, cfg.cache, semantic, embedder, sync, price)
    cache_runtime = CacheRuntime(store, semantic, sync, cfg.cache.snapshot_path)
    json_lines = cfg.logging.format == "json"
    access_log = (
        AccessLog(json_lines=json_lines) if cfg.server.access_log and AccessLog.enabled() else None
    )
    # Every stage costs every request a layer, so a stage with nothing to do is left out: the
    # key check when no key is set, and the front door everywhere but Anthropic's routes.
    stages: list[Stage] = [
        Account(access_log, metering, genai=cfg.metrics.genai),
        *([auth] if auth.required else []),
        Parse(),
        Resolve(catalog, config_header=routing.config_header),
        *([Guard(guardrails)] if guardrails.active else []),
        *([Govern(governance.governor, metering)] if governance.active else []),
        cache,
        Failover(
            routing,
            decode_view,
            governance.governor.gate if governance.governor.has_target_rules else None,
        ),  # fmt: skip
    ]
    terminal = CallProvider(transport, max_event_bytes=cfg.server.max_stream_event_bytes)
    pipelines = Pipelines(
        openai=compose(stages, terminal),
        anthropic=compose([*stages, AnthropicFrontDoor()], terminal),
    )
    shared = SharedBreakers(redis_url, health) if redis_url else None

    def on_transition(key: str, state: State, until: float, trips: int) -> None:
        metrics.observe_breaker(key, int(state), tripped=state is State.OPEN)
        if shared is not None:
            shared.transition(key, state, until, trips)

    health.listener = on_transition
    health_routes = Health(catalog, metering.meter, governance.registry)
    cors = Cors(cfg.server.cors) if cfg.server.cors and cfg.server.cors.allow_origins else None
    known = [] if cfg.models else _known_models(metering, cfg)
    router = _routes(catalog, auth, pipelines, cache, health_routes, access_log, cors, known)
    if metering.meter is not None:
        limits = governance.limits_of if governance.registry is not None else None
        usage = UsageRoutes(UsageQueries(metering.meter), auth, limits)
        _usage_routes(router, usage, access_log)
        reprice = logged(RepriceRoute(metering, auth), "admin/usage/reprice", access_log)
        router.add("POST", "/admin/usage/reprice", reprice)
    validate = ConfigAdmin(cfg, env, auth).validate
    router.add("POST", "/admin/config/validate", logged(validate, "config/validate", access_log))
    check = GuardrailAdmin(guardrails, auth).check
    router.add("POST", "/admin/guardrails/check", logged(check, "guardrails/check", access_log))
    if governance.registry is not None:
        keys = KeyAdmin(governance.registry, governance.governor, auth, guardrails.by_name)
        _key_routes(router, keys, access_log)
    return Gateway(
        settings=cfg.server,
        router=router,
        health=health_routes,
        transport=transport,
        shared=shared,
        cache_runtime=cache_runtime,
        access_log=access_log,
        meter=metering.meter,
        governance=governance,
    )


def build_metering(cfg: GatewayCfg, env: Mapping[str, str], health: HealthRegistry) -> Metering:
    """Metering as `serve` builds it, for the `gateway usage` commands."""
    return _metering(cfg, env, build_catalog(cfg, env, health))


def _metering(cfg: GatewayCfg, env: Mapping[str, str], catalog: Catalog) -> Metering:
    """Prices (the shipped catalog under the config's overrides) and, unless turned off, the
    usage ledger; the store opens when the gateway starts."""
    try:
        pricer = Pricer(PriceCatalog(), cfg.pricing)
    except ValueError as err:
        raise ConfigError(f"pricing: {err}") from None
    usage = cfg.usage
    meter = None
    if usage.enabled:
        try:
            store = open_store(usage.store or env.get("GATEWAY_USAGE_STORE"), env)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        meter = Meter(
            store, flush_interval=usage.flush_interval, max_queue=usage.max_queue,
            retention_days=usage.retention_days,
        )  # fmt: skip
    return Metering(pricer, meter, catalog.providers)


def _known_models(metering: Metering, cfg: GatewayCfg) -> list[ModelInfo]:
    """Zero-config mode: what each provider with credentials can be asked for, by the names
    the router takes (`provider/model`; bare names for the default provider too)."""
    out = []
    for provider, model in metering.known_models():
        out.append(ModelInfo(id=f"{provider}/{model}", owned_by=provider))
        if provider == cfg.default_provider:
            out.append(ModelInfo(id=model, owned_by=provider))
    return out


def _usage_routes(router: Router, routes: UsageRoutes, log: AccessLog | None) -> None:
    for prefix in ("/v1", ""):
        for path, handler in (
            ("usage", routes.usage),
            ("usage/requests", routes.requests),
            ("organization/usage/completions", routes.completions),
            ("organization/usage/embeddings", routes.embeddings),
            ("organization/costs", routes.costs),
        ):
            router.add("GET", f"{prefix}/{path}", logged(handler, path, log))


def _key_routes(router: Router, admin: KeyAdmin, log: AccessLog | None) -> None:
    keys, teams = "/admin/keys/", "/admin/teams/"
    router.add("POST", "/admin/keys", logged(admin.create, "admin/keys", log))
    router.add("GET", "/admin/keys", logged(admin.list, "admin/keys", log))
    one = logged(partial(admin.one, prefix=keys), "admin/keys/{id}", log)
    team = logged(partial(admin.team, prefix=teams), "admin/teams/{name}", log)
    for method in ("GET", "PATCH", "DELETE", "POST"):
        router.add(method, keys, one, prefix=True)
    router.add("POST", "/admin/teams", logged(admin.create_team, "admin/teams", log))
    router.add("GET", "/admin/teams", logged(admin.list_teams, "admin/teams", log))
    for method in ("GET", "PATCH", "DELETE"):
        router.add(method, teams, team, prefix=True)


def _embedder(cfg: GatewayCfg, catalog: Catalog, transport: Transport) -> Embedder:
    name = cfg.cache.embedder
    if name == "local":
        return LocalEmbedder()
    if name == "minilm":
        try:
            return NeuralEmbedder()
        except RuntimeError as err:
            raise ConfigError(f"cache.embedder: {err}") from None
    try:
        catalog.resolve(name)
    except GatewayError as err:
        raise ConfigError(f"cache.embedder: {err.message}") from None
    return ProviderEmbedder(name, catalog, transport)


class Pipelines(NamedTuple):
    openai: Handler
    anthropic: Handler  # with the front door that serves /v1/messages from any model

    def serving(self, endpoint: Endpoint) -> Handler:
        messages = endpoint in (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS)
        return self.anthropic if messages else self.openai


def _routes(
    catalog: Catalog,
    auth: Authenticate,
    pipelines: Pipelines,
    cache: ResponseCache,
    health: Health,
    access_log: AccessLog | None,
    cors: Cors | None = None,
    known: Sequence[ModelInfo] = (),
) -> Router:
    router = Router(cors)
    router.add("GET", "/", index)
    router.add("GET", "/health/live", health.live)
    router.add("GET", "/health/ready", health.ready)
    router.add("GET", "/metrics", metrics_handler)
    admin = CacheAdmin(cache, auth)
    router.add("DELETE", "/admin/cache", logged(admin.delete, "admin/cache", access_log))
    router.add("GET", "/admin/cache/stats", logged(admin.stats, "admin/cache/stats", access_log))
    for prefix in ("/v1", ""):
        for endpoint in Endpoint:
            handler = endpoint_handler(endpoint, pipelines.serving(endpoint))
            router.add("POST", f"{prefix}/{endpoint.value}", handler)
        models = Models(catalog, auth, f"{prefix}/models/", known)
        router.add("GET", f"{prefix}/models", logged(models.list, "models", access_log))
        router.add(
            "GET", f"{prefix}/models/", logged(models.get, "models/{id}", access_log), prefix=True
        )
    return router


class Gateway:
    """The assembled gateway: its routes and the components that start and stop with it."""

    def __init__(  # noqa: PLR0913 - each is built once, in build_app
        self,
        *,
        settings: ServerCfg,
        router: Router,
        health: Health,
        transport: Transport,
        shared: SharedBreakers | None,
        cache_runtime: CacheRuntime,
        access_log: AccessLog | None,
        meter: Meter | None = None,
        governance: Governance | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.health = health
        self._transport = transport
        self._shared = shared
        self._cache_runtime = cache_runtime
        self._access_log = access_log
        self._meter = meter
        self._governance = governance

    async def start(self) -> None:
        await self._transport.start()
        if self._meter is not None:
            await self._meter.start()
        if self._shared is not None:
            await self._shared.start()
        if self._governance is not None:
            await self._governance.start()
        await self._cache_runtime.start()

    async def stop(self) -> None:
        await self._cache_runtime.stop()
        if self._shared is not None:
            await self._shared.stop()
        await self._transport.close()
        if self._governance is not None:
            await self._governance.stop()
        if self._meter is not None:
            await self._meter.stop()
        if self._access_log is not None:
            self._access_log.close()


async def serve(gateway: Gateway, *, reuse_port: bool = False) -> None:
    """Serves until SIGTERM or SIGINT, then stops accepting and lets in-flight requests and
    streams finish (up to server.shutdown_timeout) before closing upstream connections."""
    settings = gateway.settings
    await gateway.start()
    server = HttpServer(
        gateway.router.dispatch,
        refusal,
        max_body_bytes=settings.max_body_bytes,
        keepalive_timeout=settings.keepalive_timeout,
        read_timeout=settings.read_timeout,
    )
    tls = tls_context(settings)
    await server.start(settings.host, settings.port, reuse_port=reuse_port, tls=tls)
    # What startup built lives as long as the process: moved out of the collector's sight, each
    # collection walks only per-request garbage, which shortens the pauses behind p99.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    LOG.info("listening on %s://%s:%d", "https" if tls else "http", settings.host, settings.port)
    try:
        await stop.wait()
    finally:
        gateway.health.draining = True
        LOG.info("draining: waiting up to %.0fs for in-flight requests", settings.shutdown_timeout)
        await server.close(settings.shutdown_timeout)
        await gateway.stop()
        LOG.info("stopped")
