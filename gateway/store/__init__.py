"""Where the usage ledger is kept: SQLite (embedded, the default, in GATEWAY_DATA_DIR) or
PostgreSQL (shared by several instances). Both speak the same small interface (base.py) and
the same SQL (sql.py); each creates and migrates its own schema when it opens."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

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


def data_dir(env: Mapping[str, str]) -> Path:
    """GATEWAY_DATA_DIR (default ./data): where the embedded stores keep their files."""
    return Path(env.get("GATEWAY_DATA_DIR") or os.environ.get("GATEWAY_DATA_DIR") or "data")


__all__ = ["StoreError", "UsageStore", "data_dir", "open_store"]
