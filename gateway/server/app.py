"""Assembles the gateway from its config and serves it until SIGTERM, draining in-flight work."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import signal
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway.alerts import Watcher, build_alerts
from gateway.api.usage import Usage
from gateway.cache.embedders import Embedder, NeuralEmbedder, build_embedder, caches_by_meaning
from gateway.cache.runtime import CacheRuntime
from gateway.cache.semantic import SemanticIndex, SemanticSync
from gateway.cache.store import CacheStore, MemoryStore, RedisStore
from gateway.config.errors import ConfigError
from gateway.config.schema import GatewayCfg, ServerCfg, shared_redis_url
from gateway.dashboard import Dashboard
from gateway.evaluation.feedback import Feedback
from gateway.evaluation.shadow import ShadowRunner, build_shadow_runner
from gateway.governance.service import Governance, build_governance
from gateway.guardrails.policy import build_guardrails
from gateway.metering.bodies import BodyLog
from gateway.metering.meter import Meter
from gateway.metering.prices import Catalog as PriceCatalog
from gateway.metering.prices import Pricer
from gateway.metering.query import UsageQueries
from gateway.metering.record import Metering
from gateway.metering.spool import Spool, spool_dir
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
from gateway.pipeline.responses import ResponsesFrontDoor, ResponsesPassThrough
from gateway.pipeline.shadow import Shadow
from gateway.pipeline.upstream import CallProvider
from gateway.providers.base import Endpoint
from gateway.providers.transport import Transport
from gateway.responses.hot import RedisTier
from gateway.responses.state import Conversations
from gateway.routing.catalog import Catalog, ModelInfo, build_catalog
from gateway.routing.health import HealthRegistry, State
from gateway.routing.shared import SharedBreakers
from gateway.routing.smart import build_smart_router
from gateway.server.admin import CacheAdmin
from gateway.server.config_admin import ConfigAdmin
from gateway.server.cors import Cors
from gateway.server.edge import Router, refusal
from gateway.server.evaluation import add_evaluation_routes, summaries
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
from gateway.server.responses import StoredResponses
from gateway.server.tls import tls_context
from gateway.server.usage import RepriceRoute, UsageRoutes
from gateway.server.warming import Warming
from gateway.store import data_dir, open_store, store_url
from gateway.store.feedback import open_feedback_store
from gateway.store.responses import open_response_store
from gateway.tracing import Tracer

if TYPE_CHECKING:
    from gateway.server.reload import Reloader

LOG = logging.getLogger("gateway.server")


def build_app(cfg: GatewayCfg, env: Mapping[str, str], previous: Gateway | None = None) -> Gateway:
    """The gateway for `cfg`. With `previous` (a reload), its long-lived parts are carried
    over wherever the config they were built from is unchanged: breaker state, connection
    pools, caches, the ledger's queue, limiter leases and the access log survive."""
    old = previous.parts if previous is not None else None
    health = old.health if old is not None else HealthRegistry()
    catalog = build_catalog(cfg, env, health)
    transport = _kept(old, "transport", cfg, env) or Transport(
        max_body_bytes=cfg.server.max_upstream_body_bytes
    )
    routing = cfg.routing
    redis_url = _redis_url(cfg, env)
    cache_redis = cfg.cache.redis_url or redis_url
    cache_parts = _kept(old, "cache_runtime", cfg, env)
    if old is not None and cache_parts is not None:
        store, semantic, sync = old.store, old.semantic, old.sync
        cache_runtime = cache_parts
    else:
        store = CacheStore(
            MemoryStore(cfg.cache.max_entries, cfg.cache.max_bytes),
            RedisStore(
                cache_redis, timeout_ms=cfg.cache.redis_timeout_ms, queue=cfg.cache.write_queue
            )
            if cache_redis
            else None,
        )
        semantic = SemanticIndex(cfg.cache.max_entries)
        sync = (
            SemanticSync(cache_redis, semantic, cfg.cache.write_queue, cfg.cache.warm_timeout)
            if cache_redis
            else None
        )
        cache_runtime = CacheRuntime(store, semantic, sync, cfg.cache.snapshot_path)
    embedder = (
        old.embedder
        if old is not None and isinstance(old.embedder, NeuralEmbedder)
        and cfg.cache.embedder in ("minilm", "auto")
        else build_embedder(cfg.cache.embedder, catalog, transport, data_dir=data_dir(env))
    )  # fmt: skip
    if isinstance(embedder, NeuralEmbedder) and caches_by_meaning(cfg):
        embedder.preload()
    metering = _metering(cfg, env, catalog, _kept(old, "meter", cfg, env))

    def price(provider: str, model: str, usage: Usage) -> int | None:
        return metering.price_usage(provider, model, usage)[0]

    governance = _kept(old, "governance", cfg, env) or build_governance(cfg, env, price)
    budgets = governance.budgets if governance.registry is not None else None
    guardrails = build_guardrails(cfg, transport, catalog)
    auth = Authenticate(cfg.server.master_key, governance.registry)
    cache = ResponseCache(store, cfg.cache, semantic, embedder, sync, price)
    alerts: Watcher = _kept(old, "alerts", cfg, env) or build_alerts(cfg.alerts, transport, budgets)
    tracer = _kept(old, "tracer", cfg, env) or _tracer(cfg)
    json_lines = cfg.logging.format == "json"
    access_log = _kept(old, "access_log", cfg, env) or (
        AccessLog(json_lines=json_lines) if cfg.server.access_log and AccessLog.enabled() else None
    )
    # Every stage costs every request a layer, so a stage with nothing to do is left out: the
    # key check when no key is set, and the front door everywhere but Anthropic's routes.
    stages: list[Stage] = [
        Account(
            access_log,
            metering,
            genai=cfg.metrics.genai,
            outcome=alerts.window.observe if alerts.window is not None else None,
            finish=tracer.finish if tracer is not None else None,
            bodies=_body_log(cfg, metering, governance),
            begin=tracer.begin if tracer is not None else None,
        ),  # fmt: skip
        *([auth] if auth.required else []),
        Parse(),
        Resolve(catalog, config_header=routing.config_header),
        *([Guard(guardrails)] if guardrails.active else []),
        *([Govern(governance.governor, metering)] if governance.active else []),
        cache,
    ]
    failover = Failover(
        routing,
        decode_view,
        governance.governor.gate if governance.governor.has_target_rules else None,
        build_smart_router(catalog, metering.model_price, transport, embedder),
    )  # fmt: skip
    terminal = CallProvider(transport, max_event_bytes=cfg.server.max_stream_event_bytes)
    shadow = build_shadow_runner(cfg, env, catalog, metering, embedder, compose([
        Account(None, metering, genai=cfg.metrics.genai), Parse(),
        Resolve(catalog, config_header=False), failover,
    ], terminal))  # fmt: skip
    stages += [*([Shadow(shadow)] if shadow is not None else []), failover]
    feedback = None
    if metering.meter is not None:
        feedback = _kept(old, "feedback", cfg, env) or Feedback(
            open_feedback_store(store_url(cfg.usage.store, env), env), metering.meter
        )
    conversations = _kept(old, "conversations", cfg, env) or _conversations(cfg, env)
    parsed = next(i for i, stage in enumerate(stages) if isinstance(stage, Parse)) + 1
    front_door = ResponsesFrontDoor(conversations)
    responses = [*stages[:parsed], front_door, *stages[parsed:]]
    pipelines = Pipelines(
        openai=compose(stages, terminal),
        anthropic=compose([*stages, AnthropicFrontDoor()], terminal),
        responses=compose([*responses, ResponsesPassThrough(transport)], terminal),
    )
    shared = _kept(old, "shared", cfg, env) or (
        SharedBreakers(redis_url, health) if redis_url else None
    )

    def on_transition(key: str, state: State, until: float, trips: int) -> None:
        metrics.observe_breaker(key, int(state), tripped=state is State.OPEN)
        alerts.breaker(key, state)
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
    if cfg.dashboard.enabled:
        dashboard = Dashboard(
            cfg.dashboard,
            cfg.server.master_key,
            UsageQueries(metering.meter) if metering.meter is not None else None,
            budgets,
            secure=bool(cfg.server.tls_cert_file),
            evaluations=summaries(feedback, shadow),
        )
        _dashboard_routes(router, dashboard, access_log)
    config_admin = ConfigAdmin(cfg, env, auth)
    router.add(
        "POST", "/admin/config/validate",
        logged(config_admin.validate, "config/validate", access_log),
    )  # fmt: skip
    router.add(
        "POST", "/admin/config/reload", logged(config_admin.reload, "config/reload", access_log)
    )
    check = GuardrailAdmin(guardrails, auth).check
    router.add("POST", "/admin/guardrails/check", logged(check, "guardrails/check", access_log))
    stored = StoredResponses(conversations, auth, catalog.providers, transport)
    _responses_routes(router, stored, access_log)
    add_evaluation_routes(router, auth, feedback, shadow, access_log)
    if governance.registry is not None:
        keys = KeyAdmin(governance.registry, governance.governor, auth, guardrails.by_name)
        _key_routes(router, keys, access_log)
    parts = Parts(
        cfg=cfg, env=dict(env), health=health, transport=transport, store=store,
        semantic=semantic, sync=sync, embedder=embedder, cache_runtime=cache_runtime,
        meter=metering.meter, governance=governance, shared=shared, access_log=access_log,
        alerts=alerts, tracer=tracer, conversations=conversations, feedback=feedback,
        shadow=shadow,
    )  # fmt: skip
    return Gateway(
        settings=cfg.server, router=router, health=health_routes, parts=parts,
        config_admin=config_admin,
    )  # fmt: skip


