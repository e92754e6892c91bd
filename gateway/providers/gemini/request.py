"""OpenAI chat requests in Gemini's GenerateContent format.

Parameter rule: `logit_bias` and `parallel_tool_calls` have no Gemini equivalent and are
dropped; `logprobs` / `top_logprobs` are rejected with a 400 (the answer could not carry them);
the rest maps (`n` to candidateCount, `reasoning_effort` to a thinking budget, ...).
"""

from __future__ import annotations

from typing import Any, Final

from gateway.api.chat import ChatMessage, ChatRequest, ImagePart, NamedToolChoice, TextPart, text_of
from gateway.errors import InvalidRequest
from gateway.providers.gemini import wire
from gateway.providers.media import inline_data, mime_from_link
from gateway.providers.tools import alternating, call_arguments

# The OpenAPI subset Gemini's `parameters` accepts; any other JSON Schema keyword is a 400 there.
_SCHEMA_KEYS: Final = frozenset(
    (
        "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
        "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
        "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum",
        "maximum",
    )
)  # fmt: skip
_THINKING_BUDGET: Final = {"minimal": 0, "low": 1024, "medium": 8192, "high": 24576}


def clean_schema(schema: Any) -> Any:
    """A JSON Schema cut down to what Gemini accepts; `type: [T, "null"]` becomes nullable."""
    if isinstance(schema, list):
        return [clean_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in _SCHEMA_KEYS:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key == "type" and isinstance(value, list):
            kinds = [k for k in value if k != "null"]
            out["type"] = kinds[0] if kinds else "string"
            if len(kinds) < len(value):
                out["nullable"] = True
        elif key in ("items", "anyOf"):
            out[key] = clean_schema(value)
        else:
            out[key] = value
    return out


def to_gemini(request: ChatRequest) -> wire.GenerateContentRequest:
    if request.logprobs or request.top_logprobs:
        raise InvalidRequest(
            "This model does not return log probabilities through the gateway.",
            param="logprobs" if request.logprobs else "top_logprobs",
            code="unsupported_parameter",
        )
    system: list[wire.Part] = []
    turns: list[tuple[str, list[wire.Part]]] = []
    names = _tool_names(request.messages)
    for i, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            text = text_of(message.content)
            if text:
                system.append(wire.Part(text=text))
            continue
        turns.append(_turn(message, i, names))
    contents = [wire.Content(role=role, parts=parts) for role, parts in alternating(turns)]
    tools, tool_config = _tools(request)
    return wire.GenerateContentRequest(
        contents=contents,
        system_instruction=wire.Content(parts=system) if system else None,
        tools=tools,
        tool_config=tool_config,
        generation_config=_generation_config(request),
    )


def _tool_names(messages: list[ChatMessage]) -> dict[str, str]:
    """Gemini answers a function by name, OpenAI by call id: recover names from the calls."""
    return {
        call.id: call.function.name
        for message in messages
        if message.tool_calls
        for call in message.tool_calls
    }


def _turn(message: ChatMessage, i: int, names: dict[str, str]) -> tuple[str, list[wire.Part]]:
    if message.role == "assistant":
        parts = (
            [wire.Part(text=message.content)]
            if isinstance(message.content, str) and message.content
            else []
        )
        if isinstance(message.content, list):
            parts = [
                wire.Part(text=p.text)
                for p in message.content
                if isinstance(p, TextPart) and p.text
            ]
        for j, call in enumerate(message.tool_calls or ()):
            args = call_arguments(call, f"messages[{i}].tool_calls[{j}].function.arguments")
            function_call = wire.FunctionCall(name=call.function.name, args=args)
            _, _, signature = call.id.partition(wire.SIGNATURE_MARK)
            parts.append(
                wire.Part(function_call=function_call, thought_signature=signature or None)
            )
        return "model", parts
    if message.role in ("tool", "function"):
        name = names.get(message.tool_call_id or "") or message.name
        if not name:
            raise InvalidRequest(
                "A tool message's tool_call_id must match a tool call of an earlier"
                " assistant message.",
                param=f"messages[{i}].tool_call_id",
                code="invalid_value",
            )
        response = wire.FunctionResponse(name=name, response={"content": text_of(message.content)})
        return "user", [wire.Part(function_response=response)]
    return "user", _user_parts(message, i)


def _user_parts(message: ChatMessage, i: int) -> list[wire.Part]:
    content = message.content
    if content is None or isinstance(content, str):
        return [wire.Part(text=content)] if content else []
    parts: list[wire.Part] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                parts.append(wire.Part(text=part.text))
            continue
        parts.append(_image(part, f"messages[{i}].content[{j}].image_url.url"))
    return parts


def _image(part: ImagePart, param: str) -> wire.Part:
    url = part.image_url.url
    data = inline_data(url, param)
    if data is not None:
        mime = part.image_url.format or data.mime_type
        return wire.Part(inline_data=wire.Blob(mime_type=mime, data=data.data))
    linked = part.image_url.format or mime_from_link(url)
    if linked is None:
        raise InvalidRequest(
            "Gemini needs the media type of a linked image: use a link ending in .png, .jpg, "
            ".webp or .gif, or a base64 data URL.",
            param=param,
            code="invalid_image_url",
        )
    return wire.Part(file_data=wire.FileData(mime_type=linked, file_uri=url))


def _tools(request: ChatRequest) -> tuple[list[wire.Tool] | None, wire.ToolConfig | None]:
    declarations = [
        wire.FunctionDeclaration(
            name=t.function.name,
            description=t.function.description,
            parameters=clean_schema(t.function.parameters) if t.function.parameters else None,
        )
        for t in request.tools or ()
    ]
    tools = [wire.Tool(function_declarations=declarations)] if declarations else None
    choice = request.tool_choice
    config: wire.FunctionCallingConfig | None = None
    if isinstance(choice, NamedToolChoice):
        config = wire.FunctionCallingConfig(
            mode="ANY", allowed_function_names=[choice.function.name]
        )
    elif choice is not None and tools:
        config = wire.FunctionCallingConfig(
            mode={"none": "NONE", "auto": "AUTO", "required": "ANY"}[choice]
        )
    return tools, wire.ToolConfig(function_calling_config=config) if config else None


def _generation_config(request: ChatRequest) -> wire.GenerationConfig | None:
    mime: str | None = None
    schema: dict[str, Any] | None = None
    form = request.response_format
    if form is not None and form.type != "text":
        mime = "application/json"
        if form.json_schema is not None:
            schema = form.json_schema.schema
    thinking = None
    if request.reasoning_effort in _THINKING_BUDGET:
        thinking = wire.ThinkingConfig(
            thinking_budget=_THINKING_BUDGET[request.reasoning_effort], include_thoughts=True
        )
    config = wire.GenerationConfig(
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        candidate_count=request.n if request.n and request.n > 1 else None,
        max_output_tokens=request.output_limit,
        stop_sequences=request.stop_sequences,
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        seed=request.seed,
        response_mime_type=mime,
        response_json_schema=schema,
        thinking_config=thinking,
    )
    return config if config != wire.GenerationConfig() else None
