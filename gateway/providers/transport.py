"""The only module that talks to providers: pooled keep-alive HTTP with connect/first-byte/total
deadlines, mapping network failures to gateway errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import aiohttp

from gateway.errors import UpstreamTimeout, UpstreamUnavailable
from gateway.providers.base import Timeouts, UpstreamRequest


class UpstreamResponse:
    """A response whose body has not been read yet; close() must always be called."""

    __slots__ = ("_deadline", "_provider", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, deadline: float, provider: str) -> None:
        self._response = response
        self._deadline = deadline
        self._provider = provider
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self._deadline):
                return await self._response.read()
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} did not finish in time") from None
        except aiohttp.ClientError:
            raise UpstreamUnavailable(
                f"provider {self._provider} closed the connection mid-response"
            ) from None

    async def chunks(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            async with asyncio.timeout_at(self._deadline):
                while True:
                    chunk = await content.readany()
                    if not chunk:
                        return
                    yield chunk
        except TimeoutError:
            raise UpstreamTimeout(f"provider {self._provider} did not finish in time") from None
        except aiohttp.ClientError:
            raise UpstreamUnavailable(
                f"provider {self._provider} closed the connection mid-stream"
            ) from None

    def close(self) -> None:
        # A fully read response goes back to the pool; anything else drops its connection,
        # so a cancelled request never leaves a half-read socket in the pool.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class Transport:
    """One pooled client for every provider; created on startup, closed on cleanup."""

    def __init__(self, *, max_connections: int = 0, keepalive: float = 30.0) -> None:
        self._max_connections = max_connections
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=self._keepalive,
            ttl_dns_cache=300,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None)
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(
        self, request: UpstreamRequest, timeouts: Timeouts, provider: str
    ) -> UpstreamResponse:
        """Sends the request and waits for the response head (not the body)."""
        session = self._session
        assert session is not None, "Transport.start() was not awaited"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeouts.total
        head_deadline = min(deadline, loop.time() + timeouts.first_byte)
        try:
            async with asyncio.timeout_at(head_deadline):
                response = await session.request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=request.body,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeouts.connect),
                    allow_redirects=False,
                )
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamTimeout(f"connecting to provider {provider} timed out") from None
        except TimeoutError:
            raise UpstreamTimeout(f"provider {provider} did not answer in time") from None
        except aiohttp.ClientConnectorError:
            raise UpstreamUnavailable(f"could not connect to provider {provider}") from None
        except aiohttp.ClientError:
            raise UpstreamUnavailable(f"provider {provider} closed the connection") from None
        return UpstreamResponse(response, deadline, provider)
