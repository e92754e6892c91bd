"""OpenAI chat completions as full typed structs, for adapters that translate to other protocols.

Pass-through providers never decode these: they forward the client's bytes. A translating
adapter decodes the request once into `ChatRequest`, and builds its answer from the output
structs below, so every body and chunk it sends has exactly the fields the OpenAI SDK checks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

from gateway.api.requests import Role, StreamOptions
from gateway.api.usage import Usage
from gateway.errors import UpstreamError

# --- request -----------------------------------------------------------------------------------


class TextPart(Struct, tag="text", tag_field="type", kw_only=True):
    text: str
    cache_control: dict[str, Any] | None = None


class ImageURL(Struct, kw_only=True):
    url: str
    detail: str | None = None
    format: str | None = None  # LiteLLM's override of the media type, accepted for parity


class ImagePart(Struct, tag="image_url", tag_field="type", kw_only=True):
    image_url: ImageURL
    cache_control: dict[str, Any] | None = None


ContentPart = TextPart | ImagePart


class FunctionCall(Struct, kw_only=True):
    name: str
    arguments: str


class ToolCall(Struct, kw_only=True):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(Struct, kw_only=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[ToolCall] | None = None


class FunctionDef(Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1)]
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(Struct, kw_only=True):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(Struct, kw_only=True):
    name: str


class NamedToolChoice(Struct, kw_only=True):
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class JSONSchema(Struct, kw_only=True):
    name: str = "response"
    description: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


class ResponseFormat(Struct, kw_only=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchema | None = None


class ChatRequest(Struct, kw_only=True):
    model: str
    messages: Annotated[list[ChatMessage], Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    user: str | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    reasoning_effort: str | None = None
    # Provider-native extensions some clients send through OpenAI SDKs (extra_body).
    thinking: dict[str, Any] | None = None
    top_k: int | None = None

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stop_sequences(self) -> list[str] | None:
        if self.stop is None:
            return None
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)


CHAT_REQUEST_DECODER = msgspec.json.Decoder(ChatRequest)


def text_of(content: str | list[ContentPart] | None) -> str:
    """The text of a message's content; image parts are not text and are skipped."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.text for part in content if isinstance(part, TextPart))


# --- response ----------------------------------------------------------------------------------

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]


class OutMessage(Struct, kw_only=True):
    role: str = "assistant"
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None


class Choice(Struct, kw_only=True):
    index: int
    message: OutMessage
    finish_reason: str | None
    logprobs: Any = None


class ChatCompletion(Struct, kw_only=True):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class DeltaFunction(Struct, kw_only=True, omit_defaults=True):
    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(Struct, kw_only=True, omit_defaults=True):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunction | None = None


class Delta(Struct, kw_only=True, omit_defaults=True):
    role: str | None = None
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[DeltaToolCall] | None = None
    reasoning_content: str | None = None


class ChunkChoice(Struct, kw_only=True):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: Any = None


class ChatCompletionChunk(Struct, kw_only=True, omit_defaults=True):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


CHUNK_DECODER = msgspec.json.Decoder(ChatCompletionChunk)
COMPLETION_DECODER = msgspec.json.Decoder(ChatCompletion)


def read_completion(body: bytes) -> tuple[ChatCompletion, Choice]:
    """A chat completion a front door translates, and its first choice; a 502 if unreadable."""
    try:
        completion = COMPLETION_DECODER.decode(body)
    except msgspec.MsgspecError:
        raise UpstreamError("The provider's answer could not be read.", status=502) from None
    if not completion.choices:
        raise UpstreamError("The provider's answer had no choices.", status=502)
    return completion, completion.choices[0]