class Parts(NamedTuple):
    """What a gateway is built from that outlives one request, and the config it was built
    from; a reload carries each part over whose own config is unchanged (`_kept`)."""

    cfg: GatewayCfg
    env: dict[str, str]
    health: HealthRegistry  # breaker state, by target: always carried over
    transport: Transport
    store: CacheStore
    semantic: SemanticIndex
    sync: SemanticSync | None
    embedder: Embedder
    cache_runtime: CacheRuntime
    meter: Meter | None
    governance: Governance
    shared: SharedBreakers | None
    access_log: AccessLog | None
    alerts: Watcher
    tracer: Tracer | None
    conversations: Conversations
    feedback: Feedback | None
    shadow: ShadowRunner | None  # holds this build's stages: never carried over

    def running(self) -> list[object]:
        """The parts with a start and a stop, in start order."""
        parts: list[object | None] = [
            self.transport,
            self.meter,
            self.shared,
            self.governance,
            self.cache_runtime,
            self.alerts,
            self.tracer,
            self.conversations,
            self.feedback,
            self.shadow,
        ]
        return [p for p in parts if p is not None]


def _redis_url(cfg: GatewayCfg, env: Mapping[str, str]) -> str | None:
    return shared_redis_url(cfg, env)


# What each long-lived part is built from: a part is carried over by a reload only when this
# is the same under the new config as under the old.
_BUILT_FROM: dict[str, Callable[[GatewayCfg, Mapping[str, str]], object]] = {
    "transport": lambda c, e: c.server.max_upstream_body_bytes,
    "cache_runtime": lambda c, e: (
        c.cache.redis_url or _redis_url(c, e), c.cache.max_entries, c.cache.max_bytes,
        c.cache.redis_timeout_ms, c.cache.write_queue, c.cache.snapshot_path,
        c.cache.warm_timeout,
    ),
    "meter": lambda c, e: (
        c.usage, e.get("GATEWAY_USAGE_STORE"), c.logging.body_retention_days
    ),
    "governance": lambda c, e: (
        c.governance, _redis_url(c, e), c.server.master_key, c.server.workers, c.usage.store,
        c.pricing,
    ),
    "shared": lambda c, e: _redis_url(c, e),
    "access_log": lambda c, e: (c.server.access_log, c.logging),
    "tracer": lambda c, e: c.tracing,
    "conversations": lambda c, e: (
        c.responses, store_url(c.usage.store, e), _redis_url(c, e)
    ),
}  # fmt: skip
_BUILT_FROM["feedback"] = _BUILT_FROM["meter"]  # it reads the meter's rows
# The alerts' watcher holds the transport and the governance it reads budgets from.
_BUILT_FROM["alerts"] = lambda c, e: (
    c.alerts,
    _BUILT_FROM["transport"](c, e),
    _BUILT_FROM["governance"](c, e),
)


