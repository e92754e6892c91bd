"""The edge: request ids, routing by path and method, and the one place where errors become
OpenAI-shaped (or, on Anthropic's routes, Anthropic-shaped) JSON replies."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping

from gateway.api.anthropic import encode_error as anthropic_error
from gateway.api.envelope import encode_error
from gateway.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound, error_type
from gateway.pipeline.call import Reply
from gateway.server.cors import Cors
from gateway.server.http import Request

LOG = logging.getLogger("gateway.server")
_MAX_CLIENT_ID = 200
_JSON = {"content-type": "application/json"}
_SSE = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # keeps a reverse proxy in front from buffering the stream
}

# A route's handler gets the request and its id (echoed in errors and logs).
RouteHandler = Callable[[Request, str], Awaitable[Reply]]


def request_id(headers: Mapping[str, str] | None) -> str:
    given = headers.get("x-request-id") if headers is not None else None
    if given and len(given) <= _MAX_CLIENT_ID and given.isascii() and given.isprintable():
        return given
    return f"{random.getrandbits(96):024x}"  # not a secret: a fast id, unique enough


def error_reply(err: GatewayError, rid: str | None = None, *, anthropic: bool = False) -> Reply:
    headers = {**err.headers, **_JSON}
    if rid is not None:
        headers["x-request-id"] = rid
    if err.status == 429 or err.status >= 500:
        headers.setdefault("x-should-retry", "true" if err.status != 501 else "false")
    if anthropic:  # Anthropic's SDK reads its own envelope; it keeps OpenAI's fields too
        body = anthropic_error(err)
    else:
        body = encode_error(err.message, error_type(err), err.param, err.code)
    return Reply(err.status, headers, body=body)


def refusal(status: int, message: str, code: str, headers: Mapping[str, str] | None) -> Reply:
    """What the HTTP layer answers to a request it will not read (too large, malformed)."""
    err = InvalidRequest(message, code=code)
    err.status = status
    return error_reply(err, request_id(headers))


class Router:
    """Exact paths, plus prefixes for routes that carry an id (/v1/models/{id})."""

    def __init__(self, cors: Cors | None = None) -> None:
        self._exact: dict[str, dict[str, RouteHandler]] = {}
        self._prefixes: list[tuple[str, dict[str, RouteHandler]]] = []
        self._cors = cors

    def add(self, method: str, path: str, handler: RouteHandler, *, prefix: bool = False) -> None:
        if prefix:
            for known, methods in self._prefixes:
                if known == path:
                    methods[method] = handler
                    return
            self._prefixes.append((path, {method: handler}))
        else:
            self._exact.setdefault(path, {})[method] = handler

    def _methods(self, path: str) -> dict[str, RouteHandler] | None:
        methods = self._exact.get(path)
        if methods is not None:
            return methods
        for known, methods in self._prefixes:
            if path.startswith(known) and len(path) > len(known):
                return methods
        return None

    async def dispatch(self, request: Request) -> Reply:
        cors = self._cors
        if cors is None:
            return await self._dispatch(request)
        preflight = cors.preflight(request.method, request.headers)
        if preflight is not None:
            return preflight
        reply = await self._dispatch(request)
        cors.decorate(request.headers, reply.headers)
        return reply

    async def _dispatch(self, request: Request) -> Reply:
        rid = request_id(request.headers)
        path = request.path
        anthropic = "/messages" in path
        try:
            methods = self._methods(path)
            if methods is None:
                raise NotFound(f"Invalid URL ({request.method} {path})")
            method = "GET" if request.method == "HEAD" else request.method
            handler = methods.get(method)
            if handler is None:
                allowed = sorted({*methods, *(("HEAD",) if "GET" in methods else ())})
                raise MethodNotAllowed(
                    f"Method {request.method} is not allowed for {path}",
                    headers={"allow": ", ".join(allowed)},
                )
            reply = await handler(request, rid)
        except GatewayError as err:
            return error_reply(err, rid, anthropic=anthropic)
        except Exception:
            LOG.exception("unhandled error in request %s", rid)
            failed = GatewayError(f"The gateway failed to process request {rid}.")
            return error_reply(failed, rid, anthropic=anthropic)
        headers = reply.headers
        headers["x-request-id"] = rid
        if reply.events is not None:
            headers.update(_SSE)
        elif "content-type" not in headers:
            headers.update(_JSON)
        return reply
