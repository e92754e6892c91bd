"""Tool-call details every translating adapter needs the same way."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from gateway.api.chat import ToolCall
from gateway.errors import InvalidRequest

_BAD_ID_CHARS = re.compile(r"[^a-zA-Z0-9_-]")
_ARGS = msgspec.json.Decoder(dict[str, Any])


def safe_tool_id(openai_id: str) -> str:
    """Anthropic and Bedrock accept only [a-zA-Z0-9_-] in tool ids; foreign ids are made to
    fit, the same way on the call and on its result, so the two still match."""
    return _BAD_ID_CHARS.sub("_", openai_id) or "tool"


def call_arguments(call: ToolCall, param: str) -> dict[str, Any]:
    """An assistant tool call's arguments as an object; an empty string means none."""
    try:
        return _ARGS.decode(call.function.arguments.strip() or "{}")
    except msgspec.MsgspecError:
        raise InvalidRequest(
            "Tool call arguments must be a JSON object.", param=param, code="invalid_value"
        ) from None