def _kept(old: Parts | None, name: str, cfg: GatewayCfg, env: Mapping[str, str]) -> Any:
    if old is None:
        return None
    built_from = _BUILT_FROM[name]
    if built_from(cfg, env) != built_from(old.cfg, old.env):
        return None
    return getattr(old, name)


def build_metering(cfg: GatewayCfg, env: Mapping[str, str], health: HealthRegistry) -> Metering:
    """Metering as `serve` builds it, for the `gateway usage` commands."""
    return _metering(cfg, env, build_catalog(cfg, env, health))


def _metering(
    cfg: GatewayCfg, env: Mapping[str, str], catalog: Catalog, meter: Meter | None = None
) -> Metering:
    """Prices (the shipped catalog under the config's overrides) and, unless turned off, the
    usage ledger (or the running one, on a reload); the store opens when the gateway starts."""
    try:
        pricer = Pricer(_price_catalog(), cfg.pricing)
    except ValueError as err:
        raise ConfigError(f"pricing: {err}") from None
    usage = cfg.usage
    if meter is None and usage.enabled:
        try:
            store = open_store(store_url(usage.store, env), env)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        spool = Spool(spool_dir(data_dir(env), store.description)) if usage.spool else None
        meter = Meter(
            store, flush_interval=usage.flush_interval, max_queue=usage.max_queue,
            retention_days=usage.retention_days,
            body_retention_days=cfg.logging.body_retention_days, spool=spool,
        )  # fmt: skip
    return Metering(pricer, meter, catalog.providers)


