"""Google's GenerateContent API (Gemini, and Vertex AI's Gemini models) as typed structs.

Field names are camelCase on the wire; `rename="camel"` keeps them snake_case in Python.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import Struct

# Gemini asks for a function call's thought signature back in the next turn; OpenAI clients only
# keep the tool-call id, so the signature travels inside it, after this marker.
SIGNATURE_MARK = "__thought__"


class _Wire(Struct, kw_only=True, omit_defaults=True, rename="camel"):
    pass


class Blob(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    mime_type: str
    data: str


class FileData(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    mime_type: str
    file_uri: str


class FunctionCall(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class FunctionResponse(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    name: str
    response: dict[str, Any]
    id: str | None = None


class Part(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    text: str | None = None
    thought: bool | None = None
    thought_signature: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None


class Content(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    role: str | None = None
    parts: list[Part] = []


class FunctionDeclaration(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    function_declarations: list[FunctionDeclaration]


class FunctionCallingConfig(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    mode: str
    allowed_function_names: list[str] | None = None


class ToolConfig(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    function_calling_config: FunctionCallingConfig


class ThinkingConfig(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    thinking_budget: int | None = None
    include_thoughts: bool | None = None


class GenerationConfig(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    response_mime_type: str | None = None
    response_json_schema: dict[str, Any] | None = None
    thinking_config: ThinkingConfig | None = None


class GenerateContentRequest(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    contents: list[Content]
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None


class Candidate(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    content: Content | None = None
    finish_reason: str | None = None
    index: int = 0


class PromptFeedback(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    block_reason: str | None = None


class UsageMetadata(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0


class ErrorBody(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[dict[str, Any]] = []


class GenerateContentResponse(_Wire, kw_only=True, omit_defaults=True, rename="camel"):
    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: ErrorBody | None = None  # a failure can arrive as a chunk of a 200 stream


class ErrorEnvelope(Struct, kw_only=True):
    error: ErrorBody | None = None


RESPONSE_DECODER = msgspec.json.Decoder(GenerateContentResponse)
ERROR_DECODER = msgspec.json.Decoder(ErrorEnvelope)
