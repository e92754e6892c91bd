"""OpenAI chat requests as Bedrock Converse requests.

Parameter rule: `n` > 1 and `logprobs` are rejected with a 400, and so are linked images
(Converse takes image bytes only; send a data URL). `seed`, the penalties, `logit_bias` and
`user` are dropped. `tool_choice: "none"` cannot be expressed: the tools are still declared,
with no choice forced. `top_k`, `thinking` and `reasoning_effort` go to the model's own fields.
"""

from __future__ import annotations

from typing import Any, Final

from gateway.api.chat import ChatMessage, ChatRequest, NamedToolChoice, TextPart, text_of
from gateway.errors import InvalidRequest
from gateway.providers.bedrock import wire
from gateway.providers.media import inline_data
from gateway.providers.tools import alternating, call_arguments, safe_tool_id

_EMPTY_SCHEMA: Final[dict[str, Any]] = {"type": "object", "properties": {}}
_THINKING_BUDGET: Final = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}


def to_converse(request: ChatRequest) -> wire.ConverseRequest:
    if (request.n or 1) > 1 or request.logprobs:
        param = "n" if (request.n or 1) > 1 else "logprobs"
        raise InvalidRequest(
            f"This model does not support `{param}`.", param=param, code="unsupported_parameter"
        )
    system: list[wire.SystemBlock] = []
    turns: list[tuple[str, list[wire.ContentBlock]]] = []
    tool_names: set[str] = set()
    for i, message in enumerate(request.messages):
        if message.role in ("system", "developer"):
            text = text_of(message.content)
            if text:
                system.append(wire.SystemBlock(text=text))
            continue
        turns.append(_turn(message, i, tool_names))
    messages = [wire.Message(role=role, content=blocks) for role, blocks in alternating(turns)]
    inference = wire.InferenceConfig(
        max_tokens=request.output_limit,
        temperature=request.temperature,
        top_p=request.top_p,
        stop_sequences=request.stop_sequences,
    )
    return wire.ConverseRequest(
        messages=messages,
        system=system or None,
        inference_config=inference if inference != wire.InferenceConfig() else None,
        tool_config=_tool_config(request, tool_names),
        additional_model_request_fields=_model_fields(request),
    )


def _turn(
    message: ChatMessage, i: int, tool_names: set[str]
) -> tuple[str, list[wire.ContentBlock]]:
    if message.role == "assistant":
        text = text_of(message.content).rstrip()
        blocks = [wire.ContentBlock(text=text)] if text else []
        for j, call in enumerate(message.tool_calls or ()):
            tool_names.add(call.function.name)
            args = call_arguments(call, f"messages[{i}].tool_calls[{j}].function.arguments")
            use = wire.ToolUse(
                tool_use_id=safe_tool_id(call.id), name=call.function.name, input=args
            )
            blocks.append(wire.ContentBlock(tool_use=use))
        return "assistant", blocks
    if message.role in ("tool", "function"):
        result = wire.ToolResult(
            tool_use_id=safe_tool_id(message.tool_call_id or ""),
            content=[wire.ToolResultContent(text=text_of(message.content) or " ")],
        )
        return "user", [wire.ContentBlock(tool_result=result)]
    content = message.content
    if not isinstance(content, list):
        return "user", [wire.ContentBlock(text=content)] if content else []
    blocks = []
    for j, part in enumerate(content):
        if isinstance(part, TextPart):
            if part.text:
                blocks.append(wire.ContentBlock(text=part.text))
            continue
        param = f"messages[{i}].content[{j}].image_url.url"
        data = inline_data(part.image_url.url, param)
        if data is None:
            raise InvalidRequest(
                "Bedrock takes images as bytes only: send a base64 data URL.",
                param=param,
                code="invalid_image_url",
            )
        image_format = data.mime_type.removeprefix("image/").replace("jpg", "jpeg")
        source = wire.ImageSource(bytes=data.data)
        blocks.append(wire.ContentBlock(image=wire.Image(format=image_format, source=source)))
    return "user", blocks


def _tool_config(request: ChatRequest, history: set[str]) -> wire.ToolConfig | None:
    tools = [
        wire.ToolDef(
            tool_spec=wire.ToolSpec(
                name=t.function.name,
                description=t.function.description,
                input_schema={"json": t.function.parameters or _EMPTY_SCHEMA},
            )
        )
        for t in request.tools or ()
    ]
    if not tools and history:
        # Converse rejects tool history without a tool config; declare the tools it names.
        tools = [
            wire.ToolDef(tool_spec=wire.ToolSpec(name=n, input_schema={"json": _EMPTY_SCHEMA}))
            for n in sorted(history)
        ]
        return wire.ToolConfig(tools=tools)
    if not tools:
        return None
    choice = request.tool_choice
    selected: dict[str, Any] | None = None
    if isinstance(choice, NamedToolChoice):
        selected = {"tool": {"name": choice.function.name}}
    elif choice == "required":
        selected = {"any": {}}
    elif choice == "auto":
        selected = {"auto": {}}
    return wire.ToolConfig(tools=tools, tool_choice=selected)


def _model_fields(request: ChatRequest) -> dict[str, Any] | None:
    fields: dict[str, Any] = {}
    if request.top_k is not None:
        fields["top_k"] = request.top_k
    if request.thinking is not None:
        fields["thinking"] = request.thinking
    elif request.reasoning_effort in _THINKING_BUDGET:
        budget = _THINKING_BUDGET[request.reasoning_effort]
        fields["thinking"] = {"type": "enabled", "budget_tokens": budget}
    return fields or None
