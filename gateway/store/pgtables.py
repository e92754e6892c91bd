"""A few tables of JSON records beside the ledger in PostgreSQL (keys and teams, stored
responses): one small asyncpg pool each, errors turned into StoreError, tables created at
open by whichever instance gets there first."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from gateway.store.base import StoreError


class PostgresTables:
    def __init__(self, url: str, *, max_size: int = 2) -> None:
        self._url = url
        self._max_size = max_size
        parts = urlsplit(url)
        self.description = (
            f"postgresql:{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"
        )
        self._pool: Any = None

    async def _do(self, method: str, text: str, *args: Any) -> Any:
        import asyncpg

        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._url, min_size=1, max_size=self._max_size, timeout=5, command_timeout=10
                )
            return await getattr(self._pool, method)(text, *args)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as err:
            raise StoreError(f"{self.description}: {type(err).__name__}: {err}") from None

    async def _create(self, statements: tuple[str, ...]) -> None:
        for statement in statements:
            # Two instances creating the same table at once may race on the catalog.
            try:
                await self._do("execute", statement)
            except StoreError as err:
                if "already exists" not in str(err) and "duplicate key" not in str(err):
                    raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
