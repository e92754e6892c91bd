"""Conditional routing queries, Mongo-style: `{"metadata.tier": "pro"}`,
`{"signals.prompt_tokens": {"$gt": 4000}}`, `{"$or": [{...}, {...}]}`.

Fields are dotted paths into the request's context: `metadata.*` (the x-gateway-metadata
header), `params.*` (the request body's top-level fields) and `signals.*` (derived:
`prompt_tokens` estimate, `has_tools`, `has_images`, `stream`). A missing field matches
nothing but `$ne` and `$nin`. Queries are checked when the config is loaded, so a bad operator
is a config error, not a request error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.config.errors import ConfigError

Predicate = Callable[[Mapping[str, Any]], bool]
_MISSING = object()


def _compare(op: str, value: Any, operand: Any) -> bool:
    if op == "$eq":
        return bool(value == operand)
    if op == "$ne":
        return bool(value != operand)
    if op == "$in":
        return value in operand
    if op == "$nin":
        return value not in operand
    if value is _MISSING or value is None:
        return False
    try:
        if op == "$gt":
            return bool(value > operand)
        if op == "$gte":
            return bool(value >= operand)
        if op == "$lt":
            return bool(value < operand)
        if op == "$lte":
            return bool(value <= operand)
    except TypeError:
        return False
    raise AssertionError(op)  # pragma: no cover - compile() admits only the operators above


_COMPARISONS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin")


def _lookup(context: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = context
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _matches(parts: tuple[str, ...], pattern: re.Pattern[str]) -> Predicate:
    def check(ctx: Mapping[str, Any]) -> bool:
        value = _lookup(ctx, parts)
        return isinstance(value, str) and pattern.search(value) is not None

    return check


def _compares(parts: tuple[str, ...], op: str, operand: Any) -> Predicate:
    def check(ctx: Mapping[str, Any]) -> bool:
        return _compare(op, _lookup(ctx, parts), operand)

    return check


def _all(predicates: list[Predicate]) -> Predicate:
    def check(ctx: Mapping[str, Any]) -> bool:
        return all(p(ctx) for p in predicates)

    return check


def _any(predicates: list[Predicate]) -> Predicate:
    def check(ctx: Mapping[str, Any]) -> bool:
        return any(p(ctx) for p in predicates)

    return check


def _field(path: str, condition: Any, where: str) -> Predicate:
    parts = tuple(path.split("."))
    if parts[0] not in ("metadata", "params", "signals") or len(parts) < 2:
        raise ConfigError(
            f"{where}: unknown field {path!r} (use metadata.*, params.* or signals.*)"
        )
    if not isinstance(condition, dict) or not any(k.startswith("$") for k in condition):
        condition = {"$eq": condition}
    checks: list[Predicate] = []
    for op, operand in condition.items():
        if op == "$regex":
            if not isinstance(operand, str):
                raise ConfigError(f"{where}.{path}.$regex: expected a string")
            try:
                pattern = re.compile(operand)
            except re.error as err:
                raise ConfigError(f"{where}.{path}.$regex: {err}") from None
            checks.append(_matches(parts, pattern))
        elif op in _COMPARISONS:
            if op in ("$in", "$nin") and not isinstance(operand, list):
                raise ConfigError(f"{where}.{path}.{op}: expected a list")
            checks.append(_compares(parts, op, operand))
        else:
            raise ConfigError(f"{where}.{path}: unknown operator {op!r}")
    return _all(checks)


def compile_query(query: Mapping[str, Any], where: str) -> Predicate:
    """A query as a predicate over a request context; every clause must hold."""
    clauses: list[Predicate] = []
    for key, value in query.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}.{key}: expected a non-empty list of queries")
            subs = [
                compile_query(q if isinstance(q, dict) else {}, f"{where}.{key}[{i}]")
                for i, q in enumerate(value)
            ]
            clauses.append(_all(subs) if key == "$and" else _any(subs))
        elif key.startswith("$"):
            raise ConfigError(f"{where}: unknown operator {key!r}")
        else:
            clauses.append(_field(key, value, where))
    return _all(clauses)
