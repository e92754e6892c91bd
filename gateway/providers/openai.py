"""OpenAI and every vendor that speaks its protocol: bodies pass through as bytes.

Only `model` (and, for accounting, `stream_options`) is patched on the way up; responses are
read narrowly for usage and forwarded untouched, except where a vendor deviates (presets.py).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from urllib.parse import quote

import msgspec
import numpy as np

from gateway.api.codec import REMOVE, patch_fields
from gateway.api.envelope import UPSTREAM_ERROR_DECODER, UpstreamErrorDetail
from gateway.api.requests import (
    ChatView,
    CompletionView,
    EmbeddingView,
    RequestView,
    StreamOptions,
    wants_usage,
)
from gateway.api.usage import USAGE_DECODER
from gateway.errors import UpstreamError
from gateway.providers.base import CredentialSource, Endpoint, ParsedBody, Timeouts, UpstreamRequest
from gateway.providers.presets import Preset
from gateway.providers.redact import passed_headers
from gateway.providers.sse import SSEStream, data_frame
from gateway.responses import native

_PASSED_HEADERS = {
    name: name
    for name in (
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
        "retry-after",
        "retry-after-ms",
        "x-should-retry",
    )
}
_USAGE_OBJECT = re.compile(rb'"(?:usage|x_groq)"\s*:\s*\{')
_ERROR_KEY = re.compile(rb'^\s*\{\s*"error"\s*:|,\s*"error"\s*:\s*\{')
_CODE_FOR_STATUS = {
    401: "invalid_api_key",
    404: "model_not_found",
    429: "rate_limit_exceeded",
}


class _ErrorOnly(msgspec.Struct):
    error: UpstreamErrorDetail | str | None = None


_ERROR_ONLY = msgspec.json.Decoder(_ErrorOnly)
_ANY_JSON = msgspec.json.Decoder()
_VALID_JSON = msgspec.json.Decoder(msgspec.Raw)  # checks the syntax, builds nothing
_ENCODER = msgspec.json.Encoder()


class OpenAICompatible:
    """Adapter for the OpenAI dialect; one instance per configured provider."""

    kind = "openai-compatible"
    vendor = ""  # whose prices apply: the preset's name ("groq"), else found from the base URL
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
        preset: Preset,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
        vendor: str = "",
    ) -> None:
        self.name = name
        if vendor:
            self.vendor = vendor
        self.base_url = base_url
        self.timeouts = timeouts
        self._preset = preset
        self._base_url = base_url.rstrip("/")
        self._urls: dict[Endpoint, str] = {}
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    def supports(self, endpoint: Endpoint) -> bool:
        if endpoint is Endpoint.COMPLETIONS:
            return self._preset.completions
        if endpoint is Endpoint.RESPONSES:
            return self._preset.responses
        return endpoint in (Endpoint.CHAT, Endpoint.EMBEDDINGS)

    def url(self, endpoint: Endpoint, model: str) -> str:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = f"{self._base_url}/{endpoint.value}"
        return url

    def stored_response(self, method: str, response_id: str) -> UpstreamRequest:
        """GET or DELETE of a response this provider keeps (its own Responses API)."""
        url = f"{self.url(Endpoint.RESPONSES, '')}/{quote(response_id, safe='')}"
        return UpstreamRequest(method=method, url=url, headers=self._headers, body=b"")

    def _downgrades_base64(self, view: RequestView) -> bool:
        return (
            isinstance(view, EmbeddingView)
            and view.encoding_format == "base64"
            and not self._preset.embeddings_base64
        )

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        changes: dict[str, object] = {}
        if view.model != model:
            changes["model"] = model
        if isinstance(view, ChatView | CompletionView) and view.stream:
            options = view.stream_options or StreamOptions()
            if self._preset.stream_usage and not options.include_usage:
                changes["stream_options"] = msgspec.structs.replace(options, include_usage=True)
            elif not self._preset.stream_usage and view.stream_options is not None:
                changes["stream_options"] = REMOVE
        if self._downgrades_base64(view):
            changes["encoding_format"] = "float"
        body = patch_fields(raw, changes) if changes else raw
        return UpstreamRequest(
            method="POST",
            url=self.url(endpoint, model),
            headers=self._headers,
            body=body,
        )

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody:
        if endpoint is Endpoint.RESPONSES:
            usage, served = native.parse(body, self.name)
            return ParsedBody(body, usage, served)
        try:
            decoded = USAGE_DECODER.decode(body)
            usage, served, tier = decoded.found(), decoded.model, decoded.tier()
        except msgspec.DecodeError:
            raise UpstreamError(
                f"provider {self.name} returned a body that is not JSON", status=502
            ) from None
        except msgspec.ValidationError:
            usage, served, tier = None, None, None  # an odd usage is not worth failing
        if self._downgrades_base64(view):
            body = _embeddings_to_base64(body)
        return ParsedBody(body, usage, served, tier)

    stream_class: type[PassThroughStream]  # set below, once the class exists

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> PassThroughStream | native.ResponsesStream:
        if endpoint is Endpoint.RESPONSES:
            return native.ResponsesStream()
        return self.stream_class(self, hide_usage_chunk=not wants_usage(view))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        detail = _read_error(body)
        message = detail.message if detail and detail.message else None
        if not message:
            message = f"provider {self.name} returned HTTP {status}"
        code = detail.code if detail and isinstance(detail.code, str) else None
        return UpstreamError(
            message,
            status=status if 400 <= status <= 599 else 502,
            error_type=detail.type if detail else None,
            param=detail.param if detail else None,
            code=code or _CODE_FOR_STATUS.get(status),
            headers=self.response_headers(headers),
        )

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return passed_headers(headers, _PASSED_HEADERS)


class PassThroughStream(SSEStream):
    """Forwards OpenAI chunks as they are, reading usage and errors on the way past."""

    __slots__ = ("_adapter", "_hide_usage_chunk", "served_model", "service_tier")

    def __init__(self, adapter: OpenAICompatible, *, hide_usage_chunk: bool) -> None:
        super().__init__()
        self._adapter = adapter
        self._hide_usage_chunk = hide_usage_chunk
        self.served_model: str | None = None
        self.service_tier: str | None = None

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if data.startswith(b"[DONE]"):
            self.finished = True
            return []
        if event == "error":  # a vendor's SSE error event: whatever its data, the stream failed
            self._raise_if_error(data)
            raise self._failed(data.decode("utf-8", "replace")[:300] or "provider stream failed")
        # An event that is not a JSON object is a broken stream, never content to relay.
        if data[:1] != b"{" and data.lstrip()[:1] != b"{":
            raise self._not_json()
        try:
            _VALID_JSON.decode(data)
        except msgspec.DecodeError:
            raise self._not_json() from None
        # Substring tests first: they are far cheaper than a regex over every chunk.
        if data.find(b'"error"') >= 0 and _ERROR_KEY.search(data):
            self._raise_if_error(data)
        start = data.find(b'"usage"')
        if start < 0:
            start = data.find(b'"x_groq"')
        if start >= 0 and _USAGE_OBJECT.search(data, start):
            return self._take_usage(data)
        return [b"data: " + data + b"\n\n"]

    def _take_usage(self, data: bytes) -> list[bytes]:
        try:
            view = USAGE_DECODER.decode(data)
        except msgspec.MsgspecError:
            return [data_frame(data)]
        usage = view.found()
        if usage is None:
            return [data_frame(data)]
        self.usage = usage
        self.served_model = view.model
        self.service_tier = view.tier()
        if view.usage is None:
            if self._hide_usage_chunk:
                return [data_frame(data)]
            data = patch_fields(data, {"usage": usage})  # fold a vendor-nested usage in
        if self._hide_usage_chunk and view.choices is not None and not view.choices:
            return []  # the usage chunk the gateway asked for on its own account
        return [data_frame(data)]

    def _raise_if_error(self, data: bytes) -> None:
        try:
            error = _ERROR_ONLY.decode(data).error
        except msgspec.MsgspecError:
            return
        if not error:
            return
        detail = error if isinstance(error, UpstreamErrorDetail) else None
        message = (detail.message if detail else str(error)) or "provider stream failed"
        raise self._failed(
            message,
            error_type=detail.type if detail else None,
            code=detail.code if detail and isinstance(detail.code, str) else None,
        )

    def _failed(
        self, message: str, *, error_type: str | None = None, code: str | None = None
    ) -> UpstreamError:
        return UpstreamError(
            message,
            status=502,
            error_type=error_type or "server_error",
            code=code,
        )

    def _not_json(self) -> UpstreamError:
        return self._failed(f"provider {self._adapter.name} sent a stream event that is not JSON")


OpenAICompatible.stream_class = PassThroughStream


def _read_error(body: bytes) -> UpstreamErrorDetail | None:
    try:
        view = UPSTREAM_ERROR_DECODER.decode(body)
    except msgspec.MsgspecError:
        text = body[:300].decode("utf-8", "replace").strip()
        return UpstreamErrorDetail(message=text) if text else None
    if isinstance(view.error, UpstreamErrorDetail):
        return view.error
    message = view.error if isinstance(view.error, str) else view.message
    return UpstreamErrorDetail(message=message) if message else None


def _embeddings_to_base64(body: bytes) -> bytes:
    """Encodes float embeddings as the openai SDK expects base64: little-endian float32."""
    document = _ANY_JSON.decode(body)
    for item in document.get("data", ()):
        vector = item.get("embedding")
        if isinstance(vector, list):
            packed = np.asarray(vector, dtype="<f4").tobytes()
            item["embedding"] = base64.b64encode(packed).decode("ascii")
    return _ENCODER.encode(document)
