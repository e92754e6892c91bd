"""OpenAI chat requests in Anthropic's Messages format.

The rule for parameters Anthropic lacks: those that change the *shape* of the answer a client
expects (`n` > 1, `logprobs`, `top_logprobs`) are rejected with a 400; sampling hints it has
no equivalent for (`seed`, `presence_penalty`, `frequency_penalty`, `logit_bias`) are dropped.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from gateway.api import anthropic as wire
from gateway.api.chat import (
    ChatMessage,
    ChatRequest,
    ImagePart,
    NamedToolChoice,
    TextPart,
    ToolCall,
    text_of,
)
from gateway.errors import InvalidRequest
from gateway.providers.media import inline_data
from gateway.providers.tools import alternating, call_arguments, safe_tool_id

JSON_TOOL: Final = "json_response"  # the forced tool that carries response_format schemas
_EMPTY_SCHEMA: Final[dict[str, Any]] = {"type": "object", "properties": {}}
_ANY_OBJECT: Final[dict[str, Any]] = {"type": "object", "additionalProperties": True}
_THINKING_BUDGET: Final = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}

# Anthropic requires max_tokens; clients written for OpenAI rarely send it. Each model family
# gets its own default (its documented output limit, capped so a default never surprises).
_DEFAULT_MAX_TOKENS: Final = (
    ("claude-3-5", 8192),
    ("claude-3-7", 16384),
    ("claude-3", 4096),
    ("claude-opus-4", 16384),
    ("claude-sonnet-4", 16384),
    ("claude-haiku-4", 16384),
    ("claude-4", 16384),
)
FALLBACK_MAX_TOKENS: Final = 4096


def default_max_tokens(model: str) -> int:
    name = model.rsplit("/", 1)[-1].removeprefix("anthropic.").removeprefix("us.")
    for prefix, limit in _DEFAULT_MAX_TOKENS:
        if name.startswith(prefix):
            return limit
    return FALLBACK_MAX_TOKENS


def to_anthropic(request: ChatRequest, model: str) -> wire.MessagesRequest:
    _reject_unsupported(request)
    system, messages, tool_names = _messages(request.messages)
    tools, tool_choice = _tools(request)
    if tool_names and tools is None:
        # Anthropic rejects tool history without tool definitions; declare them, uncallable.
        tools = [wire.ToolDef(name=n, input_schema=_EMPTY_SCHEMA) for n in sorted(tool_names)]
        tool_choice = wire.ToolChoiceNone()
    thinking = request.thinking
    if thinking is None and request.reasoning_effort in _THINKING_BUDGET:
        thinking = {"type": "enabled", "budget_tokens": _THINKING_BUDGET[request.reasoning_effort]}
    max_tokens = request.output_limit or default_max_tokens(model)
    if thinking and thinking.get("type") == "enabled":
        max_tokens = max(max_tokens, int(thinking.get("budget_tokens", 0)) + 1024)
    user = request.user
    return wire.MessagesRequest(
        model=model,
        max_tokens=max_tokens,
        messages=messages,
        system=system or None,
        stop_sequences=request.stop_sequences,
        temperature=request.temperature,
        top_p=request.top_p,
        top_k=request.top_k,
        stream=True if request.stream else None,
        metadata=wire.Metadata(user_id=user) if user else None,
        tools=tools,
        tool_choice=tool_choice,
        thinking=thinking,
    )


def _reject_unsupported(request: ChatRequest) -> None:
    if request.n is not None and request.n > 1:
        raise InvalidRequest("This model supports only n=1.", param="n", code="unsupported_value")
    if request.logprobs or request.top_logprobs:
        param = "logprobs" if request.logprobs else "top_logprobs"
        raise InvalidRequest(
            "This model does not return log probabilities.",
            param=param,
            code="unsupported_parameter",
        )


def _messages(
    messages: list[ChatMessage],
) -> tuple[list[wire.TextBlock], list[wire.Message], set[str]]:
    system: list[wire.TextBlock] = []
    turns: list[tuple[str, list[wire.Block]]] = []
    tool_names: set[str] = set()
    for i, message in enumerate(messages):
        if message.role in ("system", "developer"):
            system.extend(b for b in _text_blocks(message.content) if isinstance(b, wire.TextBlock))
            continue
        blocks: list[wire.Block]
        if message.role == "assistant":
            role = "assistant"
            blocks = list(_text_blocks(message.content, rstrip=True))
            for j, call in enumerate(message.tool_calls or ()):
                tool_names.add(call.function.name)
                blocks.append(_tool_use(call, f"messages[{i}].tool_calls[{j}].function.arguments"))
        elif message.role in ("tool", "function"):
            role = "user"
            if message.tool_call_id is None:
                raise InvalidRequest(
                    "A tool message needs a tool_call_id.",
                    param=f"messages[{i}].tool_call_id",
                    code="missing_required_parameter",
                )
            blocks = [
                wire.ToolResultBlock(
                    tool_use_id=safe_tool_id(message.tool_call_id),
                    content=text_of(message.content),
                )
            ]
        else:
            role = "user"
            blocks = _user_blocks(message, i)
        turns.append((role, blocks))
    merged = [
        wire.Message(role=role, content=blocks)  # type: ignore[arg-type]
        for role, blocks in alternating(turns)
    ]
    return system, merged, tool_names


def _text_blocks(
    content: str | list[TextPart | ImagePart] | None, *, rstrip: bool = False
) -> list[wire.Block]:
    if content is None:
        return []
    if isinstance(content, str):
        text = content.rstrip() if rstrip else content
        return [wire.TextBlock(text=text)] if text else []
    blocks: list[wire.Block] = []
    for part in content:
        if isinstance(part, TextPart) and part.text:
            text = part.text.rstrip() if rstrip else part.text
            blocks.append(wire.TextBlock(text=text, cache_control=part.cache_control))
    return blocks


def _user_blocks(message: ChatMessage, i: int) -> list[wire.Block]:
    content = message.content
    if not isinstance(content, list):
        return _text_blocks(content)
    blocks: list[wire.Block] = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(wire.TextBlock(text=part.text, cache_control=part.cache_control))
            continue
        url = part.image_url.url
        data = inline_data(url, f"messages[{i}].content[{j}].image_url.url")
        source: wire.Base64Source | wire.URLSource
        if data is None:
            source = wire.URLSource(url=url)
        else:
            source = wire.Base64Source(
                media_type=part.image_url.format or data.mime_type, data=data.data
            )
        blocks.append(wire.ImageBlock(source=source, cache_control=part.cache_control))
    return blocks


def _tool_use(call: ToolCall, param: str) -> wire.ToolUseBlock:
    return wire.ToolUseBlock(
        id=safe_tool_id(call.id), name=call.function.name, input=call_arguments(call, param)
    )


def _tools(request: ChatRequest) -> tuple[list[wire.ToolDef] | None, wire.ToolChoice | None]:
    tools = [
        wire.ToolDef(
            name=t.function.name,
            description=t.function.description,
            input_schema=t.function.parameters or _EMPTY_SCHEMA,
        )
        for t in request.tools or ()
    ]
    choice: wire.ToolChoice | None = None
    requested = request.tool_choice
    if isinstance(requested, NamedToolChoice):
        choice = wire.ToolChoiceTool(name=requested.function.name)
    elif requested == "required":
        choice = wire.ToolChoiceAny()
    elif requested == "auto":
        choice = wire.ToolChoiceAuto()
    elif requested == "none" and tools:
        choice = wire.ToolChoiceNone()
    form = request.response_format
    if (
        form is not None
        and form.type != "text"
        and not (request.thinking or request.reasoning_effort)
    ):
        schema = form.json_schema.schema if form.json_schema and form.json_schema.schema else None
        tools.append(
            wire.ToolDef(
                name=JSON_TOOL,
                description="Respond with a JSON object in this format.",
                input_schema=schema or _ANY_OBJECT,
            )
        )
        choice = wire.ToolChoiceTool(name=JSON_TOOL)
    if request.parallel_tool_calls is False and tools:
        if choice is None:
            choice = wire.ToolChoiceAuto()
        if not isinstance(choice, wire.ToolChoiceNone):
            choice = msgspec.structs.replace(choice, disable_parallel_tool_use=True)
    return (tools or None), choice
