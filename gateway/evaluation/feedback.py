"""POST /v1/feedback and its summary: a score, a label and a comment on a request the caller
made, kept with the request's model, routing decision and cost, so a team sees quality beside
cost per model and per routing decision (GET /v1/usage/feedback).

A virtual key may only score its own requests (anyone else's, like an unknown id, is "not
found"); the master key may score any. A later score for the same request replaces the
earlier one.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from gateway.errors import InvalidRequest, NotFound, ServiceUnavailable
from gateway.governance.registry import Principal
from gateway.metering.meter import Meter
from gateway.metering.prices import usd
from gateway.store.base import OpenOnUse, StoreError
from gateway.store.feedback import GROUPS, FeedbackRow, FeedbackStore


class FeedbackIn(msgspec.Struct, forbid_unknown_fields=True):
    request_id: Annotated[str, Meta(min_length=1, max_length=128)]
    score: float | None = None
    label: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    comment: Annotated[str, Meta(max_length=4000)] | None = None


_DECODE = msgspec.json.Decoder(FeedbackIn)


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("Feedback is unavailable right now; retry shortly.",
                              code="store_unavailable")  # fmt: skip


class Feedback:
    def __init__(self, store: FeedbackStore, meter: Meter) -> None:
        self._store = store
        self._meter = meter
        self._opening = OpenOnUse(store)

    async def start(self) -> None:
        await self._opening.start()

    async def stop(self) -> None:
        await self._store.close()

    async def submit(self, body: bytes, principal: Principal | None) -> dict[str, Any]:
        try:
            given = _DECODE.decode(body)
        except msgspec.ValidationError as err:
            raise InvalidRequest(f"Invalid feedback: {err}", code="invalid_value") from None
        except msgspec.DecodeError:
            raise InvalidRequest("The body is not valid JSON.", code="invalid_json") from None
        if given.score is None and given.label is None:
            raise InvalidRequest("Give a score, a label, or both.", param="score")
        if given.score is not None and not (math.isfinite(given.score) and abs(given.score) <= 1e6):
            raise InvalidRequest("The score must be a finite number.", param="score")
        try:
            row = await self._meter.find(given.request_id)
        except StoreError:
            raise _unavailable() from None
        if row is None or (principal is not None and row.key_id != principal.key.id):
            raise NotFound(
                f"No request found with id '{given.request_id[:128]}'.", param="request_id",
                code="request_not_found",
            )  # fmt: skip
        kept = FeedbackRow(
            request_id=given.request_id, key_id=row.key_id, ts=time.time(), model=row.model,
            route=row.route, cost=row.cost, score=given.score, label=given.label,
            comment=given.comment,
        )  # fmt: skip
        try:
            await self._opening.ready()
            await self._store.put(kept)
        except StoreError:
            raise _unavailable() from None
        return {
            "object": "feedback", "request_id": kept.request_id, "model": kept.model,
            "route": kept.route, "score": kept.score, "label": kept.label,
            "created_at": int(kept.ts),
        }  # fmt: skip

    async def summary(self, start: float, end: float, group_by: list[str]) -> dict[str, Any]:
        unknown = [g for g in group_by if g not in GROUPS]
        if unknown:
            raise InvalidRequest(
                f"Invalid group_by {unknown[0][:64]!r}: use {', '.join(GROUPS)}.",
                param="group_by",
            )
        try:
            await self._opening.ready()
            groups = await self._store.summary(start, end, list(dict.fromkeys(group_by)))
        except StoreError:
            raise _unavailable() from None
        for group in groups:
            group["cost"] = Decimal(usd(group["cost"]))  # US dollars, of the scored requests
        return {"object": "feedback.summary", "start": start, "end": end, "data": groups}
