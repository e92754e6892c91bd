"""The interface every usage store implements, and the query it answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from gateway.metering.row import UsageRow


class StoreError(Exception):
    """The store could not be reached or refused a write; the meter keeps the batch."""


class Totals(NamedTuple):
    """A grouped sum over the minute rollups."""

    start: int  # unix seconds (inclusive), a whole minute
    end: int  # exclusive
    group_by: tuple[str, ...]  # rollup dimensions, plus "tag"
    filters: Mapping[str, Sequence[Any]]  # dimension -> accepted values
    bucket: int | None = None  # seconds per time bucket, or one total


class RowQuery(NamedTuple):
    start: float
    end: float
    filters: Mapping[str, Sequence[Any]]  # key_id, user, model, status, request_id, provider...
    limit: int
    after: int | None = None  # the last row id of the previous page
    newest_first: bool = False  # then `after` is the page's lower bound, read downwards


class UsageStore(Protocol):
    description: str  # for /health/ready and logs, with no credentials in it
    schema_version: int  # the ledger schema this gateway writes (each store has its own)

    async def open(self) -> None:
        """Connects, and creates or migrates the schema; raises StoreError."""

    async def write(self, rows: list[UsageRow], *, replayed: bool = False) -> None:
        """Appends rows and adds them into the rollups, in one transaction; raises
        StoreError. `replayed` rows (a dead process's spool) may have been written already:
        those whose request id the store holds are dropped."""

    async def totals(self, query: Totals) -> list[dict[str, Any]]:
        """One dict per group (and bucket): the dimensions asked for, "bucket" when bucketed,
        and every measure in row.MEASURES."""

    async def rows(self, query: RowQuery) -> list[tuple[int, UsageRow]]:
        """Raw rows in id order after `query.after`, with their ids."""

    async def unpriced(self, start: float, limit: int) -> list[tuple[int, UsageRow]]:
        """Rows with tokens and no cost since start, for repricing."""

    async def reprice(self, priced: list[tuple[int, UsageRow]]) -> None:
        """Sets the cost of rows found unpriced, and moves it into their rollups."""

    async def prune(self, before: float) -> int:
        """Drops raw rows older than `before` (rollups are kept); how many went."""

    async def erase_bodies(self, before: float) -> int:
        """Clears the request and response bodies of rows older than `before`."""

    async def close(self) -> None: ...


class Opener(Protocol):
    async def open(self) -> None: ...


class OpenOnUse:
    """A store beside the ledger opened at start when it can be, else on its first use: a
    store that is down at start degrades what uses it, never the start."""

    __slots__ = ("_opened", "_store")

    def __init__(self, store: Opener) -> None:
        self._store = store
        self._opened = False

    async def ready(self) -> None:
        """Opens the store if it is not yet; raises StoreError when it cannot."""
        if not self._opened:
            await self._store.open()
            self._opened = True

    async def start(self) -> None:
        try:
            await self.ready()
        except StoreError:
            pass  # tried again on first use
