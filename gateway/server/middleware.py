"""Request ids, and the one place where errors become OpenAI-shaped JSON responses."""

from __future__ import annotations

import logging
import os

from aiohttp import web
from aiohttp.typedefs import Handler as WebHandler

from gateway.api.anthropic import encode_error as anthropic_error
from gateway.api.envelope import encode_error
from gateway.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    error_type,
)
from gateway.server.keys import REQUEST_ID

LOG = logging.getLogger("gateway.server")
_MAX_CLIENT_ID = 200


def _request_id(request: web.Request) -> str:
    given = request.headers.get("x-request-id")
    if given and len(given) <= _MAX_CLIENT_ID and given.isascii() and given.isprintable():
        return given
    return os.urandom(12).hex()


def error_response(err: GatewayError, request_id: str, *, anthropic: bool = False) -> web.Response:
    headers = {**err.headers, "x-request-id": request_id}
    if err.status == 429 or err.status >= 500:
        headers.setdefault("x-should-retry", "true" if err.status != 501 else "false")
    if anthropic:  # Anthropic's SDK reads its own envelope; it keeps OpenAI's fields too
        body = anthropic_error(err)
    else:
        body = encode_error(err.message, error_type(err), err.param, err.code)
    return web.Response(
        status=err.status,
        body=body,
        content_type="application/json",
        headers=headers,
    )


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> GatewayError:
    if exc.status == 404:
        return NotFound(f"Invalid URL ({request.method} {request.path})")
    if exc.status == 405:
        return MethodNotAllowed(f"Method {request.method} is not allowed for {request.path}")
    if exc.status == 413:
        return PayloadTooLarge("The request body is too large.")
    err = GatewayError(exc.reason)
    err.status = exc.status
    return err


@web.middleware
async def errors_middleware(request: web.Request, handler: WebHandler) -> web.StreamResponse:
    request_id = _request_id(request)
    request[REQUEST_ID] = request_id
    anthropic = "/messages" in request.path
    try:
        return await handler(request)
    except GatewayError as err:
        return error_response(err, request_id, anthropic=anthropic)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        mapped = _from_http_exception(exc, request)
        return error_response(mapped, request_id, anthropic=anthropic)
    except Exception:
        LOG.exception("unhandled error in request %s", request_id)
        failed = GatewayError(f"The gateway failed to process request {request_id}.")
        return error_response(failed, request_id, anthropic=anthropic)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Stamps x-request-id on every response, streams included (an on_response_prepare hook)."""
    request_id = request.get(REQUEST_ID)
    if request_id is not None:
        response.headers["x-request-id"] = request_id
