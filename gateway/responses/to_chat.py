"""A Responses request (with the conversation it continues) as a chat-completion body.

What chat completions cannot say: hosted tools (web search, file search, code interpreter,
computer use, MCP…) are set aside, and refused with a 400 naming the tool if the request
reaches a provider that is not OpenAI's (pipeline/responses.py); reasoning items are context
only the model that wrote them can read, so they are left out; `item_reference` needs
OpenAI's own item storage.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import InvalidRequest
from gateway.responses import wire

_ENCODER = msgspec.json.Encoder()
_EFFORT = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high", "xhigh": "high"}


class Translated(msgspec.Struct, kw_only=True):
    body: bytes  # the chat-completion request
    hosted: list[str]  # hosted tools' types, which only OpenAI can run


def to_chat(
    request: wire.ResponsesRequest, history: list[wire.Item], items: list[wire.Item]
) -> Translated:
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    _messages(history, messages, "previous_response_id")
    _messages(items, messages, "input")
    if not messages:
        raise InvalidRequest(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    _sampling(request, body)
    hosted = _tools(request, body)
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return Translated(body=_ENCODER.encode(body), hosted=hosted)


def _sampling(request: wire.ResponsesRequest, body: dict[str, Any]) -> None:
    if request.max_output_tokens is not None:
        body["max_tokens"] = request.max_output_tokens
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    user = request.user or request.safety_identifier
    if user:
        body["user"] = user
    if request.reasoning is not None and request.reasoning.effort in _EFFORT:
        body["reasoning_effort"] = _EFFORT[request.reasoning.effort]
    fmt = request.text.format if request.text is not None else None
    if isinstance(fmt, wire.FormatJSONSchema):
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        if fmt.description:
            schema["description"] = fmt.description
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    elif isinstance(fmt, wire.FormatJSONObject):
        body["response_format"] = {"type": "json_object"}


def _tools(request: wire.ResponsesRequest, body: dict[str, Any]) -> list[str]:
    hosted: list[str] = []
    tools = []
    for i, tool in enumerate(request.tools or ()):
        if tool.type == "namespace":  # its functions, by joined names (wire.NAMESPACE_JOIN)
            namespace = _named(tool, f"tools[{i}]")
            for j, inner in enumerate(tool.tools or ()):
                if inner.type != "function":
                    hosted.append(inner.type)
                    continue
                name = wire.joined(namespace, _named(inner, f"tools[{i}].tools[{j}]"))
                tools.append(_function(inner, name, tool.description))
        elif tool.type == "function":
            tools.append(_function(tool, _named(tool, f"tools[{i}]")))
        else:
            hosted.append(tool.type)
    if tools:
        body["tools"] = tools
    _tool_choice(request.tool_choice, body, hosted)
    return hosted


def _named(tool: wire.Tool, where: str) -> str:
    if not tool.name:
        raise InvalidRequest(
            f"Missing required parameter: '{where}.name'.",
            param=f"{where}.name",
            code="missing_required_parameter",
        )
    return tool.name


def _function(tool: wire.Tool, name: str, context: str | None = None) -> dict[str, Any]:
    function: dict[str, Any] = {"name": name}
    description = " ".join(d for d in (context, tool.description) if d)
    if description:
        function["description"] = description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(
    choice: str | dict[str, Any] | None, body: dict[str, Any], hosted: list[str]
) -> None:
    if isinstance(choice, str):
        if "tools" in body or choice == "none":
            body["tool_choice"] = choice
    elif isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function" and isinstance(choice.get("name"), str):
            body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        elif kind == "allowed_tools":
            body["tool_choice"] = "required" if choice.get("mode") == "required" else "auto"
        elif isinstance(kind, str):
            hosted.append(kind)


def _messages(items: list[wire.Item], out: list[dict[str, Any]], where: str) -> None:
    for i, item in enumerate(items):
        if isinstance(item, wire.MessageItem):
            _message(item, out, f"{where}[{i}]")
        elif isinstance(item, wire.FunctionCallItem):
            name = wire.joined(item.namespace, item.name) if item.namespace else item.name
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": name, "arguments": item.arguments},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant":
                last["tool_calls"] = [call]
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, wire.FunctionOutputItem):
            output = item.output
            text = (
                output
                if isinstance(output, str)
                else "".join(p.text for p in output if isinstance(p, wire.InputText))
            )
            out.append({"role": "tool", "tool_call_id": item.call_id, "content": text})
        elif isinstance(item, wire.ItemReference):
            raise InvalidRequest(
                f"Invalid value for '{where}[{i}].type': item_reference needs OpenAI's stored"
                " items; send the item itself, or continue with previous_response_id.",
                param=f"{where}[{i}].type",
                code="invalid_value",
            )
        # reasoning items: the model's own context, not something another model can read;
        # hosted tools' items (wire.HostedItem): what came of them is in the messages around


def _message(item: wire.MessageItem, out: list[dict[str, Any]], where: str) -> None:
    role = "system" if item.role in ("system", "developer") else item.role
    content = item.content
    if isinstance(content, str):
        out.append({"role": role, "content": content})
        return
    if role == "assistant" or role == "system":
        text = "".join(
            p.text if isinstance(p, wire.InputText | wire.OutputText)
            else p.refusal if isinstance(p, wire.Refusal) else ""
            for p in content
        )  # fmt: skip
        out.append({"role": role, "content": text})
        return
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        if isinstance(part, wire.InputText | wire.OutputText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, wire.InputImage):
            if not part.image_url:
                raise InvalidRequest(
                    f"Invalid value for '{at}': an image by file_id needs OpenAI's file"
                    " storage; send image_url (a URL or a data: URL).",
                    param=f"{at}.image_url",
                    code="invalid_value",
                )
            image: dict[str, Any] = {"url": part.image_url}
            if part.detail:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        elif isinstance(part, wire.InputFile):
            file = {
                k: v
                for k, v in (("file_data", part.file_data), ("file_id", part.file_id),
                             ("filename", part.filename))
                if v
            }  # fmt: skip
            parts.append({"type": "file", "file": file})
        else:
            parts.append({"type": "text", "text": part.refusal})
    out.append({"role": role, "content": parts})
