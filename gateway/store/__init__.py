"""Where the usage ledger is kept: SQLite (embedded, the default, in GATEWAY_DATA_DIR) or
PostgreSQL (shared by several instances). Both speak the same small interface (base.py) and
the same SQL (sql.py); each creates and migrates its own schema when it opens."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from gateway.store import binding as _binding  # noqa: F401 - sqlite3's adapters, process-wide
from gateway.store.base import StoreError, UsageStore


def open_store(url: str | None, env: Mapping[str, str]) -> UsageStore:
    """`postgresql://…` (or `postgres://…`), `sqlite:///path/usage.db`, or None / "sqlite":
    usage.db in GATEWAY_DATA_DIR (default ./data)."""
    if url and url.startswith(("postgresql://", "postgres://")):
        from gateway.store.postgres import PostgresStore

        return PostgresStore(url)
    from gateway.store.sqlite import SQLiteStore

    if url and url.startswith("sqlite:///"):
        return SQLiteStore(Path(url.removeprefix("sqlite:///")))
    if url not in (None, "", "sqlite"):
        raise ValueError(
            f"usage.store: expected sqlite, sqlite:///path or postgresql://…, got {url!r}"
        )
    return SQLiteStore(data_dir(env) / "usage.db")


T = TypeVar("T")


def store_url(configured: str | None, env: Mapping[str, str]) -> str | None:
    """The ledger's database: `usage.store`, else GATEWAY_USAGE_STORE (None: the default)."""
    return configured or env.get("GATEWAY_USAGE_STORE")


def beside_ledger(
    url: str | None,
    env: Mapping[str, str],
    sqlite: Callable[[Path], T],
    postgres: Callable[[str], T],
) -> T:
    """A store of tables kept in the ledger's database (keys, stored responses): PostgreSQL
    for `postgresql://…`, else SQLite at `sqlite:///path` or usage.db in GATEWAY_DATA_DIR."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return postgres(url)
    if url and url.startswith("sqlite:///"):
        return sqlite(Path(url.removeprefix("sqlite:///")))
    return sqlite(data_dir(env) / "usage.db")


def data_dir(env: Mapping[str, str]) -> Path:
    """GATEWAY_DATA_DIR (default ./data): where the embedded stores keep their files."""
    return Path(env.get("GATEWAY_DATA_DIR") or os.environ.get("GATEWAY_DATA_DIR") or "data")


__all__ = ["StoreError", "UsageStore", "beside_ledger", "data_dir", "open_store", "store_url"]
