"""Google Gemini (the Generative Language API) behind the OpenAI surface."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

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
from gateway.providers.gemini import response
from gateway.providers.gemini.request import to_gemini

DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com"
API_VERSION: Final = "v1beta"
MODEL_SAFE: Final = "@"  # Vertex's versioned names (`claude-…@20241022`) keep their `@`
_ENCODER = msgspec.json.Encoder()


class Gemini:
    kind = "gemini"
    vendor = "google"  # whose prices apply (gateway/metering/prices.py)
    forwarded_headers: frozenset[str] = frozenset()
    credentials: CredentialSource | None = None
    stream_accept = "text/event-stream"
    secrets: tuple[str, ...] = ()  # credentials that never travel as a header value

    def __init__(  # noqa: PLR0913 - one value per ProviderCfg field
        self,
        name: str,
        *,
        base_url: str,
        api_key: str | None,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
        models_url: str | None = None,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        # GEMINI_BASE_URL names the host, as Google's SDK takes it; the version is ours to add.
        base = base_url.rstrip("/")
        if models_url is None:
            models_url = base if base.endswith(f"/{API_VERSION}") else f"{base}/{API_VERSION}"
            models_url += "/models/"
        self._models_url = models_url  # Vertex AI serves the same API under its own path
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["x-goog-api-key"] = api_key

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint is Endpoint.CHAT

    def model_url(self, model: str, *, stream: bool) -> str:
        # The name is one path segment: `x?alt=json&key=...`, `../../files`, `#` or spaces
        # must reach Google as part of the name, never as another request.
        model = quote(model.removeprefix("models/"), safe=MODEL_SAFE)
        if stream:
            return f"{self._models_url}{model}:streamGenerateContent?alt=sse"
        return f"{self._models_url}{model}:generateContent"

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        request = decode_request(CHAT_REQUEST_DECODER, raw)
        return UpstreamRequest(
            method="POST",
            url=self.model_url(model, stream=bool(request.stream)),
            headers=self._headers,
            body=_ENCODER.encode(to_gemini(request)),
        )

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody:
        converted, usage, served = response.to_chat_completion(body, self.name, view.model)
        return ParsedBody(converted, usage, served)

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> StreamTranslator:
        return response.ChunkStream(self.name, view.model, wants_usage=wants_usage(view))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return response.map_error(status, headers, body, self.name)

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {}
