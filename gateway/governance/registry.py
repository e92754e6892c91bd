"""Every virtual key and team, in memory: a request's key is one hash and one dict probe.

Keys come from the config file (read-only) and from the store (the admin API's). Every change
is published on Redis (`gw:keys`), so other instances re-read the store at once; without
Redis, or if a message is lost, each instance also polls the store's version every
`reload_interval` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.config.governance import GovernanceCfg, LimitsCfg
from gateway.governance.records import KeyRecord, Limits, TeamRecord, hash_secret
from gateway.governance.rules import Rule, rule
from gateway.redisbus import FAILURES, RedisWorker, follow
from gateway.store.base import StoreError
from gateway.store.keys import KeyStore

LOG = logging.getLogger("gateway.governance")
CHANNEL = "gw:keys"


class Principal:
    """A live key with its team and the rules both carry, compiled once per reload."""

    __slots__ = ("key", "model_patterns", "rules", "team")

    def __init__(self, key: KeyRecord, team: TeamRecord | None) -> None:
        self.key = key
        self.team = team
        rules: list[Rule] = []
        own = rule(f"key:{key.id}", "key", key)
        if own is not None:
            rules.append(own)
        if team is not None:
            shared = team_rule(team)
            if shared is not None:
                rules.append(shared)
        self.rules = tuple(rules)
        # The key's and its team's allow-lists: a model must match both.
        self.model_patterns = [
            p for p in (key.models, team.models if team else None) if p is not None
        ]


def parse_expiry(value: str | float | None) -> float | None:
    if value is None or isinstance(value, (int, float)):
        return None if value is None else float(value)
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expires_at: expected ISO 8601 or unix seconds, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _limits(declared: LimitsCfg) -> dict[str, Any]:
    """The limit fields, which the config's structs and the records name alike."""
    return {name: getattr(declared, name) for name in Limits.__struct_fields__}


def config_records(cfg: GovernanceCfg) -> tuple[list[KeyRecord], list[TeamRecord]]:
    keys = []
    for declared in cfg.keys:
        secret_hash = declared.key_hash or hash_secret(declared.key or "")
        if not secret_hash.startswith("sha256:"):
            secret_hash = "sha256:" + secret_hash
        keys.append(
            KeyRecord(
                id=declared.id,
                secret_hash=secret_hash.lower(),
                key_hint="(config)",
                name=declared.name,
                team=declared.team,
                user=declared.user,
                models=list(declared.models) if declared.models is not None else None,
                metadata=dict(declared.metadata),
                expires_at=parse_expiry(declared.expires_at),
                guardrails=declared.guardrails,
                source="config",
                **_limits(declared),
            )  # fmt: skip
        )
    teams = [
        TeamRecord(
            name=name,
            models=list(t.models) if t.models is not None else None,
            source="config",
            **_limits(t),
        )  # fmt: skip
        for name, t in cfg.teams.items()
    ]
    return keys, teams


def team_rule(team: TeamRecord) -> Rule | None:
    """A team's limits, shared by its keys."""
    return rule(f"team:{team.name}", "team", team)


class KeyRegistry:
    def __init__(self, store: KeyStore | None, cfg: GovernanceCfg, redis_url: str | None) -> None:
        self.store = store
        self._interval = cfg.reload_interval
        self._config_keys, self._config_teams = config_records(cfg)
        self.keys: dict[str, KeyRecord] = {}
        self.teams: dict[str, TeamRecord] = {}
        self._by_hash: dict[str, Principal] = {}
        self._seen: dict[str, Principal] = {}
        self._version: tuple[object, ...] | None = None
        self._worker = RedisWorker(redis_url, timeout=0.5) if redis_url else None
        self._poller: asyncio.Task[None] | None = None
        self.on_change: Callable[[], None] | None = None
        self.store_up = store is None
        self._index(self._config_keys, self._config_teams)

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, secret: str) -> Principal | None:
        # Secrets already seen skip the hash; only valid ones are remembered (bounded), and
        # the memory is dropped whenever the keys change.
        found = self._seen.get(secret)
        if found is None:
            found = self._by_hash.get(hash_secret(secret))
            if found is not None and len(self._seen) < 10_000:
                self._seen[secret] = found
        return found

    def principal(self, key_id: str) -> Principal | None:
        key = self.keys.get(key_id)
        if key is None:
            return None
        return Principal(key, self.teams.get(key.team) if key.team else None)

    def _index(self, stored_keys: list[KeyRecord], stored_teams: list[TeamRecord]) -> None:
        teams = {t.name: t for t in stored_teams}
        teams.update({t.name: t for t in self._config_teams})  # the file wins
        keys = {k.id: k for k in stored_keys}
        keys.update({k.id: k for k in self._config_keys})
        now = time.time()
        by_hash = {
            k.secret_hash: Principal(k, teams.get(k.team) if k.team else None)
            for k in keys.values()
            if k.revoked_at is None and (k.expires_at is None or k.expires_at > now)
        }
        self.keys, self.teams, self._by_hash = keys, teams, by_hash
        self._seen = {}
        if self.on_change is not None:
            self.on_change()

    async def reload(self) -> None:
        if self.store is None:
            return
        version = await self.store.version()
        if version == self._version:
            return
        keys, teams = await self.store.keys(), await self.store.teams()
        self._version = version
        self._index(keys, teams)

    async def start(self) -> None:
        if self.store is not None:
            try:
                await self.store.open()
                await self.reload()
                self.store_up = True
            except StoreError as err:
                LOG.warning("key store unavailable at start (%s); config keys only", err)
            self._poller = asyncio.create_task(self._poll(), name="keys-poll")
        if self._worker is not None and self.store is not None:
            self._worker.connect(pubsub=True)
            self._worker.spawn(
                follow(self._worker.redis, CHANNEL, resync=self._quiet_reload,
                       handle=self._changed),
                "keys-follow",
            )  # fmt: skip

    async def _quiet_reload(self) -> None:
        try:
            await self.reload()
            self.store_up = True
        except StoreError as err:
            if self.store_up:
                LOG.warning("key store unavailable (%s); serving the keys last read", err)
            self.store_up = False

    async def _changed(self, _: bytes) -> None:
        self._version = None  # re-read even if the version looks unchanged
        await self._quiet_reload()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._quiet_reload()

    async def changed(self) -> None:
        """After a write through this instance: re-index, and tell the others."""
        self._version = None
        await self.reload()
        if self._worker is not None and self._worker.redis is not None:
            with contextlib.suppress(*FAILURES, asyncio.TimeoutError):
                async with asyncio.timeout(0.5):
                    await self._worker.redis.publish(CHANNEL, b"changed")

    def is_config_key(self, key_id: str) -> bool:
        return any(k.id == key_id for k in self._config_keys)

    def is_config_team(self, name: str) -> bool:
        return any(t.name == name for t in self._config_teams)

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._worker is not None:
            await self._worker.stop()
        if self.store is not None:
            with contextlib.suppress(StoreError):
                await self.store.close()
