"""The config file's shape as frozen msgspec Structs; unknown keys are errors."""

from collections.abc import Mapping
from typing import Annotated, Literal, TypeVar

import msgspec
from msgspec import Meta, Struct

from gateway.config.alerts import AlertsCfg
from gateway.config.cache import CacheCfg
from gateway.config.governance import GovernanceCfg
from gateway.config.guardrails import GuardrailsCfg
from gateway.config.redis import RedisCfg
from gateway.config.routing import AdmissionCfg, RouteCfg, RoutingCfg, TimeoutsCfg

PositiveSeconds = Annotated[float, Meta(gt=0)]


class Base(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CorsCfg(Base, frozen=True, kw_only=True):
    """Browser clients: exact origins (scheme://host[:port]) or "*" (without credentials)."""

    allow_origins: list[str] = []
    allow_credentials: bool = False
    max_age: Annotated[int, Meta(ge=0, le=86400)] = 600


class ServerCfg(Base, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, Meta(ge=0, le=65535)] = 8080
    workers: Annotated[int, Meta(ge=1, le=256)] = 1
    master_key: str | None = None
    allow_unauthenticated: bool = False
    max_body_bytes: Annotated[int, Meta(ge=1024)] = 32 * 1024 * 1024
    shutdown_timeout: PositiveSeconds = 30.0
    # An idle keep-alive connection is closed after this; a request whose head and body take
    # longer than read_timeout to arrive is answered 408 (slow or stalled clients).
    keepalive_timeout: PositiveSeconds = 75.0
    read_timeout: PositiveSeconds = 60.0
    # HTTPS with this PEM certificate chain and key (both or neither); else plain HTTP.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    access_log: bool = True
    # What a provider may send: a whole (non-stream) answer, and one stream event before its
    # end; more is a 502 (or, mid-stream, an error event), never unbounded memory.
    max_upstream_body_bytes: Annotated[int, Meta(ge=1024)] = 64 * 1024 * 1024
    max_stream_event_bytes: Annotated[int, Meta(ge=1024)] = 1024 * 1024
    cors: CorsCfg | None = None  # off unless origins are given


class ProviderCfg(Base, frozen=True, kw_only=True):
    # Defaults to the provider's own name when that names a known preset ("openai", "groq", ...).
    type: str | None = None
    api_key: str | None = None
    base_url: str | None = None
    headers: dict[str, str] = {}
    timeouts: TimeoutsCfg | None = None
    # Concurrency limit for all of this provider's targets, with a bounded wait queue.
    admission: AdmissionCfg | None = None
    # Azure OpenAI: the api-version of deployment URLs (none: the v1 API).
    api_version: str | None = None
    # AWS Bedrock and Google Vertex AI.
    region: str | None = None
    project: str | None = None
    credentials_file: str | None = None


class ModelCfg(RouteCfg, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1)]
    guardrails: list[str] = []  # named guardrails (guardrails.policies) for this model
    log_bodies: bool | None = None  # keep this model's bodies (None: as logging.bodies says)


Rate = Annotated[float, Meta(ge=0)]


class PriceCfg(Base, frozen=True, kw_only=True):
    """US dollars per million tokens; or `base_model`: price as that catalog model (an Azure
    deployment, a fine-tune). A kind without its own rate is paid at its parent's: cached
    input and cache writes at `input`, reasoning and audio output at `output`."""

    input: Rate | None = None
    output: Rate | None = None
    cached_input: Rate | None = None
    cache_write: Rate | None = None  # 5-minute cache writes (Anthropic), or any cache write
    cache_write_1h: Rate | None = None
    reasoning: Rate | None = None
    input_audio: Rate | None = None
    output_audio: Rate | None = None
    base_model: str | None = None

    def __post_init__(self) -> None:
        if self.base_model is None and (self.input is None or self.output is None):
            raise ValueError("give input and output (US dollars per million tokens), or base_model")


class UsageCfg(Base, frozen=True, kw_only=True):
    """The usage ledger (gateway/metering): one row per request, minute rollups, the usage API."""

    enabled: bool = True
    # sqlite (usage.db in GATEWAY_DATA_DIR, default ./data), sqlite:///path, or
    # postgresql://… (shared by several instances). Secrets may be written env:VAR.
    store: str | None = None
    retention_days: Annotated[float, Meta(gt=0)] = 7  # raw rows; rollups are kept
    flush_interval: Annotated[float, Meta(gt=0, le=1)] = 0.5  # seconds
    max_queue: Annotated[int, Meta(ge=1000)] = 200_000  # rows held while the store is down
    # Each row also goes to a local file as it is recorded (GATEWAY_DATA_DIR/spool), so a
    # kill -9, or a stop while the store is down, loses nothing: the next process writes it.
    spool: bool = True


