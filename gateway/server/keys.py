"""The admin API for virtual keys and teams, behind the master key.

POST /admin/keys (the secret is in this answer only), GET /admin/keys, GET|PATCH|DELETE
/admin/keys/{id}, POST /admin/keys/{id}/rotate; the same for /admin/teams/{name} (no rotate).
DELETE revokes: the record stays, marked, so every instance sees the change."""

from __future__ import annotations

import time
from collections.abc import Container
from typing import Any

import msgspec
from msgspec import UNSET

from gateway.config.governance import check_duration
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MalformedJSON,
    NotFound,
    ServiceUnavailable,
)
from gateway.governance.governor import Governor
from gateway.governance.records import (
    KeyPatch,
    KeyRecord,
    TeamPatch,
    TeamRecord,
    hash_secret,
    hint,
    new_id,
    new_secret,
)
from gateway.governance.registry import KeyRegistry, parse_expiry, team_rule
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.server.handlers import json_reply
from gateway.server.http import Request
from gateway.store.base import StoreError


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "declared_in_config"
    fault = "caller"


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.ValidationError as err:
        path = str(err).rpartition("at `$.")[2].rstrip("`")
        raise InvalidRequest(f"Invalid body: {err}", param=path or None) from None
    except msgspec.DecodeError as err:
        raise MalformedJSON(f"The body is not valid JSON: {err}") from None


def _apply(patch: Any, record: Any) -> Any:
    """The record with every field the patch gives, checked."""
    changes: dict[str, Any] = {}
    for name in patch.__struct_fields__:
        value = getattr(patch, name)
        if value is UNSET:
            continue
        if name in ("rpm_limit", "tpm_limit", "max_parallel_requests", "queue_ms", "max_budget"):
            if value is not None and value < 0:
                raise InvalidRequest(f"{name} must be zero or more.", param=name)
        elif name == "budget_duration" and value is not None:
            try:
                check_duration(value)
            except ValueError as err:
                raise InvalidRequest(f"budget_duration: {err}", param=name) from None
        elif name == "on_store_error" and value not in ("open", "closed"):
            raise InvalidRequest("on_store_error must be open or closed.", param=name)
        elif name == "expires_at":
            try:
                value = parse_expiry(value)
            except ValueError as err:
                raise InvalidRequest(str(err), param=name) from None
        elif name == "name" and isinstance(record, TeamRecord) and not value:
            raise InvalidRequest("A team needs a name.", param="name")
        changes[name] = value
    return msgspec.structs.replace(record, **changes)