def _body_log(cfg: GatewayCfg, metering: Metering, governance: Governance) -> BodyLog | None:
    """Request bodies in the ledger, where the config (or a virtual key) may ask for them."""
    asked = cfg.logging.bodies or any(m.log_bodies for m in cfg.models)
    if metering.meter is None or not (asked or governance.registry is not None):
        return None
    return BodyLog(cfg)


def _conversations(cfg: GatewayCfg, env: Mapping[str, str]) -> Conversations:
    """Stored responses, in the usage ledger's database (unless `responses.store` is off)."""
    if not cfg.responses.store:
        return Conversations(None, cfg.responses)
    redis = _redis_url(cfg, env)
    hot = RedisTier(redis, cfg.responses.retention_days * 86400) if redis else None
    store = open_response_store(store_url(cfg.usage.store, env), env)
    return Conversations(store, cfg.responses, hot)


def _tracer(cfg: GatewayCfg) -> Tracer | None:
    return Tracer(cfg.tracing) if cfg.tracing.enabled else None


@functools.cache
def _price_catalog() -> PriceCatalog:
    """The shipped catalog, read once per process (a reload reuses it)."""
    return PriceCatalog()


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


def _dashboard_routes(router: Router, dashboard: Dashboard, log: AccessLog | None) -> None:
    page = logged(dashboard.page, "dashboard", log)
    router.add("GET", "/dashboard", page)
    router.add("GET", "/dashboard/", page)
    router.add("GET", "/dashboard/static/", dashboard.asset, prefix=True)
    router.add("GET", "/dashboard/api/", logged(dashboard.api, "dashboard/api", log), prefix=True)
    router.add("POST", "/dashboard/login", logged(dashboard.login, "dashboard/login", log))
    router.add("POST", "/dashboard/logout", logged(dashboard.logout, "dashboard/logout", log))


def _responses_routes(router: Router, stored: StoredResponses, log: AccessLog | None) -> None:
    for prefix in ("/v1/responses/", "/responses/"):
        get = logged(partial(stored.get, prefix=prefix), "responses/{id}", log)
        delete = logged(partial(stored.delete, prefix=prefix), "responses/{id}", log)
        router.add("GET", prefix, get, prefix=True)
        router.add("DELETE", prefix, delete, prefix=True)


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


