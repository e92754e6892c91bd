"""Tool-call details every translating adapter needs the same way."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar

import msgspec

from gateway.api.chat import ToolCall
from gateway.errors import InvalidRequest

T = TypeVar("T")
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


def alternating(turns: Iterable[tuple[str, list[T]]]) -> list[tuple[str, list[T]]]:
    """Turns with consecutive ones of a role merged, for providers that want roles to alternate
    (Anthropic, Gemini, Bedrock); empty turns dropped. A conversation left with no turn at all
    (only system messages) is the caller's 400."""
    merged: list[tuple[str, list[T]]] = []
    for role, items in turns:
        if not items:
            continue
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(items)
        else:
            merged.append((role, list(items)))
    if not merged:
        raise InvalidRequest(
            "messages: at least one user or assistant message is required.",
            param="messages",
            code="invalid_value",
        )
    return merged