class KeyAdmin:
    def __init__(
        self,
        registry: KeyRegistry,
        governor: Governor,
        auth: Authenticate,
        guardrails: Container[str] = (),
    ) -> None:
        self._registry = registry
        self._governor = governor
        self._auth = auth
        self._guardrails = guardrails  # the names a key's `guardrails` may take

    async def _save_key(self, record: KeyRecord) -> None:
        if record.guardrails is not None and record.guardrails not in self._guardrails:
            raise InvalidRequest(
                "guardrails: no guardrail of that name in the config.", param="guardrails"
            )
        store = self._registry.store
        if store is None:
            raise InvalidRequest("This gateway has no key store.")
        try:
            await store.put_key(record)
            await self._registry.changed()
        except StoreError:
            raise _store_down() from None

    def _key(self, request: Request, prefix: str) -> tuple[KeyRecord, str]:
        rest = request.path[len(prefix) :]
        key_id, _, action = rest.partition("/")
        record = self._registry.keys.get(key_id)
        if record is None:
            raise NotFound("No such key.", param="id", code="key_not_found")
        return record, action

    async def create(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        patch = _decode(request.body, KeyPatch)
        now = time.time()
        secret = new_secret()
        record = _apply(
            patch,
            KeyRecord(
                id=new_id(),
                secret_hash=hash_secret(secret),
                key_hint=hint(secret),
                created_at=now,
                updated_at=now,
            ),  # fmt: skip
        )
        await self._save_key(record)
        return json_reply({**record.public(), "key": secret})

    async def list(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        query = request.query
        keys = sorted(self._registry.keys.values(), key=lambda k: k.created_at)
        if "team" in query:
            keys = [k for k in keys if k.team == query["team"]]
        if query.get("include_revoked") != "true":
            keys = [k for k in keys if k.revoked_at is None]
        return json_reply({"object": "list", "data": [k.public() for k in keys]})

    async def one(self, request: Request, rid: str, prefix: str) -> Reply:
        self._auth.check(request.headers)
        record, action = self._key(request, prefix)
        method = request.method
        if action == "rotate" and method == "POST":
            return await self._rotate(record)
        if action:
            raise NotFound("No such route.", code="not_found")
        if method == "GET":
            principal = self._registry.principal(record.id)
            rules = principal.rules if principal is not None else ()
            return json_reply({**record.public(), "limits": await self._governor.usage(rules)})
        if self._registry.is_config_key(record.id):
            raise Conflict("This key is declared in the config file; change it there.")
        now = time.time()
        if method == "PATCH":
            updated = _apply(_decode(request.body, KeyPatch), record)
            updated = msgspec.structs.replace(updated, updated_at=now)
            await self._save_key(updated)
            return json_reply(updated.public())
        # DELETE
        revoked = msgspec.structs.replace(record, revoked_at=now, updated_at=now)
        await self._save_key(revoked)
        return json_reply({"id": record.id, "object": "key", "revoked": True})

    async def _rotate(self, record: KeyRecord) -> Reply:
        if self._registry.is_config_key(record.id):
            raise Conflict("This key is declared in the config file; change it there.")
        if record.revoked_at is not None:
            raise InvalidRequest("A revoked key cannot be rotated.", param="id")
        secret = new_secret()
        rotated = msgspec.structs.replace(
            record, secret_hash=hash_secret(secret), key_hint=hint(secret), updated_at=time.time()
        )
        await self._save_key(rotated)
        return json_reply({**rotated.public(), "key": secret})

    # teams ----------------------------------------------------------------------------

    async def _save_team(self, record: TeamRecord) -> None:
        store = self._registry.store
        if store is None:
            raise InvalidRequest("This gateway has no key store.")
        try:
            await store.put_team(record)
            await self._registry.changed()
        except StoreError:
            raise _store_down() from None

    async def create_team(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        patch = _decode(request.body, TeamPatch)
        if patch.name is UNSET:
            raise InvalidRequest("A team needs a name.", param="name")
        if patch.name in self._registry.teams:
            raise InvalidRequest("A team of that name exists.", param="name", code="team_exists")
        now = time.time()
        record = _apply(patch, TeamRecord(name="-", created_at=now, updated_at=now))
        await self._save_team(record)
        return json_reply(msgspec.to_builtins(record))

    async def list_teams(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        teams = sorted(self._registry.teams.values(), key=lambda t: t.name)
        return json_reply({"object": "list", "data": [msgspec.to_builtins(t) for t in teams]})

    async def team(self, request: Request, rid: str, prefix: str) -> Reply:
        self._auth.check(request.headers)
        name = request.path[len(prefix) :]
        record = self._registry.teams.get(name)
        if record is None:
            raise NotFound("No such team.", param="name", code="team_not_found")
        if request.method == "GET":
            own = team_rule(record)
            usage = await self._governor.usage((own,) if own is not None else ())
            return json_reply({**msgspec.to_builtins(record), "limits": usage})
        if self._registry.is_config_team(name):
            raise Conflict("This team is declared in the config file; change it there.")
        if request.method == "PATCH":
            patch = _decode(request.body, TeamPatch)
            if patch.name is not UNSET and patch.name != name:
                raise InvalidRequest("A team cannot be renamed.", param="name")
            updated = msgspec.structs.replace(_apply(patch, record), updated_at=time.time())
            await self._save_team(updated)
            return json_reply(msgspec.to_builtins(updated))
        store = self._registry.store
        assert store is not None
        try:
            await store.delete_team(name)
            await self._registry.changed()
        except StoreError:
            raise _store_down() from None
        return json_reply({"name": name, "object": "team", "deleted": True})


def _store_down() -> GatewayError:
    return ServiceUnavailable("The key store is unavailable; try again shortly.")
