"""Config errors that name the exact path and problem, e.g. `models[1].targets[0].weight: ...`."""

import re
from typing import Any

import msgspec

_AT_PATH = re.compile(r"^(?P<problem>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<expected>[^`]+)`, got `(?P<got>[^`]+)`$")
_TYPE_WORDS = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "nothing",
}


class ConfigError(Exception):
    """Raised for any invalid config; the message is what the operator sees."""


def _describe(expected: str) -> str:
    words = [_TYPE_WORDS.get(part.strip(), part.strip()) for part in expected.split("|")]
    return " or ".join(words)


def _lookup(data: Any, path: str) -> tuple[bool, Any]:
    node = data
    for key, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return False, None
    return True, node


def explain(err: msgspec.ValidationError, data: Any) -> ConfigError:
    """Rewrites msgspec's message into `path: expected X, got <value>`."""
    match = _AT_PATH.match(str(err))
    assert match is not None
    problem, path = match["problem"], (match["path"] or "")
    shown = path.lstrip(".") or "(top level)"
    expected = _EXPECTED.match(problem)
    if expected:
        found, value = _lookup(data, path)
        got = msgspec.json.encode(value).decode() if found else expected["got"]
        return ConfigError(f"{shown}: expected {_describe(expected['expected'])}, got {got}")
    unknown = re.match(r"Object contains unknown field `([^`]+)`", problem)
    if unknown:
        prefix = f"{path.lstrip('.')}." if path else ""
        return ConfigError(f"{prefix}{unknown[1]}: unknown field")
    missing = re.match(r"Object missing required field `([^`]+)`", problem)
    if missing:
        prefix = f"{path.lstrip('.')}." if path else ""
        return ConfigError(f"{prefix}{missing[1]}: required field is missing")
    return ConfigError(f"{shown}: {problem[0].lower()}{problem[1:]}")
