"""`POST /admin/config/validate` (master key): a config file checked as `serve` would build it,
without serving it. The answer names the first error by its path (400 `invalid_config`), or
says what would change against the running config: names only, never a value (secrets are
`env:` references resolved from this process's environment)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from gateway.config.errors import ConfigError
from gateway.config.loader import parse_config
from gateway.config.schema import GatewayCfg
from gateway.errors import InvalidRequest
from gateway.guardrails.policy import build_guardrails
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.routing.catalog import build_catalog
from gateway.routing.health import HealthRegistry
from gateway.server.handlers import json_reply
from gateway.server.http import Request

MAX_CONFIG = 1 << 20
# What a running gateway cannot take without a restart.
RESTART = (
    "server.host",
    "server.port",
    "server.workers",
    "server.tls_cert_file",
    "server.tls_key_file",
)


class ConfigAdmin:
    def __init__(self, running: GatewayCfg, env: Mapping[str, str], auth: Authenticate) -> None:
        self._running = running
        self._env = env
        self._auth = auth
        # server/reload.py's, when the gateway serves a config file it can read again.
        self.reloader: Callable[[], Awaitable[dict[str, Any]]] | None = None

    async def reload(self, request: Request, rid: str) -> Reply:
        """POST /admin/config/reload: the config file read again and swapped in; a bad one
        is refused with its error (400 invalid_config) and the running config kept."""
        self._auth.check(request.headers)
        if self.reloader is None:
            raise InvalidRequest(
                "This gateway serves no config file (zero-config mode): nothing to reload.",
                code="reload_unavailable",
            )
        try:
            answer = await self.reloader()
        except ConfigError as err:
            raise InvalidRequest(
                f"Invalid config, not applied: {err}", param="config", code="invalid_config"
            ) from None
        return json_reply(answer)

    async def validate(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        if len(request.body) > MAX_CONFIG:
            raise InvalidRequest(f"A config is at most {MAX_CONFIG} bytes.", code="invalid_config")
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("The config is not UTF-8 text.", code="invalid_config") from None
        try:
            cfg = parse_config(text, self._env)
            catalog = build_catalog(cfg, self._env, HealthRegistry())
            build_guardrails(cfg, None, catalog)
        except ConfigError as err:
            raise InvalidRequest(
                f"Invalid config: {err}", param="config", code="invalid_config"
            ) from None
        return json_reply({"valid": True, "changes": changes(self._running, cfg)})


def _named(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    return {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
    }


def changes(old: GatewayCfg, new: GatewayCfg) -> dict[str, Any]:
    out: dict[str, Any] = {
        "providers": _named(old.providers, new.providers),
        "models": _named({m.name: m for m in old.models}, {m.name: m for m in new.models}),
        "keys": _named(
            {k.id: k for k in old.governance.keys}, {k.id: k for k in new.governance.keys}
        ),
        "guardrails": _named(
            {
                **old.guardrails.policies,
                "input": old.guardrails.input,
                "output": old.guardrails.output,
            },
            {
                **new.guardrails.policies,
                "input": new.guardrails.input,
                "output": new.guardrails.output,
            },
        ),
    }
    sections = [
        name
        for name in GatewayCfg.__struct_fields__
        if name not in ("providers", "models") and getattr(old, name) != getattr(new, name)
    ]
    out["sections_changed"] = sections
    out["needs_restart"] = [
        path
        for path in RESTART
        if getattr(old.server, path.split(".")[1]) != getattr(new.server, path.split(".")[1])
    ]
    return out
