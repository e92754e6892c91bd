"""The reference: a minimal uvloop + aiohttp pass-through (aiohttp server + aiohttp client).

Issue 6's target is measured against this: the gateway must relay at least twice as fast.
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def relay(request: web.Request) -> web.Response:
    body = await request.read()
    async with request.app[SESSION].post(
        request.app[UPSTREAM] + "/v1/chat/completions",
        data=body,
        headers={"content-type": "application/json"},
    ) as upstream:
        payload = await upstream.read()
        return web.Response(body=payload, status=upstream.status, content_type="application/json")


async def start_session(app: web.Application) -> None:
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def close_session(app: web.Application) -> None:
    await app[SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--upstream", default="http://127.0.0.1:9000")
    args = parser.parse_args()
    app = web.Application()
    app[UPSTREAM] = args.upstream
    app.on_startup.append(start_session)
    app.on_cleanup.append(close_session)
    app.router.add_post("/v1/chat/completions", relay)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
