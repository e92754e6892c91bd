"""Shadow traffic: a sample of a model's chat requests (streamed or not) also sent to a
candidate model, in the background and never on the client's path, to compare the two on
the same requests.

The shadow call runs through a pipeline of its own (metering, parsing, routing with the
targets' own limits, the provider), so it is metered like any request (a ledger row with
route `shadow`, its cost counted as spent) but charged to no key. Both answers, their costs
and latencies, and how alike they are (the cosine of their embeddings with the cache's
embedder, an exact match, and whether the candidate's answer is valid JSON when JSON was asked
for) are kept beside the ledger (store/shadow.py); GET /v1/usage/shadow sums them per model
and candidate. At most `max_concurrent` shadow calls per model run at once; a sample past
that is skipped and counted (gateway_shadow_skipped_total), never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from time import perf_counter
from typing import Any

import msgspec

from gateway.api.chat import COMPLETION_DECODER
from gateway.api.codec import REMOVE, patch_fields
from gateway.cache.embedders import Embedder
from gateway.config.errors import ConfigError
from gateway.config.routing import ShadowCfg
from gateway.config.schema import GatewayCfg
from gateway.errors import GatewayError
from gateway.metering.prices import usd
from gateway.metering.record import Metering
from gateway.observability import metrics
from gateway.pipeline.call import Call, Handler
from gateway.routing.catalog import Catalog
from gateway.store import store_url
from gateway.store.base import OpenOnUse, StoreError
from gateway.store.shadow import Comparison, ShadowStore, open_shadow_store

LOG = logging.getLogger("gateway.shadow")
MAX_ANSWER = 8192  # characters of each answer kept
_PRUNE_EVERY = 3600.0


_ANY = msgspec.json.Decoder()


def answer_text(body: bytes | None) -> str | None:
    """The first choice's text of a chat completion body, or None."""
    if not body:
        return None
    try:
        choices = COMPLETION_DECODER.decode(body).choices
    except msgspec.MsgspecError:
        return None
    return choices[0].message.content if choices else None


def _valid_json(text: str | None) -> bool:
    if text is None:
        return False
    try:
        _ANY.decode(text)
    except msgspec.DecodeError:
        return False
    return True


