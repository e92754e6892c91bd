"""Anthropic's Messages API as typed structs: what the Anthropic adapter sends and reads, and
what the /v1/messages front door accepts and answers with."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from gateway.errors import GatewayError

VERSION = "2023-06-01"


class _Block(Struct, tag_field="type", kw_only=True, omit_defaults=True):
    pass


class TextBlock(_Block, tag="text", kw_only=True, omit_defaults=True):
    text: str
    cache_control: dict[str, Any] | None = None


class Base64Source(Struct, tag="base64", tag_field="type", kw_only=True):
    media_type: str
    data: str


class URLSource(Struct, tag="url", tag_field="type", kw_only=True):
    url: str


class ImageBlock(_Block, tag="image", kw_only=True, omit_defaults=True):
    source: Base64Source | URLSource
    cache_control: dict[str, Any] | None = None


class ToolUseBlock(_Block, tag="tool_use", kw_only=True, omit_defaults=True):
    id: str
    name: str
    input: dict[str, Any]
    cache_control: dict[str, Any] | None = None


class ToolResultBlock(_Block, tag="tool_result", kw_only=True, omit_defaults=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None
    cache_control: dict[str, Any] | None = None


class ThinkingBlock(_Block, tag="thinking", kw_only=True, omit_defaults=True):
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Block, tag="redacted_thinking", kw_only=True):
    data: str


Block = (
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)
_BLOCK_DECODER = msgspec.json.Decoder(Block)


def decode_block(raw: Raw) -> Block | None:
    """A content block, or None for a kind this gateway does not translate (server tools…)."""
    try:
        block: Block = _BLOCK_DECODER.decode(raw)
    except msgspec.ValidationError:
        return None
    return block


class Message(Struct, kw_only=True):
    # "system": instructions in the conversation's course (Claude Code sends its environment
    # so, falling back to the top-level `system` where a provider refuses it).
    role: Literal["user", "assistant", "system"]
    content: str | list[Block]


class ToolDef(Struct, kw_only=True, omit_defaults=True):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    type: str | None = None  # hosted tools ("web_search_20250305", ...) carry a type


class ToolChoiceAuto(Struct, tag="auto", tag_field="type", kw_only=True, omit_defaults=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceAny(Struct, tag="any", tag_field="type", kw_only=True, omit_defaults=True):
    disable_parallel_tool_use: bool | None = None


class ToolChoiceTool(Struct, tag="tool", tag_field="type", kw_only=True, omit_defaults=True):
    name: str
    disable_parallel_tool_use: bool | None = None


class ToolChoiceNone(Struct, tag="none", tag_field="type"):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class Metadata(Struct, kw_only=True, omit_defaults=True):
    user_id: str | None = None


class MessagesRequest(Struct, kw_only=True, omit_defaults=True):
    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool | None = None
    metadata: Metadata | None = None
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None


class MessagesView(Struct, kw_only=True):
    """What the pipeline reads of a /v1/messages request; the body itself passes on as bytes."""

    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: list[Raw]
    stream: bool | None = None


class CountTokensRequest(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    messages: list[Message]
    system: str | list[TextBlock] | None = None
    tools: list[ToolDef] | None = None


class CountTokensView(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    messages: list[Raw]
    stream: None = None


class CacheCreation(Struct, kw_only=True, frozen=True):
    """How many of the cache-write tokens were written for 5 minutes and for an hour (an
    hour's write costs more: 2x input where 5 minutes cost 1.25x)."""

    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class Usage(Struct, kw_only=True, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: CacheCreation | None = None


class MessageResponse(Struct, kw_only=True):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[Raw]
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: Usage = Usage()


class MessageOut(Struct, kw_only=True):
    """A Message as the front door writes it (typed blocks instead of raw ones)."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[Block]
    stop_reason: str | None
    stop_sequence: str | None = None
    usage: Usage


# --- stream events ----------------------------------------------------------------------------


class MessageStart(Struct, tag="message_start", tag_field="type", kw_only=True):
    message: MessageResponse


class ContentBlockStart(Struct, tag="content_block_start", tag_field="type", kw_only=True):
    index: int
    content_block: Raw


class TextDelta(Struct, tag="text_delta", tag_field="type", kw_only=True):
    text: str


class InputJSONDelta(Struct, tag="input_json_delta", tag_field="type", kw_only=True):
    partial_json: str


class ThinkingDelta(Struct, tag="thinking_delta", tag_field="type", kw_only=True):
    thinking: str


class SignatureDelta(Struct, tag="signature_delta", tag_field="type", kw_only=True):
    signature: str


class CitationsDelta(Struct, tag="citations_delta", tag_field="type", kw_only=True):
    citation: Any = None


BlockDelta = TextDelta | InputJSONDelta | ThinkingDelta | SignatureDelta | CitationsDelta


class ContentBlockDelta(Struct, tag="content_block_delta", tag_field="type", kw_only=True):
    index: int
    delta: BlockDelta


class ContentBlockStop(Struct, tag="content_block_stop", tag_field="type", kw_only=True):
    index: int


class MessageDeltaBody(Struct, kw_only=True):
    stop_reason: str | None = None
    stop_sequence: str | None = None


class MessageDelta(Struct, tag="message_delta", tag_field="type", kw_only=True):
    delta: MessageDeltaBody
    usage: Usage = Usage()


class MessageStop(Struct, tag="message_stop", tag_field="type"):
    pass


class Ping(Struct, tag="ping", tag_field="type"):
    pass


class ErrorBody(Struct, kw_only=True):
    type: str = "api_error"
    message: str = ""


class ErrorEvent(Struct, tag="error", tag_field="type", kw_only=True):
    error: ErrorBody


StreamEvent = (
    MessageStart
    | ContentBlockStart
    | ContentBlockDelta
    | ContentBlockStop
    | MessageDelta
    | MessageStop
    | Ping
    | ErrorEvent
)
EVENT_NAMES = frozenset(
    (
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    )
)
EVENT_DECODER = msgspec.json.Decoder(StreamEvent)
RESPONSE_DECODER = msgspec.json.Decoder(MessageResponse)
REQUEST_DECODER = msgspec.json.Decoder(MessagesRequest)
VIEW_DECODER = msgspec.json.Decoder(MessagesView)
COUNT_DECODER = msgspec.json.Decoder(CountTokensRequest)
COUNT_VIEW_DECODER = msgspec.json.Decoder(CountTokensView)


class ErrorView(Struct):
    error: ErrorBody | None = None


ERROR_DECODER = msgspec.json.Decoder(ErrorView)
_ENCODER = msgspec.json.Encoder()

# --- errors, in Anthropic's envelope ----------------------------------------------------------

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int) -> str:
    if status in _TYPE_FOR_STATUS:
        return _TYPE_FOR_STATUS[status]
    return "api_error" if status >= 500 else "invalid_request_error"


class _EnvelopeDetail(Struct, kw_only=True):
    type: str
    message: str
    param: str | None
    code: str | None


class _Envelope(Struct, kw_only=True):
    type: Literal["error"]
    error: _EnvelopeDetail


def encode_error(err: GatewayError) -> bytes:
    """Anthropic's error envelope. It keeps OpenAI's `param` and `code` too, so the body reads
    as an error to both SDKs."""
    detail = _EnvelopeDetail(
        type=error_type_for(err.status), message=err.message, param=err.param, code=err.code
    )
    return _ENCODER.encode(_Envelope(type="error", error=detail))


def error_event(err: GatewayError) -> bytes:
    return b"event: error\ndata: " + encode_error(err) + b"\n\n"


def event_frame(name: bytes, payload: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + payload + b"\n\n"
