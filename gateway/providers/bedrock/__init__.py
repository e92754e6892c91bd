"""AWS Bedrock's Converse API behind the OpenAI surface.

Two ways to authenticate: a Bedrock API key sent as a Bearer token, or SigV4 signatures from
the standard AWS credential variables. SigV4 uses botocore's signer (the `bedrock` extra) rather
than hand-written crypto; the key path needs nothing extra.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from gateway.api.chat import CHAT_REQUEST_DECODER
from gateway.api.requests import RequestView, wants_usage
from gateway.api.validation import decode_request
from gateway.config.errors import ConfigError
from gateway.errors import UpstreamError
from gateway.providers.base import (
    CredentialSource,
    Endpoint,
    ParsedBody,
    StreamTranslator,
    Timeouts,
    UpstreamRequest,
)
from gateway.providers.bedrock import response
from gateway.providers.bedrock.request import to_converse

_ENCODER = msgspec.json.Encoder()


class SigV4Signer:
    """Signs each request with botocore's SigV4 implementation (pure CPU, no I/O)."""

    def __init__(self, access_key: str, secret_key: str, token: str | None, region: str) -> None:
        try:
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
        except ImportError:
            raise ConfigError(
                "Bedrock with AWS access keys needs botocore: pip install 'gateway[bedrock]'"
                " (or use a Bedrock API key: AWS_BEARER_TOKEN_BEDROCK)"
            ) from None
        self._auth = SigV4Auth(Credentials(access_key, secret_key, token), "bedrock", region)
        self.secrets = tuple(s for s in (access_key, secret_key, token) if s)
        self._request_class: Any = AWSRequest

    def sign(self, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        request = self._request_class(method="POST", url=url, data=body, headers=dict(headers))
        self._auth.add_auth(request)
        return dict(request.headers.items())


class Bedrock:
    kind = "bedrock"
    vendor = "aws"  # whose prices apply (gateway/metering/prices.py)
    forwarded_headers: frozenset[str] = frozenset()
    credentials: CredentialSource | None = None
    stream_accept = "application/vnd.amazon.eventstream"
    secrets: tuple[str, ...] = ()  # credentials that never travel as a header value

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        timeouts: Timeouts,
        api_key: str | None = None,
        signer: SigV4Signer | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.timeouts = timeouts
        self._base = base_url.rstrip("/")
        self._signer = signer
        if signer is not None:
            self.secrets = signer.secrets
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    def supports(self, endpoint: Endpoint) -> bool:
        return endpoint is Endpoint.CHAT

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest:
        request = decode_request(CHAT_REQUEST_DECODER, raw)
        action = "converse-stream" if request.stream else "converse"
        # Model ids and inference-profile ARNs hold ':' and '/': one path segment, encoded.
        url = f"{self._base}/model/{quote(model, safe='')}/{action}"
        body = _ENCODER.encode(to_converse(request))
        headers = self._headers
        if self._signer is not None:
            headers = self._signer.sign(url, headers, body)
        return UpstreamRequest(method="POST", url=url, headers=headers, body=body)

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody:
        converted, usage = response.to_chat_completion(body, self.name, view.model)
        return ParsedBody(converted, usage)

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> StreamTranslator:
        return response.ChunkStream(view.model, wants_usage=wants_usage(view))

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError:
        return response.map_error(status, headers, body)

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {}