class _Request:
    """What the shadow pipeline reads as the HTTP request: the incumbent's body, re-aimed."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.headers: Mapping[str, str] = {}

    async def read(self) -> bytes:
        return self._body


class ShadowRunner:
    def __init__(  # noqa: PLR0913 - what a shadow call needs, one part each
        self,
        pipeline: Handler,
        metering: Metering,
        store: ShadowStore,
        embedder: Embedder,
        retention_days: float,
    ) -> None:
        self._pipeline = pipeline
        self._metering = metering
        self._store = store
        self._embedder = embedder
        self._retention = retention_days * 86400
        self._running: dict[str, int] = {}  # model -> shadow calls in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._opening = OpenOnUse(store)
        self._next_prune = 0.0

    async def start(self) -> None:
        await self._opening.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self._store.close()

    def launch(self, call: Call, body: bytes, cfg: ShadowCfg, seconds: float) -> None:
        """Starts the shadow call of an answered request, unless the model has its fill."""
        model = call.model_label
        running = self._running.get(model, 0)
        if running >= cfg.max_concurrent:
            metrics.labelled(metrics.SHADOW_SKIPPED, model).inc()
            return
        self._running[model] = running + 1
        task = asyncio.get_running_loop().create_task(self._shadow(call, body, cfg, seconds))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(self, call: Call, body: bytes, cfg: ShadowCfg, seconds: float) -> None:
        model = call.model_label
        try:
            await self._compare(call, body, cfg, seconds)
        except Exception:  # pragma: no cover - a shadow never takes anything else down
            LOG.exception("shadow call for %s failed", model)
        finally:
            self._running[model] -= 1

    async def _compare(self, call: Call, body: bytes, cfg: ShadowCfg, seconds: float) -> None:
        # A streamed request is asked whole: the comparison needs the answer, not its pace.
        changes = {"model": cfg.target, "stream": REMOVE, "stream_options": REMOVE}
        shadow = Call(f"{call.request_id}-shadow", call.endpoint,
                      _Request(patch_fields(call.raw, changes)), perf_counter())  # fmt: skip
        shadow.route_choice = "shadow"
        shadow.route_reason = f"shadow of {call.request_id}"[:200]
        started = perf_counter()
        status, answer_body = 0, None
        try:
            reply = await self._pipeline(shadow)
            status, answer_body = reply.status, reply.body
            if reply.after is not None:
                reply.after()  # the shadow's ledger row
        except GatewayError as err:
            status = err.status
        candidate_ms = (perf_counter() - started) * 1000
        ours, theirs = answer_text(body), answer_text(answer_body)
        target = call.target
        incumbent = f"{target.provider.name}/{target.model}" if target is not None else None
        comparison = Comparison(
            request_id=call.request_id, shadow_request_id=shadow.request_id, ts=time.time(),
            model=call.model_label, incumbent=incumbent,
            candidate=cfg.target, incumbent_cost=self._metering.cost(call),
            candidate_cost=self._metering.cost(shadow) if status == 200 else None,
            incumbent_ms=seconds * 1000, candidate_ms=candidate_ms, status=status,
            similarity=await self._similarity(ours, theirs),
            exact=None if ours is None or theirs is None else _same(ours, theirs),
            json_valid=_valid_json(theirs) if _asks_json(call) and status == 200 else None,
            incumbent_answer=ours[:MAX_ANSWER] if ours else None,
            candidate_answer=theirs[:MAX_ANSWER] if theirs else None,
        )  # fmt: skip
        await self._keep(comparison)

    async def _similarity(self, ours: str | None, theirs: str | None) -> float | None:
        if not ours or not theirs:
            return None
        a, b = await self._embedder.embed(ours), await self._embedder.embed(theirs)
        if a is None or b is None:
            return None
        return round(float(a @ b), 4)

    async def _keep(self, comparison: Comparison) -> None:
        try:
            await self._opening.ready()
            await self._store.put(comparison)
            now = time.monotonic()
            if now >= self._next_prune:
                self._next_prune = now + _PRUNE_EVERY
                await self._store.prune(time.time() - self._retention)
        except StoreError as err:
            metrics.labelled(metrics.SHADOW_SKIPPED, comparison.model).inc()
            LOG.warning("shadow comparison for %s not kept: %s", comparison.model, err)

    async def summary(self, start: float, end: float) -> dict[str, Any]:
        """Per model and candidate; costs in US dollars, as the usage API gives them."""
        await self._opening.ready()
        groups = await self._store.summary(start, end)
        for group in groups:
            for name in ("incumbent_cost", "candidate_cost"):
                group[name] = Decimal(usd(group[name]))
        return {"object": "shadow.summary", "start": start, "end": end, "data": groups}

    async def recent(self, start: float, end: float, limit: int) -> list[Comparison]:
        await self._opening.ready()
        return await self._store.rows(start, end, limit)


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _asks_json(call: Call) -> bool:
    fmt = getattr(call.view, "response_format", None)
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def build_shadow_runner(  # noqa: PLR0913 - what the shadow calls are made of
    cfg: GatewayCfg,
    env: Mapping[str, str],
    catalog: Catalog,
    metering: Metering,
    embedder: Embedder,
    pipeline: Handler,
) -> ShadowRunner | None:
    """The shadow runner, when a model asks for shadow traffic (the ledger must be on, and
    every candidate a model this config serves); `pipeline` makes its calls."""
    shadowed = [m for m in cfg.models if m.shadow is not None]
    if not shadowed:
        return None
    if metering.meter is None:
        raise ConfigError(f"models.{shadowed[0].name}.shadow: needs the usage ledger (usage)")
    for model in shadowed:
        assert model.shadow is not None
        try:
            catalog.resolve(model.shadow.target)
        except GatewayError as err:
            raise ConfigError(f"models.{model.name}.shadow.target: {err.message}") from None
    store = open_shadow_store(store_url(cfg.usage.store, env), env)
    return ShadowRunner(pipeline, metering, store, embedder, cfg.usage.retention_days)
