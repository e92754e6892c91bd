"""Cohere's v2 API behind the OpenAI surface: chat completions and embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from gateway.api.chat import CHAT_REQUEST_DECODER
from gateway.api.requests import RequestView, wants_usage
from gateway.api.validation import decode_request
from gateway.errors import UpstreamError
from gateway.providers.base import (
    CredentialSource,
    Endpoint,
    ParsedBody,
    StreamTranslator,
    Timeouts,
    UpstreamRequest,
)
from gateway.providers.cohere import chat, embed, wire
from gateway.providers.redact import passed_headers

DEFAULT_BASE_URL: Final = "https://api.cohere.com"
_ENCODER = msgspec.json.Encoder()
_CODE_FOR_STATUS = {
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
}
_PASSED_HEADERS = {
    name: name
    for name in ("retry-after", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")
}


class Cohere:
    kind = "cohere"
    vendor = "cohere"  # whose prices apply (gateway/metering/prices.py)
    forwarded_headers: frozenset[str] = frozenset()
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
        self._base = base_url.rstrip("/").removesuffix("/v2").removesuffix("/v1")
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint in (Endpoint.CHAT, Endpoint.EMBEDDINGS)

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        if endpoint is Endpoint.EMBEDDINGS:
            request = decode_request(embed.REQUEST_DECODER, raw)
            body = _ENCODER.encode(embed.to_cohere(request, model))
            url = f"{self._base}/v2/embed"
        else:
            body = _ENCODER.encode(chat.to_cohere(decode_request(CHAT_REQUEST_DECODER, raw), model))
            url = f"{self._base}/v2/chat"
        return UpstreamRequest(method="POST", url=url, headers=self._headers, body=body)

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody:
        if endpoint is Endpoint.EMBEDDINGS:
            converted, usage = embed.to_openai(body, self.name, view.model)
            return ParsedBody(converted, usage)
        converted, chat_usage = chat.to_chat_completion(body, self.name, view.model)
        return ParsedBody(converted, chat_usage)

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> StreamTranslator:
        return chat.ChunkStream(self.name, view.model, wants_usage=wants_usage(view))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        try:
            message = wire.ERROR.decode(body).message or ""
        except msgspec.MsgspecError:
            message = body[:300].decode("utf-8", "replace").strip()
        message = message or f"provider {self.name} returned HTTP {status}"
        if status == 498:  # Cohere's "invalid token"
            status = 401
        code = _CODE_FOR_STATUS.get(status)
        if status == 400 and "too many tokens" in message.lower():
            code = "context_length_exceeded"
        if not 400 <= status <= 599:
            status = 502
        return UpstreamError(
            message, status=status, code=code, headers=self.response_headers(headers)
        )

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return passed_headers(headers, _PASSED_HEADERS)
