"""Writes a pipeline Reply to the client: a JSON body, or an SSE stream with back-pressure."""

from __future__ import annotations

from aiohttp import web

from gateway.errors import PayloadTooLarge
from gateway.pipeline.call import Reply
from gateway.server.keys import SETTINGS

_SSE_HEADERS = {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",  # keeps a reverse proxy in front from buffering the stream
}


class RequestBody:
    """The pipeline's view of the aiohttp request; a too-large body is the client's 413."""

    __slots__ = ("_request", "headers")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.headers = request.headers

    async def read(self) -> bytes:
        try:
            return await self._request.read()
        except web.HTTPRequestEntityTooLarge:
            limit = self._request.app[SETTINGS].max_body_bytes
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.") from None


async def respond(request: web.Request, reply: Reply) -> web.StreamResponse:
    if reply.events is None:
        return web.Response(
            status=reply.status,
            body=reply.body,
            headers={**reply.headers, "content-type": "application/json"},
        )
    events = reply.events
    response = web.StreamResponse(status=reply.status, headers={**reply.headers, **_SSE_HEADERS})
    try:
        # Start the stream before anything can fail: a generator that never started skips its
        # cleanup on aclose(), and the pipeline's stages release slots and record there.
        first = await anext(events, None)
        await response.prepare(request)
        if first is not None:
            await response.write(first)
            async for chunk in events:
                await response.write(chunk)  # waits while the client's buffer is full
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away; closing `events` below cancels the upstream read
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    return response
