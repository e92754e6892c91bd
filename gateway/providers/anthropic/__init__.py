"""Anthropic's Messages API behind the OpenAI surface, and natively for /v1/messages clients."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from gateway.api import anthropic as wire
from gateway.api.chat import CHAT_REQUEST_DECODER
from gateway.api.codec import patch_fields
from gateway.api.requests import RequestView, wants_usage
from gateway.api.usage import Usage
from gateway.api.validation import decode_request
from gateway.errors import UpstreamError
from gateway.providers.anthropic import errors, response
from gateway.providers.anthropic.request import to_anthropic
from gateway.providers.base import (
    CredentialSource,
    Endpoint,
    ParsedBody,
    StreamTranslator,
    Timeouts,
    UpstreamRequest,
)

DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
_ENCODER = msgspec.json.Encoder()


class _UsageOnly(msgspec.Struct):
    usage: wire.Usage | None = None


_USAGE_ONLY = msgspec.json.Decoder(_UsageOnly)


class Anthropic:
    kind = "anthropic"
    vendor = "anthropic"  # whose prices apply (gateway/metering/prices.py)
    forwarded_headers: frozenset[str] = frozenset(("anthropic-beta", "anthropic-version"))
    credentials: CredentialSource | None = None
    stream_accept = "text/event-stream"
    secrets: tuple[str, ...] = ()  # credentials that never travel as a header value

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        # The anthropic SDK's base URL is the host; accept one ending in /v1 all the same.
        self._url = base_url.rstrip("/").removesuffix("/v1") + "/v1/messages"
        self._count_url = self._url + "/count_tokens"
        self._headers = {
            "content-type": "application/json",
            "anthropic-version": wire.VERSION,
            **(headers or {}),
        }
        if api_key:
            self._headers["x-api-key"] = api_key

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in (Endpoint.CHAT, Endpoint.MESSAGES, Endpoint.COUNT_TOKENS)

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        url = self._url
        if endpoint is Endpoint.CHAT:
            request = decode_request(CHAT_REQUEST_DECODER, raw)
            body = _ENCODER.encode(to_anthropic(request, model))
        else:
            body = raw if view.model == model else patch_fields(raw, {"model": model})
            if endpoint is Endpoint.COUNT_TOKENS:
                url = self._count_url
        return UpstreamRequest(method="POST", url=url, headers=self._headers, body=body)

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody:
        if endpoint is Endpoint.COUNT_TOKENS:
            return ParsedBody(body, None)
        if endpoint is Endpoint.MESSAGES:
            return ParsedBody(body, _native_usage(body))
        converted, usage, served = response.to_chat_completion(body, self.name)
        return ParsedBody(converted, usage, served)

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> StreamTranslator:
        if endpoint is Endpoint.MESSAGES:
            return response.NativeStream(self.name)
        return response.ChunkStream(self.name, view.model, wants_usage=wants_usage(view))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return errors.map_error(status, headers, body, self.name)

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return errors.rate_limit_headers(headers)


def _native_usage(body: bytes) -> Usage | None:
    try:
        usage = _USAGE_ONLY.decode(body).usage
    except msgspec.MsgspecError:
        return None
    return response.to_openai_usage(usage) if usage is not None else None
