"""An Anthropic Messages request as an OpenAI chat request, for models that only speak OpenAI.

Rules for what has no OpenAI equivalent: `top_k` and `thinking` are dropped (sampling and
reasoning hints); hosted server tools (web search, code execution, ...) are rejected with a 400,
since only Anthropic can run them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.api import anthropic as wire
from gateway.errors import InvalidRequest

_ENCODER = msgspec.json.Encoder()


def to_openai_body(request: wire.MessagesRequest, *, stream: bool) -> bytes:
    messages: list[dict[str, Any]] = []
    if request.system:
        system = request.system
        text = system if isinstance(system, str) else "".join(b.text for b in system)
        messages.append({"role": "system", "content": text})
    for message in request.messages:
        if message.role == "assistant":
            messages.append(_assistant(message.content))
        elif message.role == "system":
            content = message.content
            text = content if isinstance(content, str) else "".join(
                b.text for b in content if isinstance(b, wire.TextBlock)
            )
            messages.append({"role": "system", "content": text})
        else:
            messages.extend(_user(message.content))
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_tokens,
    }
    if request.stop_sequences:
        body["stop"] = request.stop_sequences
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.metadata is not None and request.metadata.user_id:
        body["user"] = request.metadata.user_id
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    _add_tools(request, body)
    return _ENCODER.encode(body)


def _user(content: str | list[wire.Block]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    # Tool results become tool messages, which OpenAI wants right after the assistant's calls.
    out: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, wire.ToolResultBlock):
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": block.tool_use_id,
                    "content": _result_text(block),
                }
            )
        elif isinstance(block, wire.TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, wire.ImageBlock):
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block)}})
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _result_text(block: wire.ToolResultBlock) -> str:
    content = block.content
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    else:
        text = "".join(b.text for b in content if isinstance(b, wire.TextBlock))
    return f"Error: {text}" if block.is_error else text


def _image_url(block: wire.ImageBlock) -> str:
    source = block.source
    if isinstance(source, wire.URLSource):
        return source.url
    return f"data:{source.media_type};base64,{source.data}"


def _assistant(content: str | list[wire.Block]) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, wire.TextBlock):
            texts.append(block.text)
        elif isinstance(block, wire.ToolUseBlock):
            arguments = _ENCODER.encode(block.input).decode()
            calls.append(
                {
                    "id": block.id,
                    "type": "function",
                    "function": {"name": block.name, "arguments": arguments},
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return message


def _add_tools(request: wire.MessagesRequest, body: dict[str, Any]) -> None:
    tools = []
    for i, tool in enumerate(request.tools or ()):
        if tool.type not in (None, "custom") or tool.input_schema is None:
            raise InvalidRequest(
                f"Tool {tool.name!r} is a hosted Anthropic tool; this model cannot run it.",
                param=f"tools[{i}]",
                code="unsupported_value",
            )
        function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
        if tool.description:
            function["description"] = tool.description
        tools.append({"type": "function", "function": function})
    if tools:
        body["tools"] = tools
    choice = request.tool_choice
    if choice is None:
        return
    if isinstance(choice, wire.ToolChoiceNone):
        body["tool_choice"] = "none"
        return
    if isinstance(choice, wire.ToolChoiceTool):
        body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif isinstance(choice, wire.ToolChoiceAny):
        body["tool_choice"] = "required"
    else:
        body["tool_choice"] = "auto"
    if choice.disable_parallel_tool_use and tools:
        body["parallel_tool_calls"] = False
