"""The state of one request as it moves through the pipeline, and what the pipeline returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from gateway.api.requests import RequestView
from gateway.api.usage import Usage
from gateway.errors import GatewayError
from gateway.observability.labels import MODEL_LABELS
from gateway.pipeline.faults import Fault
from gateway.providers.base import Endpoint, Timeouts
from gateway.routing.plan import Route, Target

if TYPE_CHECKING:
    from gateway.governance.registry import Principal
    from gateway.governance.rules import Lease
    from gateway.responses.exchange import Exchange
    from gateway.tracing.spans import Trace


class HttpRequest(Protocol):
    """What the pipeline needs of the incoming HTTP request."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes: ...


class Call:
    """One request's state; stages fill it in as they go. Passed explicitly, never global."""

    __slots__ = (
        "attempts",
        "cache_result",
        "cached_model",
        "cached_provider",
        "cost",
        "cost_known",
        "endpoint",
        "error",
        "error_fault",
        "frames",
        "fallback_path",
        "fault",
        "estimate",
        "first_token_at",
        "guardrails",
        "http",
        "leases",
        "metadata",
        "on_end",
        "override",
        "principal",
        "raw",
        "chat_only",
        "exchange",
        "request_id",
        "price_id",
        "response_body",
        "unreported",
        "route",
        "route_choice",
        "route_reason",
        "route_score",
        "saved_usage",
        "served_model",
        "service_tier",
        "started",
        "status",
        "stream",
        "stream_error",
        "target",
        "timeout",
        "timeouts",
        "trace",
        "upstream_endpoint",
        "upstream_seconds",
        "usage",
        "usage_counted",
        "view",
    )

    def __init__(
        self, request_id: str, endpoint: Endpoint, http: HttpRequest, started: float
    ) -> None:
        self.request_id = request_id
        self.endpoint = endpoint
        # What the provider is asked for; differs when a front door translates (frontdoor.py).
        self.upstream_endpoint = endpoint
        self.http = http
        self.started = started
        self.raw = b""
        self.view: RequestView | None = None
        self.stream = False
        self.timeout: float | None = None  # per-request total deadline, seconds
        self.timeouts: Timeouts | None = None  # this attempt's deadlines (failover.py)
        self.metadata: dict[str, Any] | None = None  # the x-gateway-metadata header
        self.fault: Fault | None = None  # a drill's simulated failure (faults.py)
        self.attempts = 0  # upstream attempts so far, retries and fallbacks together
        self.fallback_path = ""  # which child was taken at each level, e.g. "1.0"
        self.route: Route | None = None
        # The routing decision (x-gateway-route, -route-reason, -route-score; the ledger).
        self.route_choice: str | None = None
        self.route_reason: str | None = None
        self.route_score: float | None = None
        self.override: dict[str, Any] | None = None  # this attempt's target's override_params
        self.target: Target | None = None
        self.usage: Usage | None = None
        self.status = 0
        self.upstream_seconds: float | None = None
        self.first_token_at: float | None = None
        self.stream_error: GatewayError | None = None
        # Metering (gateway/metering/record.py): what answered, what it cost, cache outcome.
        self.served_model: str | None = None  # the provider's own id for what served
        self.service_tier: str | None = None  # and at which tier, when it says (priced apart)
        self.frames: list[bytes] | None = None  # a stream's relayed frames, if usage is missing
        self.unreported: bytes | None = None  # a whole answer that reported no usage
        self.usage_counted = False  # usage counted by the gateway, not reported
        self.cost: int | None = None  # nano-dollars; None: unpriced
        self.cost_known = False
        self.price_id: str | None = None
        self.cache_result: str | None = None  # HIT | SEMANTIC_HIT | MISS | BYPASS | REFRESH
        self.saved_usage: Usage | None = None  # a cache hit's stored usage
        self.cached_provider: str | None = None
        self.cached_model: str | None = None
        self.error: str | None = None  # the error type the client was answered with
        self.error_fault: str | None = None  # and whose fault: caller, policy, provider, gateway
        self.guardrails: str | None = None  # the guardrails' verdicts (x-gateway-guardrails)
        # Governance: the caller's virtual key (None: the master key), and what to run when
        # the request ends, after metering (a limiter hold settled to the actual usage).
        self.principal: Principal | None = None
        self.on_end: Callable[[Call], None] | None = None
        self.leases: list[Lease] | None = None  # the request's, then each attempt's on a target
        self.estimate: tuple[int, int] | None = None  # tokens and nano-dollars, once counted
        self.trace: Trace | None = None  # when traced (gateway/tracing)
        self.response_body: bytearray | None = None  # the answer, when its body is logged
        # A stage above failover rewrote the chat body (masked input) or reads the answer as
        # chat (output guardrails): a Responses pass-through would bypass it, so none is made.
        self.chat_only = False
        self.exchange: Exchange | None = None  # a /v1/responses call (gateway/responses)

    @property
    def body_endpoint(self) -> Endpoint:
        """The form `raw` and `view` are in: chat, once the Responses front door has
        translated a /v1/responses call or its input_tokens."""
        return Endpoint.CHAT if self.exchange is not None else self.endpoint

    @property
    def model_label(self) -> str:
        # Configured names are labels as they are; client-chosen ones go through a bounded set
        # (once a provider has accepted them), so no stream of names can grow /metrics.
        route = self.route
        if route is None:
            return "unknown"
        if route.configured:
            return route.name
        return MODEL_LABELS.label(route.name, admit=200 <= self.status < 300)

    @property
    def provider_label(self) -> str:
        return self.target.provider.name if self.target is not None else "none"


class Reply:
    """A response in OpenAI's format: a JSON body, or SSE bytes to relay as they come.

    `after` is bookkeeping that does not change the answer (metrics, the access log): the edge
    runs it once the answer is written, or has failed to be, so the client never waits on it.
    """

    __slots__ = ("after", "body", "events", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes | None = None,
        events: AsyncIterator[bytes] | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.events = events
        self.after: Callable[[], None] | None = None


Handler = Callable[[Call], Awaitable[Reply]]


class Stage(Protocol):
    async def __call__(self, call: Call, call_next: Handler) -> Reply: ...
