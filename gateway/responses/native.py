"""OpenAI's own Responses API, passed through: usage read from a whole Response or from the
stream's final event on the way past; every typed event relayed as it came."""

from __future__ import annotations

import msgspec

from gateway.api.usage import CompletionTokensDetails, PromptTokensDetails, Usage
from gateway.errors import UpstreamError
from gateway.providers.sse import SSEStream

# A stream's events before its first output: failover may still move it elsewhere.
PREAMBLE = (
    b"event: response.created",
    b"event: response.in_progress",
    b"event: response.queued",
)
_FINAL = frozenset(("response.completed", "response.incomplete", "response.failed", "error"))


class _InputDetails(msgspec.Struct):
    cached_tokens: int = 0


class _OutputDetails(msgspec.Struct):
    reasoning_tokens: int = 0


class _Usage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Response(msgspec.Struct):
    usage: _Usage | None = None
    model: str | None = None


class _Final(msgspec.Struct):
    response: _Response | None = None


_RESPONSE = msgspec.json.Decoder(_Response)
_FINAL_EVENT = msgspec.json.Decoder(_Final)


def to_usage(usage: _Usage | None) -> Usage | None:
    if usage is None:
        return None
    cached = usage.input_tokens_details.cached_tokens if usage.input_tokens_details else 0
    reasoning = usage.output_tokens_details.reasoning_tokens if usage.output_tokens_details else 0
    return Usage(
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens or usage.input_tokens + usage.output_tokens,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached) if cached else None,
        completion_tokens_details=(
            CompletionTokensDetails(reasoning_tokens=reasoning) if reasoning else None
        ),
    )


def parse(body: bytes, provider: str) -> tuple[Usage | None, str | None]:
    try:
        response = _RESPONSE.decode(body)
    except msgspec.DecodeError:
        raise UpstreamError(
            f"provider {provider} returned a body that is not JSON", status=502
        ) from None
    except msgspec.ValidationError:
        return None, None
    return to_usage(response.usage), response.model


class ResponsesStream(SSEStream):
    """Relays Responses events unchanged; the final one carries the usage."""

    __slots__ = ("served_model",)

    def __init__(self) -> None:
        super().__init__()
        self.served_model: str | None = None

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if data.startswith(b"[DONE]"):
            self.finished = True
            return []
        kind = event
        if kind is None:  # events without an `event:` line name themselves in `type`
            words = data[data.find(b'"type"') :][:64].split(b'"')
            kind = words[3].decode("ascii", "replace") if len(words) > 3 else ""
        if kind in _FINAL:
            self.finished = True
            try:
                final = _FINAL_EVENT.decode(data).response
            except msgspec.MsgspecError:
                final = None
            if final is not None:
                self.usage = to_usage(final.usage)
                self.served_model = final.model
        head = b"event: " + event.encode() + b"\n" if event else b""
        return [head + b"data: " + data + b"\n\n"]