class ResponsesCfg(Base, frozen=True, kw_only=True):
    """/v1/responses: what `store` keeps (each response's items, for previous_response_id and
    GET /v1/responses/{id}), in the usage ledger's database, under the caller's partition."""

    store: bool = True  # false: nothing is kept, whatever a request's `store` says
    retention_days: Annotated[float, Meta(gt=0)] = 30
    max_memory: Annotated[int, Meta(ge=0)] = 10_000  # the newest kept in memory too


class LoggingCfg(Base, frozen=True, kw_only=True):
    # The access log's lines: `text` (as the rest of the log) or `json`, one object a line.
    format: Literal["text", "json"] = "text"
    # Request and response bodies kept with each ledger row (PII and secrets masked first):
    # for every request, or only for the models (`models[].log_bodies`) and virtual keys
    # (metadata `log_bodies: "true"`) that ask.
    bodies: bool = False
    body_max_bytes: Annotated[int, Meta(ge=256, le=1 << 20)] = 32768  # each body cut to this
    body_retention_days: Annotated[float, Meta(gt=0)] = 3.0  # then the bodies are erased


class MetricsCfg(Base, frozen=True, kw_only=True):
    # OpenTelemetry's GenAI metric conventions beside the gateway's own series: opt-in, since
    # they cost about 5% of throughput (benchmarks/RESULTS.md).
    genai: bool = False


class DashboardCfg(Base, frozen=True, kw_only=True):
    # /dashboard: usage, cost, latency, budgets and the latest requests, from the ledger.
    enabled: bool = True
    # A second key that may sign in to the dashboard (read-only) and nothing else.
    viewer_key: str | None = None
    session_hours: Annotated[float, Meta(gt=0, le=720)] = 12.0  # how long a sign-in lasts
    # How often the open page reloads its numbers.
    refresh_seconds: Annotated[float, Meta(ge=1, le=3600)] = 10.0


class TracingCfg(Base, frozen=True, kw_only=True):
    # OpenTelemetry traces over OTLP/HTTP (protobuf): one span per request, with children for
    # the cache lookup and each upstream attempt (gateway/tracing; no extra dependency).
    enabled: bool = False
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    sample_ratio: Annotated[float, Meta(ge=0, le=1)] = 1.0  # traces without a sampled parent
    service_name: str = "gateway"
    headers: dict[str, str] = {}  # e.g. a collector's authorization (env: values)
    max_queue: Annotated[int, Meta(ge=1)] = 8192  # finished traces waiting; past it, dropped
    batch_size: Annotated[int, Meta(ge=1)] = 512
    export_interval: Annotated[float, Meta(gt=0, le=60)] = 1.0  # seconds
    timeout: Annotated[float, Meta(gt=0, le=60)] = 5.0  # one export's, seconds


class GatewayCfg(Base, frozen=True, kw_only=True):
    server: ServerCfg = ServerCfg()
    timeouts: TimeoutsCfg = TimeoutsCfg()
    providers: dict[str, ProviderCfg] = {}
    models: list[ModelCfg] = []
    routing: RoutingCfg = RoutingCfg()
    # The Redis every instance shares (breakers, cache, limits, key revocation, responses):
    # `redis: {url: …}`, `{cluster: true, nodes: [h:p, …]}` or `{sentinel: name, nodes: […]}`.
    redis: RedisCfg = RedisCfg()
    cache: CacheCfg = CacheCfg()
    # Prices by "provider/model" or model name; they win over the shipped catalog.
    pricing: dict[str, PriceCfg] = {}
    usage: UsageCfg = UsageCfg()
    responses: ResponsesCfg = ResponsesCfg()
    # Virtual keys, teams, rate limits and budgets (gateway/governance).
    governance: GovernanceCfg = GovernanceCfg()
    # PII and secret scanning, topics, size and citation rules (gateway/guardrails).
    guardrails: GuardrailsCfg = GuardrailsCfg()
    logging: LoggingCfg = LoggingCfg()
    metrics: MetricsCfg = MetricsCfg()
    dashboard: DashboardCfg = DashboardCfg()
    # Webhooks for budgets crossing thresholds, breakers opening, error-rate spikes.
    alerts: AlertsCfg = AlertsCfg()
    tracing: TracingCfg = TracingCfg()
    # Zero-config routing of "provider/model" names; on by default only without a config file.
    default_provider: str | None = None


def shared_redis_url(cfg: GatewayCfg, env: Mapping[str, str]) -> str | None:
    """The shared Redis: routing.redis_url, else the `redis:` section, else REDIS_URL."""
    return cfg.routing.redis_url or cfg.redis.as_url() or env.get("REDIS_URL")


StructT = TypeVar("StructT", bound=Base)


def replace(cfg: StructT, **changes: object) -> StructT:
    return msgspec.structs.replace(cfg, **changes)
