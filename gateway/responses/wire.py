"""OpenAI's Responses API as typed structs: the request the gateway translates, and its items.

Input items are decoded one by one (an item's `type` may be left out for a message), so a bad
item is a 400 naming its whole path: `input[2].content[0].type`. Fields are strict, as
OpenAI's own are: an unknown one is a 400 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Raw, Struct

from gateway.api.validation import invalid_body
from gateway.errors import InvalidRequest


class _Strict(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    pass


# --- content parts ----------------------------------------------------------------------------


class InputText(_Strict, tag="input_text", tag_field="type"):
    text: str
    prompt_cache_breakpoint: Any = None


class InputImage(_Strict, tag="input_image", tag_field="type"):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None
    prompt_cache_breakpoint: Any = None


class InputFile(_Strict, tag="input_file", tag_field="type"):
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None
    detail: str | None = None
    prompt_cache_breakpoint: Any = None


class OutputText(_Strict, tag="output_text", tag_field="type"):
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(_Strict, tag="refusal", tag_field="type"):
    refusal: str


Part = InputText | InputImage | InputFile | OutputText | Refusal


# --- input items ------------------------------------------------------------------------------


class MessageItem(_Strict):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]
    type: Literal["message"] = "message"
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCallItem(_Strict):
    type: Literal["function_call"]
    call_id: Annotated[str, Meta(min_length=1)]
    name: Annotated[str, Meta(min_length=1)]
    arguments: str
    id: str | None = None
    status: str | None = None
    namespace: str | None = None
    caller: Any = None


class FunctionOutputItem(_Strict):
    type: Literal["function_call_output"]
    call_id: Annotated[str, Meta(min_length=1)]
    output: str | list[InputText | InputImage | InputFile]
    id: str | None = None
    status: str | None = None
    caller: Any = None
    name: str | None = None
    namespace: str | None = None


class SummaryText(_Strict, tag="summary_text", tag_field="type"):
    text: str


class ReasoningText(_Strict, tag="reasoning_text", tag_field="type"):
    text: str


class ReasoningItem(_Strict):
    type: Literal["reasoning"]
    summary: list[SummaryText] = []
    id: str | None = None
    content: list[ReasoningText] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class ItemReference(_Strict):
    type: Literal["item_reference"]
    id: str


class HostedItem(Struct):
    """An item of a tool OpenAI runs or only its models emit (a web search's call, a
    computer or shell call and its output, MCP, custom tools, compaction...), as agents send
    their history back (Codex CLI does, with `store: false`): relayed as given to OpenAI;
    another provider is sent the conversation without it (what came of it is in the
    messages around it)."""

    type: str
    raw: dict[str, Any]


# OpenAI's input item types (its OpenAPI spec's InputItem) that the gateway cannot translate.
HOSTED_ITEMS = frozenset((
    "additional_tools", "apply_patch_call", "apply_patch_call_output", "code_interpreter_call",
    "compaction", "compaction_trigger", "computer_call", "computer_call_output",
    "custom_tool_call", "custom_tool_call_output", "file_search_call", "image_generation_call",
    "local_shell_call", "local_shell_call_output", "mcp_approval_request",
    "mcp_approval_response", "mcp_call", "mcp_list_tools", "program", "program_output",
    "shell_call", "shell_call_output", "tool_search_call", "tool_search_output",
    "web_search_call",
))  # fmt: skip
_ANY = msgspec.json.Decoder(dict[str, Any])

Item = (
    MessageItem | FunctionCallItem | FunctionOutputItem | ReasoningItem | ItemReference | HostedItem
)
_ITEM_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "message": msgspec.json.Decoder(MessageItem),
    "function_call": msgspec.json.Decoder(FunctionCallItem),
    "function_call_output": msgspec.json.Decoder(FunctionOutputItem),
    "reasoning": msgspec.json.Decoder(ReasoningItem),
    "item_reference": msgspec.json.Decoder(ItemReference),
}


class _Kind(Struct):
    type: str = "message"


_KIND = msgspec.json.Decoder(_Kind)


# --- the request ------------------------------------------------------------------------------


class FormatText(_Strict, tag="text", tag_field="type"):
    pass


class FormatJSONObject(_Strict, tag="json_object", tag_field="type"):
    pass


class FormatJSONSchema(_Strict, tag="json_schema", tag_field="type"):
    name: str
    schema: dict[str, Any]
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Strict):
    format: FormatText | FormatJSONObject | FormatJSONSchema | None = None
    verbosity: str | None = None


class Reasoning(_Strict):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: str | None = None
    generate_summary: str | None = None


class Tool(Struct, kw_only=True):
    """A tool as the request gives it: `function` tools translate; hosted ones (web search,
    file search, code interpreter, computer use, MCP…) only OpenAI can run."""

    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None
    tools: list[Tool] | None = None  # a `namespace` tool's own function (or custom) tools


# A namespace's function as a chat provider is given it: `crm__lookup` for `lookup` in the
# namespace `crm` (every provider's function names allow it), split again in the answer.
NAMESPACE_JOIN = "__"


def joined(namespace: str, name: str) -> str:
    return f"{namespace}{NAMESPACE_JOIN}{name}"


def namespaced(tools: list[dict[str, Any]] | None) -> dict[str, tuple[str, str]]:
    """The joined names of the namespaces' functions among a response's tools (as JSON):
    joined name -> (namespace, name)."""
    out: dict[str, tuple[str, str]] = {}
    for tool in tools or ():
        namespace = tool.get("name")
        if tool.get("type") != "namespace" or not isinstance(namespace, str):
            continue
        for inner in tool.get("tools") or ():
            name = inner.get("name")
            if isinstance(name, str) and name:
                out[joined(namespace, name)] = (namespace, name)
    return out


class ResponsesRequest(_Strict):
    model: Annotated[str, Meta(min_length=1)]
    input: str | list[Raw] | None = None
    instructions: str | None = None
    previous_response_id: str | None = None
    tools: list[Tool] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: float | None = None
    top_p: float | None = None
    metadata: dict[str, str] | None = None
    store: bool | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    service_tier: str | None = None
    truncation: str | None = None
    include: list[str] | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None
    context_management: Any = None
    moderation: Any = None
    prompt_cache_options: Any = None
    client_metadata: dict[str, Any] | None = None  # Codex CLI's (installation, session ids)


class ResponsesView(Struct, kw_only=True):
    """What the parse stage reads of a /v1/responses body (the front door reads the rest)."""

    model: Annotated[str, Meta(min_length=1)]
    stream: bool | None = None


class InputTokensView(Struct, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    stream: None = None


REQUEST_DECODER = msgspec.json.Decoder(ResponsesRequest)
VIEW_DECODER = msgspec.json.Decoder(ResponsesView)
INPUT_TOKENS_DECODER = msgspec.json.Decoder(InputTokensView)


def decode_item(raw: bytes, where: str) -> Item:
    """One input item; a bad one is a 400 naming its path under `where` (`input[2]`)."""
    try:
        kind = _KIND.decode(raw).type
    except msgspec.MsgspecError as err:
        raise _at(invalid_body(err, raw), where) from None
    decoder = _ITEM_DECODERS.get(kind)
    if decoder is None:
        if kind in HOSTED_ITEMS:
            try:
                return HostedItem(kind, _ANY.decode(raw))
            except msgspec.MsgspecError as err:
                raise _at(invalid_body(err, raw), where) from None
        raise InvalidRequest(
            f"Invalid value for '{where}.type': '{kind}' is not an input item type this"
            f" gateway accepts ({', '.join(sorted(_ITEM_DECODERS))}, or one of OpenAI's"
            " hosted tools' items).",
            param=f"{where}.type",
            code="invalid_value",
        )
    try:
        item: Item = decoder.decode(raw)
    except msgspec.MsgspecError as err:
        raise _at(invalid_body(err, raw), where) from None
    return item


def _at(err: InvalidRequest, where: str) -> InvalidRequest:
    """The same error, its path (and the message's) moved under `where`."""
    inner = err.param
    path = f"{where}.{inner}" if inner else where
    if inner:
        err.message = err.message.replace(f"'{inner}'", f"'{path}'")
    elif "the request body" in err.message:
        err.message = err.message.replace("the request body", f"'{path}'")
    err.param = path
    return err


def decode_items(value: str | list[Raw] | None, where: str = "input") -> list[Item]:
    if value is None:
        return []
    if isinstance(value, str):
        return [MessageItem(role="user", content=value)]
    return [decode_item(bytes(raw), f"{where}[{i}]") for i, raw in enumerate(value)]
