"""CORS for browser clients (off unless `server.cors.allow_origins` is set): preflights
answered at the edge, and the allowed origin echoed on every answer. Only an origin that is
exactly one of the configured ones (or `*`) is ever written back; requested header names are
echoed only when every one is a plain header token."""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.config.schema import CorsCfg
from gateway.pipeline.call import Reply

_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
# What browser code may read of an answer: the request id, the gateway's own headers, limits.
_EXPOSED = (
    "x-request-id, x-gateway-cache, x-gateway-cost, x-gateway-model, x-gateway-provider,"
    " x-gateway-guardrails, x-gateway-route, x-gateway-route-reason, x-gateway-route-score,"
    " x-ratelimit-limit-requests, x-ratelimit-remaining-requests,"
    " x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens,"
    " x-ratelimit-reset-tokens, retry-after"
)


class Cors:
    __slots__ = ("_any", "_cfg", "_origins")

    def __init__(self, cfg: CorsCfg) -> None:
        self._cfg = cfg
        self._any = "*" in cfg.allow_origins
        self._origins = frozenset(o.rstrip("/").lower() for o in cfg.allow_origins)

    def _allowed(self, origin: str | None) -> str | None:
        if not origin:
            return None
        if origin.rstrip("/").lower() in self._origins:
            return origin if _TOKEN_ORIGIN.match(origin) else None
        if self._any:
            return "*" if not self._cfg.allow_credentials else None
        return None

    def preflight(self, method: str, headers: Mapping[str, str]) -> Reply | None:
        """The answer to an allowed origin's OPTIONS preflight, else None."""
        if method != "OPTIONS" or "access-control-request-method" not in headers:
            return None
        origin = self._allowed(headers.get("origin"))
        if origin is None:
            return None  # then the edge's own answer (405, no CORS headers): the browser refuses
        out = {
            "access-control-allow-origin": origin,
            "access-control-allow-methods": _METHODS,
            "access-control-max-age": str(self._cfg.max_age),
            "vary": "Origin",
        }
        requested = headers.get("access-control-request-headers", "")
        names = [n.strip() for n in requested.split(",") if n.strip()]
        if names and all(_TOKEN.match(n) for n in names):
            out["access-control-allow-headers"] = ", ".join(names)
        if self._cfg.allow_credentials:
            out["access-control-allow-credentials"] = "true"
        return Reply(204, out, body=b"")

    def decorate(self, headers: Mapping[str, str], reply_headers: dict[str, str]) -> None:
        origin = self._allowed(headers.get("origin"))
        if origin is None:
            return
        reply_headers["access-control-allow-origin"] = origin
        reply_headers["access-control-expose-headers"] = _EXPOSED
        reply_headers["vary"] = "Origin"
        if self._cfg.allow_credentials:
            reply_headers["access-control-allow-credentials"] = "true"


# An origin is scheme://host[:port]: nothing that could end a header line.
_TOKEN_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?/?$")
