"""The adapter protocol every provider module implements, and the values it trades in.

Adapters are pure translators: they build upstream requests and translate upstream bytes back
to OpenAI's wire format. All network I/O lives in transport.py.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import NamedTuple, Protocol

from msgspec import Struct

from gateway.api.requests import RequestView
from gateway.api.usage import Usage
from gateway.errors import GatewayError, UpstreamError


class Endpoint(enum.Enum):
    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MESSAGES = "messages"  # Anthropic's Messages API, served at /v1/messages
    COUNT_TOKENS = "messages/count_tokens"
    RESPONSES = "responses"  # OpenAI's Responses API, served at /v1/responses
    INPUT_TOKENS = "responses/input_tokens"


# The endpoints that count a request's input tokens: no answer, no output to reserve or scan.
COUNTING = (Endpoint.COUNT_TOKENS, Endpoint.INPUT_TOKENS)


class Timeouts(NamedTuple):
    connect: float
    first_byte: float  # the response head; for streams, the first content chunk
    idle: float | None  # the longest silence between stream chunks
    total: float


class UpstreamRequest(Struct, kw_only=True):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class ParsedBody(NamedTuple):
    body: bytes  # OpenAI-format JSON, ready for the client
    usage: Usage | None
    served: str | None = None  # the model the provider says answered, when it says
    tier: str | None = None  # the service tier it says it answered at (priced apart)


class StreamTranslator(Protocol):
    """Per-request state that turns upstream stream bytes into the client's SSE frames."""

    usage: Usage | None
    finished: bool  # the upstream ended the stream normally
    failure: GatewayError | None  # an error that came after frames of the same read

    @property
    def buffered(self) -> int:
        """Bytes of an event still waiting for its end (the relay caps this)."""
        ...

    def frames(self, chunk: bytes) -> list[bytes]:
        """Complete SSE frames for the client (`data: …` blocks, with `event:` lines in
        Anthropic's format) from one read; raises UpstreamError on an in-stream error."""
        ...


class CredentialSource(Protocol):
    """Credentials that expire and must be fetched with I/O (OAuth tokens), off the hot path."""

    async def headers(self) -> Mapping[str, str]: ...


class ProviderAdapter(Protocol):
    name: str  # the configured provider name, e.g. "openai" or "local-vllm"
    kind: str  # the adapter kind, e.g. "openai-compatible"
    # Whose price list applies ("openai", "groq", "google"...); "" when only the base URL can
    # tell (gateway/metering/prices.py).
    vendor: str
    timeouts: Timeouts
    # Client request headers passed on upstream as they are (e.g. anthropic-beta).
    forwarded_headers: frozenset[str]
    credentials: CredentialSource | None
    # Credentials not sent as a header value (a SigV4 secret key); those that are sent are
    # found in the request itself. Every upstream error is scrubbed of both.
    secrets: tuple[str, ...]
    stream_accept: str  # the Accept header of a stream request (the media type it streams)

    def supports(self, endpoint: Endpoint) -> bool: ...

    def build_request(
        self, endpoint: Endpoint, view: RequestView, raw: bytes, model: str
    ) -> UpstreamRequest: ...

    def parse_response(
        self, endpoint: Endpoint, view: RequestView, body: bytes, model: str
    ) -> ParsedBody: ...

    def stream_translator(
        self, endpoint: Endpoint, view: RequestView, model: str
    ) -> StreamTranslator: ...

    def map_error(self, status: int, headers: Mapping[str, str], body: bytes) -> UpstreamError: ...

    def response_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Upstream headers worth passing to the client (rate limits, retry hints)."""
        ...
