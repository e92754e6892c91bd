"""The dashboard's routes: its page and files, sign-in and sign-out, and a read-only API that
answers with the usage API's own documents (metering/query.py), so the page shows exactly what
`/v1/usage` says. A signed-in viewer may read these and nothing else."""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import msgspec

from gateway import __version__
from gateway.config.schema import DashboardCfg
from gateway.dashboard.session import Sessions
from gateway.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)
from gateway.metering.query import UsageQueries, time_window
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import presented_key
from gateway.server.http import Request
from gateway.store.base import StoreError

PREFIX = "/dashboard"
_JSON = msgspec.json.Encoder(decimal_format="number")
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Every dashboard answer: no framing, no sniffing, no referrer, and only the page's own files.
_SECURITY = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
_MAX_LOGIN_BODY = 4096
_FAILED_LOGINS = 20  # per minute and process; past it, sign-in answers 429 for a while

Budgets = Callable[[], Awaitable[list[dict[str, Any]]]]
# An evaluation summary over a time window (shadow comparisons, feedback), as the usage API
# gives it (gateway/evaluation).
Summary = Callable[[float, float], Awaitable[dict[str, Any]]]


def _files() -> dict[str, tuple[bytes, str]]:
    found = {}
    for entry in resources.files("gateway.dashboard").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


class Dashboard:
    def __init__(  # noqa: PLR0913 - what the page needs, each built once in build_app
        self,
        cfg: DashboardCfg,
        master_key: str | None,
        queries: UsageQueries | None,
        budgets: Budgets | None,
        *,
        secure: bool,
        evaluations: dict[str, Summary] | None = None,
    ) -> None:
        self._cfg = cfg
        self._evaluations = evaluations or {}  # "shadow", "feedback"
        self._master = master_key.encode() if master_key else None
        self._viewer = cfg.viewer_key.encode() if cfg.viewer_key else None
        self._sessions = (
            Sessions(master_key, cfg.session_hours, secure=secure) if master_key else None
        )
        self._queries = queries
        self._budgets = budgets
        self._files = _files()
        self._failures: deque[float] = deque()

    # -- who is asking ------------------------------------------------------------------

    def _role(self, request: Request) -> str | None:
        """admin (the master key), viewer, or None. A gateway with no master key is open, as
        its other routes are."""
        if self._master is None:
            return "admin"
        presented = presented_key(request.headers)
        if presented:
            return self._key_role(presented.encode())
        assert self._sessions is not None
        return self._sessions.role(request.headers)

    def _key_role(self, presented: bytes) -> str | None:
        if self._master is not None and hmac.compare_digest(presented, self._master):
            return "admin"
        if self._viewer is not None and hmac.compare_digest(presented, self._viewer):
            return "viewer"
        return None

    def _require(self, request: Request) -> str:
        role = self._role(request)
        if role is None:
            raise AuthenticationFailed("Sign in to the dashboard first.", code="not_signed_in")
        return role

    # -- pages and files ----------------------------------------------------------------

    def _file(self, name: str, status: int = 200) -> Reply:
        body, content_type = self._files[name]
        return Reply(status, {"content-type": content_type, **_SECURITY}, body=body)

    async def page(self, request: Request, rid: str) -> Reply:
        """GET /dashboard: the dashboard when signed in, else the sign-in form."""
        return self._file("index.html" if self._role(request) else "login.html")

    async def asset(self, request: Request, rid: str) -> Reply:
        """GET /dashboard/static/<name>: only the package's own files, by exact name."""
        name = request.path[len(PREFIX) + len("/static/") :]
        if name not in self._files:
            raise NotFound(f"Invalid URL (GET {request.path[:200]})")
        return self._file(name)

    # -- signing in and out -------------------------------------------------------------

    def _same_origin(self, request: Request) -> None:
        """A sign-in or sign-out must come from the dashboard's own page: a browser says where
        a request came from, and a form on another site may not sign anyone in or out."""
        headers = request.headers
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            raise PermissionDenied("Cross-site requests are refused.", code="cross_site")
        origin = headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != headers.get("host", ""):
            raise PermissionDenied("Cross-site requests are refused.", code="cross_site")

    async def login(self, request: Request, rid: str) -> Reply:
        """POST /dashboard/login with `key` (a form or JSON body): a session cookie."""
        self._same_origin(request)
        if self._master is None or self._sessions is None:
            return self._json({"role": "admin", "signed_in": True})
        now = time.monotonic()
        failures = self._failures
        while failures and now - failures[0] > 60:
            failures.popleft()
        if len(failures) >= _FAILED_LOGINS:
            raise RateLimited(
                "Too many failed sign-ins; wait a minute.", headers={"retry-after": "60"}
            )
        key = _login_key(request)
        role = self._key_role(key.encode()) if key else None
        if role is None:
            failures.append(now)
            raise AuthenticationFailed("Incorrect key.")
        headers = {"set-cookie": self._sessions.issue(role), **_SECURITY}
        return Reply(200, headers, body=_JSON.encode({"role": role, "signed_in": True}))

    async def logout(self, request: Request, rid: str) -> Reply:
        self._same_origin(request)
        headers = dict(_SECURITY)
        if self._sessions is not None:
            headers["set-cookie"] = self._sessions.cleared()
        return Reply(200, headers, body=_JSON.encode({"signed_in": False}))

    # -- the read-only API --------------------------------------------------------------

    def _json(self, document: object) -> Reply:
        return Reply(
            200, {"content-type": "application/json", **_SECURITY}, body=_JSON.encode(document)
        )

    async def api(self, request: Request, rid: str) -> Reply:
        """GET /dashboard/api/{config,usage,requests,budgets,shadow,feedback}."""
        role = self._require(request)
        what = request.path[len(PREFIX) + len("/api/") :]
        if what == "config":
            return self._json({
                "version": __version__, "role": role,
                "refresh_seconds": self._cfg.refresh_seconds,
                "usage": self._queries is not None, "budgets": self._budgets is not None,
                "evaluations": sorted(self._evaluations),
            })  # fmt: skip
        summary = self._evaluations.get(what)
        if what not in ("usage", "requests", "budgets") and summary is None:
            raise NotFound(f"Invalid URL (GET {request.path[:200]})")
        try:
            if summary is not None:
                return self._json(await summary(*time_window(request.query, "last_7_days")))
            if what == "budgets":
                return self._json({"data": await self._budgets() if self._budgets else []})
            if self._queries is None:
                raise ServiceUnavailable(
                    "The usage ledger is off (usage.enabled: false).", code="usage_disabled"
                )
            pairs = request.query_pairs
            if what == "usage":
                return self._json(await self._queries.usage(pairs))
            return self._json(await self._queries.requests(pairs))
        except StoreError:
            raise ServiceUnavailable("The usage store is unavailable; try again shortly.") from None


def _login_key(request: Request) -> str | None:
    body = request.body
    if len(body) > _MAX_LOGIN_BODY:
        raise InvalidRequest("The sign-in body is too large.", param="key")
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            document = msgspec.json.decode(body)
            key = document.get("key") if isinstance(document, dict) else None
        else:
            key = dict(parse_qsl(body.decode("utf-8"))).get("key")
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise InvalidRequest("The sign-in body is not valid.", param="key") from None
    return key.strip() if isinstance(key, str) else None
