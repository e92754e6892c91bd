"""Views of client requests: only the fields the gateway acts on, typed so bad input is a 400.

Every other field stays in the raw body and is forwarded untouched.
"""

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from gateway.api.anthropic import CountTokensView, MessagesView
from gateway.responses.wire import InputTokensView, ResponsesView

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


class Message(Struct, kw_only=True):
    role: Role
    # Parts are kept raw: validating every part type would reject new OpenAI part kinds.
    content: str | list[Raw] | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: list[Raw] | None = None


class StreamOptions(Struct, kw_only=True, omit_defaults=True):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class _Sampling(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    max_tokens: Annotated[int, Meta(ge=0)] | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    user: str | None = None


class ChatView(_Sampling, kw_only=True):
    messages: Annotated[list[Message], Meta(min_length=1)]
    max_completion_tokens: Annotated[int, Meta(ge=0)] | None = None
    tools: list[Raw] | None = None
    # Raw cannot be a union member in msgspec; these are small, so a dict costs little.
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None


class CompletionView(_Sampling, kw_only=True):
    prompt: str | list[Raw]


class EmbeddingView(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    input: str | Annotated[list[Raw], Meta(min_length=1)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Meta(ge=1)] | None = None
    user: str | None = None


RequestView = (
    ChatView | CompletionView | EmbeddingView | MessagesView | CountTokensView | ResponsesView
    | InputTokensView
)


def wants_usage(view: RequestView) -> bool:
    """Whether the client asked for the usage chunk at the end of its stream."""
    return isinstance(view, ChatView | CompletionView) and bool(
        view.stream_options and view.stream_options.include_usage
    )


CHAT_DECODER = msgspec.json.Decoder(ChatView)
COMPLETION_DECODER = msgspec.json.Decoder(CompletionView)
EMBEDDING_DECODER = msgspec.json.Decoder(EmbeddingView)
