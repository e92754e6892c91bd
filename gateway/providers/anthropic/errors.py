"""Anthropic's errors, and its rate-limit headers, in OpenAI's terms."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from gateway.api import anthropic as wire
from gateway.errors import UpstreamError
from gateway.providers.redact import passed_headers

_STATUS_FOR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 503,
}
_CODE_FOR_TYPE = {
    "authentication_error": "invalid_api_key",
    "not_found_error": "model_not_found",
    "rate_limit_error": "rate_limit_exceeded",
    "overloaded_error": "overloaded",
    "request_too_large": "request_too_large",
}
_CONTEXT_PHRASES = ("prompt is too long", "context window", "too many tokens")
_HEADER_MAP = {
    "anthropic-ratelimit-requests-limit": "x-ratelimit-limit-requests",
    "anthropic-ratelimit-requests-remaining": "x-ratelimit-remaining-requests",
    "anthropic-ratelimit-requests-reset": "x-ratelimit-reset-requests",
    "anthropic-ratelimit-tokens-limit": "x-ratelimit-limit-tokens",
    "anthropic-ratelimit-tokens-remaining": "x-ratelimit-remaining-tokens",
    "anthropic-ratelimit-tokens-reset": "x-ratelimit-reset-tokens",
    "retry-after": "retry-after",
    "x-should-retry": "x-should-retry",
}


def rate_limit_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return passed_headers(headers, _HEADER_MAP)


def _detail(body: bytes) -> wire.ErrorBody | None:
    try:
        return wire.ERROR_DECODER.decode(body).error
    except msgspec.MsgspecError:
        return None


def to_upstream_error(
    status: int,
    detail: wire.ErrorBody | None,
    provider: str,
    headers: Mapping[str, str],
) -> UpstreamError:
    type_ = detail.type if detail else None
    message = detail.message if detail and detail.message else ""
    if not message:
        message = f"provider {provider} returned HTTP {status}"
    code = _CODE_FOR_TYPE.get(type_ or "")
    if status == 400 and any(p in message.lower() for p in _CONTEXT_PHRASES):
        code = "context_length_exceeded"
    if "content filtering" in message.lower():
        code = "content_filter"
    passed = rate_limit_headers(headers)
    # 529 is Anthropic's own "overloaded"; clients and their SDKs know 503.
    if status == 529:
        status = 503
    if not 400 <= status <= 599:
        status = 502
    return UpstreamError(message, status=status, code=code, headers=passed)


def map_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> UpstreamError:
    return to_upstream_error(status, _detail(body), provider, headers)


def stream_error(data: bytes, provider: str) -> UpstreamError:
    """An `error` event inside a 200 stream: its type decides the status it would have had."""
    detail = _detail(data)
    status = _STATUS_FOR_TYPE.get(detail.type if detail else "", 502)
    if detail is None:
        detail = wire.ErrorBody(message=f"provider {provider} sent an unreadable stream event")
    return to_upstream_error(status, detail, provider, {})