class Pipelines(NamedTuple):
    openai: Handler
    anthropic: Handler  # with the front door that serves /v1/messages from any model
    responses: Handler  # and the one that serves /v1/responses

    def serving(self, endpoint: Endpoint) -> Handler:
        if endpoint in (Endpoint.RESPONSES, Endpoint.INPUT_TOKENS):
            return self.responses
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
    """The assembled gateway: its routes and the parts that start and stop with it."""

    def __init__(
        self,
        *,
        settings: ServerCfg,
        router: Router,
        health: Health,
        parts: Parts,
        config_admin: ConfigAdmin,
    ) -> None:
        self.settings = settings
        self.router = router
        self.health = health
        self.parts = parts
        self.config_admin = config_admin

    async def start(
        self, running: Sequence[object] = (), progress: Callable[[object], None] | None = None
    ) -> None:
        """Starts every part not already running (a reload's carried-over parts are)."""
        started = {id(p) for p in running}
        for part in self.parts.running():
            if id(part) not in started:
                if progress is not None:
                    progress(part)
                await part.start()  # type: ignore[attr-defined]

    async def stop(self, keep: Sequence[object] = ()) -> None:
        """Stops every part but those in `keep` (a successor's, after a reload)."""
        kept = {id(p) for p in keep}
        for part in reversed(self.parts.running()):
            if id(part) not in kept:
                stop = part.close if isinstance(part, Transport) else part.stop  # type: ignore[attr-defined]
                await stop()
        log = self.parts.access_log
        if log is not None and id(log) not in kept:
            log.close()

    def kept_parts(self) -> list[object]:
        parts: list[object] = self.parts.running()
        if self.parts.access_log is not None:
            parts.append(self.parts.access_log)
        return parts


async def serve(
    gateway: Gateway, *, reuse_port: bool = False, reloader: Reloader | None = None
) -> None:
    """Serves until SIGTERM or SIGINT, then stops accepting and lets in-flight requests and
    streams finish (up to server.shutdown_timeout) before closing upstream connections. With a
    reloader, SIGHUP (and its file watch, if on) swaps in a freshly built gateway."""
    settings = gateway.settings
    # One process listens from the start, so probes see it; until its parts are up,
    # readiness is 503 and so is everything but liveness (server/warming.py). A worker of
    # several opens the shared port only once warm: the kernel would hand a cold worker its
    # share of new connections, which the warm ones can take instead.
    warming = Warming()
    server = HttpServer(
        warming.dispatch,
        refusal,
        max_body_bytes=settings.max_body_bytes,
        keepalive_timeout=settings.keepalive_timeout,
        read_timeout=settings.read_timeout,
    )
    tls = tls_context(settings)
    if reuse_port:
        await gateway.start()
        server.handler = gateway.router.dispatch
    await server.start(settings.host, settings.port, reuse_port=reuse_port, tls=tls)
    if not reuse_port:
        try:
            await gateway.start(progress=warming.starting)
        except BaseException:
            await server.close(0)
            raise
        server.handler = gateway.router.dispatch
    # What startup built lives as long as the process: moved out of the collector's sight, each
    # collection walks only per-request garbage, which shortens the pauses behind p99.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if reloader is not None:
        reloader.attach(server, gateway)
        loop.add_signal_handler(signal.SIGHUP, reloader.on_signal)
    else:  # zero-config: nothing to read again, and SIGHUP must not end the process
        loop.add_signal_handler(
            signal.SIGHUP, LOG.warning, "SIGHUP: no config file to reload (zero-config mode)"
        )
    LOG.info("listening on %s://%s:%d", "https" if tls else "http", settings.host, settings.port)
    try:
        await stop.wait()
    finally:
        if reloader is not None:
            gateway = await reloader.detach()
        gateway.health.draining = True
        LOG.info("draining: waiting up to %.0fs for in-flight requests", settings.shutdown_timeout)
        await server.close(settings.shutdown_timeout)
        if reloader is not None:
            await reloader.retire_all()
        await gateway.stop()
        LOG.info("stopped")
