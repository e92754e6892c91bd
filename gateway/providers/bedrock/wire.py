"""Bedrock's Converse API as typed structs (camelCase on the wire)."""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct


class _Wire(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    pass


class ImageSource(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    bytes: str  # base64 in the JSON API


class Image(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    format: str
    source: ImageSource


class ToolUse(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    tool_use_id: str
    name: str
    input: dict[str, Any]  # required by Converse, even when empty: no default to omit


class ToolUseStart(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    tool_use_id: str
    name: str


class ToolResultContent(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str


class ToolResult(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    tool_use_id: str
    content: list[ToolResultContent]


class ReasoningText(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str = ""
    signature: str | None = None


class ReasoningContent(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    reasoning_text: ReasoningText | None = None


class ContentBlock(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str | None = None
    image: Image | None = None
    tool_use: ToolUse | None = None
    tool_result: ToolResult | None = None
    reasoning_content: ReasoningContent | None = None


class Message(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    role: str
    content: list[ContentBlock]


class SystemBlock(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str


class InferenceConfig(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop_sequences: list[str] | None = None


class ToolSpec(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    name: str
    description: str | None = None
    input_schema: dict[str, Any]


class ToolDef(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    tool_spec: ToolSpec


class ToolConfig(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    tools: list[ToolDef]
    tool_choice: dict[str, Any] | None = None


class ConverseRequest(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    messages: list[Message]
    system: list[SystemBlock] | None = None
    inference_config: InferenceConfig | None = None
    tool_config: ToolConfig | None = None
    additional_model_request_fields: dict[str, Any] | None = None


class Usage(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_write_input_tokens: int = 0


class Output(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    message: Message | None = None


class ConverseResponse(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    output: Output = msgspec.field(default_factory=Output)
    stop_reason: str | None = None
    usage: Usage | None = None


# --- ConverseStream event payloads ------------------------------------------------------------


class BlockStart(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    tool_use: ToolUseStart | None = None


class ToolUseDelta(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    input: str = ""


class ReasoningDelta(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str | None = None


class BlockDelta(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str | None = None
    tool_use: ToolUseDelta | None = None
    reasoning_content: ReasoningDelta | None = None


class StreamPayload(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    content_block_index: int = 0
    start: BlockStart | None = None
    delta: BlockDelta | None = None
    stop_reason: str | None = None
    usage: Usage | None = None
    message: str | None = None  # exceptions carry {"message": ...}


class ErrorBody(Struct, kw_only=True):
    message: str | None = None
    Message: str | None = None  # some AWS errors capitalise it


RESPONSE = msgspec.json.Decoder(ConverseResponse)
PAYLOAD = msgspec.json.Decoder(StreamPayload)
ERROR = msgspec.json.Decoder(ErrorBody)
