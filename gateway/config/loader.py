"""Reads a YAML config file into a GatewayCfg: `env:VAR` secrets resolved, errors with paths."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from gateway.config.errors import ConfigError, explain
from gateway.config.schema import GatewayCfg

ENV_PREFIX = "env:"


class _Loader(yaml.SafeLoader):
    """YAML 1.2's booleans: only true and false. YAML 1.1 also reads on/off/yes/no as booleans,
    which would turn `cache: {mode: off}` into `mode: false`."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def _resolve_env(node: Any, env: Mapping[str, str], path: str) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str) and node.startswith(ENV_PREFIX):
        var = node[len(ENV_PREFIX) :].strip()
        if not var:
            raise ConfigError(f"{path}: `env:` needs a variable name")
        if var not in env:
            raise ConfigError(f"{path}: environment variable {var} is not set")
        return env[var]
    return node


def parse_config(text: str, env: Mapping[str, str] | None = None) -> GatewayCfg:
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("(top level): expected a mapping")
    data = _resolve_env(data, os.environ if env is None else env, "")
    try:
        cfg = msgspec.convert(data, GatewayCfg)
    except msgspec.ValidationError as exc:
        raise explain(exc, data) from None
    _check_names(cfg)
    return cfg


def _check_names(cfg: GatewayCfg) -> None:
    seen: dict[str, int] = {}
    for i, model in enumerate(cfg.models):
        if model.name in seen:
            raise ConfigError(
                f"models[{i}].name: {model.name!r} is already defined at models[{seen[model.name]}]"
            )
        seen[model.name] = i


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> GatewayCfg:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    return parse_config(text, env)
