"""Google Vertex AI: Gemini and Anthropic models served from a project's Vertex endpoint.

Requests are the Gemini and Anthropic adapters' own, sent to Vertex's paths; the model name
picks the publisher (`claude-*` is Anthropic's, the rest Google's). Authentication is an OAuth
access token minted from a service-account key by google-auth (the `vertex` extra) and renewed
before it expires; the blocking token exchange runs in a thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import quote

from gateway.api.codec import REMOVE, patch_fields
from gateway.api.requests import RequestView
from gateway.config.errors import ConfigError
from gateway.errors import UpstreamError, UpstreamUnavailable
from gateway.providers.anthropic import Anthropic
from gateway.providers.anthropic import errors as anthropic_errors
from gateway.providers.base import (
    CredentialSource,
    Endpoint,
    ParsedBody,
    StreamTranslator,
    Timeouts,
    UpstreamRequest,
)
from gateway.providers.gemini import MODEL_SAFE, Gemini

SCOPES: Final = ("https://www.googleapis.com/auth/cloud-platform",)
ANTHROPIC_VERSION: Final = "vertex-2023-10-16"
# Renew this long before expiry, so no request goes out with a token about to lapse.
REFRESH_MARGIN: Final = dt.timedelta(minutes=5)


class ServiceAccountToken:
    """An OAuth access token for a service account, minted and renewed by google-auth."""

    def __init__(self, credentials_file: str) -> None:
        try:
            from google.auth.transport.requests import Request
            from google.oauth2 import service_account
        except ImportError:
            raise ConfigError(
                "Vertex AI needs google-auth: pip install 'gateway[vertex]'"
            ) from None
        try:
            load = service_account.Credentials.from_service_account_file
            self._credentials: Any = load(credentials_file, scopes=list(SCOPES))  # type: ignore[no-untyped-call]
        except (OSError, ValueError) as err:
            raise ConfigError(f"Vertex credentials file {credentials_file!r}: {err}") from None
        self._request = Request()
        self._lock: asyncio.Lock | None = None

    @property
    def project_id(self) -> str | None:
        project: str | None = self._credentials.project_id
        return project

    def _fresh(self) -> bool:
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        if not self._credentials.token or expiry is None:
            return False
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        return bool(expiry - now > REFRESH_MARGIN)

    async def headers(self) -> Mapping[str, str]:
        if not self._fresh():
            if self._lock is None:
                self._lock = asyncio.Lock()
            async with self._lock:  # one exchange at a time; the others wait for its token
                if not self._fresh():
                    await self._refresh()
        return {"authorization": f"Bearer {self._credentials.token}"}

    async def _refresh(self) -> None:
        from google.auth.exceptions import GoogleAuthError

        try:
            await asyncio.to_thread(self._credentials.refresh, self._request)
        except GoogleAuthError as err:
            raise UpstreamUnavailable(
                f"could not obtain a Vertex AI access token: {type(err).__name__}"
            ) from None


class _VertexAnthropic(Anthropic):
    def __init__(self, name: str, publishers_url: str, timeouts: Timeouts) -> None:
        super().__init__(name, base_url="", api_key=None, timeouts=timeouts)
        self._models = f"{publishers_url}/anthropic/models/"

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        request = super().build_request(endpoint, view, raw, model)
        method = "streamRawPredict" if getattr(view, "stream", False) else "rawPredict"
        # Vertex takes the model from the path and the API version from the body.
        body = patch_fields(request.body, {"model": REMOVE, "anthropic_version": ANTHROPIC_VERSION})
        url = f"{self._models}{quote(model, safe=MODEL_SAFE)}:{method}"
        return UpstreamRequest(method="POST", url=url, headers=request.headers, body=body)


class VertexAI:
    kind = "vertex"
    vendor = "google"  # whose prices apply (gateway/metering/prices.py)
    forwarded_headers: frozenset[str] = frozenset(("anthropic-beta",))
    stream_accept = "text/event-stream"
    secrets: tuple[str, ...] = ()  # the OAuth token travels in the request's headers

    def __init__(  # noqa: PLR0913 - one value per ProviderCfg field
        self,
        name: str,
        *,
        project: str,
        location: str,
        credentials: ServiceAccountToken,
        timeouts: Timeouts,
        base_url: str | None = None,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        self.credentials: CredentialSource | None = credentials
        host = base_url or (
            "https://aiplatform.googleapis.com"
            if location == "global"
            else f"https://{location}-aiplatform.googleapis.com"
        )
        publishers = f"{host.rstrip('/')}/v1/projects/{project}/locations/{location}/publishers"
        self._gemini = Gemini(
            name,
            base_url="",
            api_key=None,
            timeouts=timeouts,
            models_url=f"{publishers}/google/models/",
        )
        self._anthropic = _VertexAnthropic(name, publishers, timeouts)

    def _for(self, model: str) -> Gemini | Anthropic:
        return self._anthropic if model.startswith("claude") else self._gemini

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint is Endpoint.CHAT

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        return self._for(model).build_request(endpoint, view, raw, model)

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody:
        return self._for(model).parse_response(endpoint, view, body, model)

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> StreamTranslator:
        return self._for(model).stream_translator(endpoint, view, model)

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        if b'"type":"error"' in body.replace(b" ", b""):  # Anthropic's envelope, from Claude
            return anthropic_errors.map_error(status, headers, body, self.name)
        return self._gemini.map_error(status, headers, body)

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {}
