"""Cohere's v2 Chat and Embed APIs as typed structs."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import Struct

from gateway.api.chat import ToolCall


class _Out(Struct, kw_only=True, omit_defaults=True):
    pass


# Tagged, so `type` is always written (a defaulted field would be omitted).
class TextContent(_Out, tag="text", tag_field="type", kw_only=True, omit_defaults=True):
    text: str


class ImageURL(_Out, kw_only=True, omit_defaults=True):
    url: str


class ImageContent(_Out, tag="image_url", tag_field="type", kw_only=True, omit_defaults=True):
    image_url: ImageURL


class Message(_Out, kw_only=True, omit_defaults=True):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | list[TextContent | ImageContent] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ResponseFormat(_Out, kw_only=True, omit_defaults=True):
    type: Literal["text", "json_object"]
    json_schema: dict[str, Any] | None = None


class Function(_Out, kw_only=True, omit_defaults=True):
    """Cohere v2's function: these three members only (it refuses any other, `strict` too)."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Out, kw_only=True, omit_defaults=True):
    type: Literal["function"] = "function"
    function: Function


class ChatRequest(_Out, kw_only=True, omit_defaults=True):
    model: str
    messages: list[Message]
    stream: bool | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["REQUIRED", "NONE"] | None = None
    strict_tools: bool | None = None  # OpenAI's per-function `strict`, for all tools at once
    max_tokens: int | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    p: float | None = None
    k: int | None = None
    seed: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    response_format: ResponseFormat | None = None


class Tokens(Struct, kw_only=True):
    input_tokens: float = 0
    output_tokens: float = 0


class Usage(Struct, kw_only=True):
    billed_units: Tokens | None = None
    tokens: Tokens | None = None
    cached_tokens: float = 0


class ResponseText(Struct, kw_only=True):
    type: str = "text"
    text: str = ""


class FunctionOut(Struct, kw_only=True):
    name: str = ""
    arguments: str = ""


class ToolCallOut(Struct, kw_only=True):
    id: str = ""
    function: FunctionOut | None = None


class ResponseMessage(Struct, kw_only=True):
    content: list[ResponseText] = []
    tool_calls: list[ToolCallOut] = []
    tool_plan: str | None = None


class ChatResponse(Struct, kw_only=True):
    id: str = "cohere"
    finish_reason: str | None = None
    message: ResponseMessage = msgspec.field(default_factory=ResponseMessage)
    usage: Usage | None = None


# --- stream: each event carries a `type` and a `delta` ----------------------------------------


class DeltaContent(Struct, kw_only=True):
    text: str | None = None
    thinking: str | None = None


class DeltaMessage(Struct, kw_only=True):
    # message-start carries empty lists here; later events carry one object.
    content: DeltaContent | list[Any] | None = None
    tool_calls: ToolCallOut | list[Any] | None = None
    tool_plan: str | None = None


class EventDelta(Struct, kw_only=True):
    message: DeltaMessage | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    error: str | None = None


class StreamEvent(Struct, kw_only=True):
    type: str
    id: str | None = None
    index: int | None = None
    delta: EventDelta | None = None


class EmbedRequest(_Out, kw_only=True, omit_defaults=True):
    model: str
    texts: list[str]
    input_type: str
    embedding_types: list[str]
    output_dimension: int | None = None
    truncate: str | None = None


class EmbedMeta(Struct, kw_only=True):
    billed_units: Tokens | None = None


class Embeddings(Struct, kw_only=True):
    float_: list[list[float]] | None = msgspec.field(default=None, name="float")
    base64: list[str] | None = None


class EmbedResponse(Struct, kw_only=True):
    embeddings: Embeddings
    meta: EmbedMeta | None = None


class ErrorBody(Struct, kw_only=True):
    message: str | None = None


CHAT_RESPONSE = msgspec.json.Decoder(ChatResponse)
STREAM_EVENT = msgspec.json.Decoder(StreamEvent)
EMBED_RESPONSE = msgspec.json.Decoder(EmbedResponse)
ERROR = msgspec.json.Decoder(ErrorBody)
