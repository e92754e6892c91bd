"""Virtual keys and teams as they are stored and served by the admin API.

A key's secret is shown once, when it is made (or rotated); only its SHA-256 is kept. The
secrets are 256 random bits, so a plain hash is as strong as a slow one would be and keeps the
per-request lookup to one hash and one dict probe."""

from __future__ import annotations

import hashlib
import secrets
from fnmatch import fnmatchcase
from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

PREFIX = "sk-gw-"


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def new_id() -> str:
    return "key_" + secrets.token_hex(8)


def hint(secret: str) -> str:
    """What identifies a key to a person without revealing it."""
    return f"{secret[: len(PREFIX) + 2]}…{secret[-4:]}"


class Limits(Struct, kw_only=True, omit_defaults=False):
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    max_budget: float | None = None
    budget_duration: str | None = None
    on_store_error: str = "open"
    queue_ms: int = 0


class TeamRecord(Limits, kw_only=True):
    name: str
    models: list[str] | None = None
    metadata: dict[str, Any] = {}
    created_at: float = 0.0
    updated_at: float = 0.0
    source: str = "api"  # api | config


class KeyRecord(Limits, kw_only=True):
    id: str
    secret_hash: str
    key_hint: str = ""
    name: str | None = None
    team: str | None = None
    user: str | None = None
    models: list[str] | None = None  # names or globs (fnmatch); None: every model
    metadata: dict[str, Any] = {}
    expires_at: float | None = None  # unix seconds
    guardrails: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    revoked_at: float | None = None
    source: str = "api"  # api | config

    def live(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, Any]:
        """The record as the admin API shows it: never the hash."""
        document: dict[str, Any] = msgspec.to_builtins(self)
        del document["secret_hash"]
        return document


def allows(patterns: list[str] | None, names: tuple[str, ...]) -> bool:
    """Whether any of a request's names (as asked, and what an alias resolved to) matches."""
    if patterns is None:
        return True
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names if name)


# The admin API's request bodies. UNSET tells "not given" from an explicit null (which
# removes a limit in a PATCH).
class LimitsPatch(Struct, kw_only=True, forbid_unknown_fields=True):
    rpm_limit: int | None | UnsetType = UNSET
    tpm_limit: int | None | UnsetType = UNSET
    max_parallel_requests: int | None | UnsetType = UNSET
    max_budget: float | None | UnsetType = UNSET
    budget_duration: str | None | UnsetType = UNSET
    on_store_error: str | UnsetType = UNSET
    queue_ms: int | UnsetType = UNSET


class KeyPatch(LimitsPatch, kw_only=True, forbid_unknown_fields=True):
    name: str | None | UnsetType = UNSET
    team: str | None | UnsetType = UNSET
    user: str | None | UnsetType = UNSET
    models: list[str] | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
    expires_at: str | float | None | UnsetType = UNSET  # ISO 8601 or unix seconds
    guardrails: str | None | UnsetType = UNSET


class TeamPatch(LimitsPatch, kw_only=True, forbid_unknown_fields=True):
    name: str | UnsetType = UNSET
    models: list[str] | None | UnsetType = UNSET
    metadata: dict[str, Any] | UnsetType = UNSET
