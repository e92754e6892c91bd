"""The gateway's exception hierarchy; server/middleware.py maps it to OpenAI-shaped JSON once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class GatewayError(Exception):
    """Base of every error a client may see. Class attributes give the defaults."""

    status: int = 500
    type: ClassVar[str] = "server_error"
    code: str | None = None
    # Whose fault, for metrics: caller (a bad request), policy (a limit or rule of the
    # operator's), provider (the upstream failed), gateway (a bug of ours).
    fault: ClassVar[str] = "gateway"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers: Mapping[str, str] = headers or {}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    fault = "caller"


class ContentBlocked(InvalidRequest):
    """A guardrail refused the request's content (its status may be 446, Portkey's)."""

    code = "content_filter"
    fault = "policy"


class MalformedJSON(InvalidRequest):
    code = "invalid_json"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    fault = "caller"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    fault = "caller"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"
    fault = "caller"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"
    fault = "caller"


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
    fault = "policy"


class TargetsUnavailable(ServiceUnavailable):
    """Every target of the route is cooling down after failures (circuit breakers open)."""

    code = "no_healthy_targets"


class Overloaded(GatewayError):
    """A target's concurrency limit and queue are full (admission control)."""

    status = 429
    type = "rate_limit_error"
    code = "gateway_overloaded"
    fault = "policy"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"retry-after": "1"})


class PermissionDenied(GatewayError):
    """The caller's key may not do this (a model outside its allow-list)."""

    status = 403
    type = "permission_error"
    code = "model_not_allowed"
    fault = "caller"


class RateLimited(GatewayError):
    """A rate rule of the operator's (requests, tokens, concurrency) is exhausted for now."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    fault = "policy"


class BudgetExceeded(RateLimited):
    """A budget is spent: retrying before its period ends cannot help."""

    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(GatewayError):
    """An error response from a provider, normalised; keeps the provider's HTTP status."""

    type = "upstream_error"
    fault = "provider"

    def __init__(
        self,
        message: str,
        *,
        status: int,
        error_type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self.status = status
        self.error_type = error_type or _type_for_status(status)


class UpstreamUnavailable(GatewayError):
    """The provider could not be reached, or dropped the connection."""

    status = 502
    type = "upstream_error"
    code = "upstream_unavailable"
    fault = "provider"


class UpstreamTimeout(GatewayError):
    status = 504
    type = "upstream_error"
    code = "upstream_timeout"
    fault = "provider"


def _type_for_status(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def error_type(err: GatewayError) -> str:
    return err.error_type if isinstance(err, UpstreamError) else err.type


def fault_of(err: GatewayError) -> str:
    """A provider's 4xx other than 429 answers the caller's request as it was sent."""
    if isinstance(err, UpstreamError) and 400 <= err.status < 500 and err.status not in (408, 429):
        return "caller"
    return err.fault


def provider_failed(err: GatewayError) -> bool:
    """Whether the error says the target is unhealthy (counts against its breaker)."""
    return fault_of(err) == "provider"
