"""Stage: serve the call from its route's tree, moving on from targets that fail.

Each inner node offers its children in its strategy's order (fallback, weighted, least
latency, least busy, conditional); each leaf is tried, retried with backoff when its policy
says so, and its breaker told the outcome. All attempts of one request draw from one budget
(routing.max_attempts), and none outlives the request's own deadline.

A stream is held until its first content arrives: until then a failure is invisible to the
client and the next target takes over. After that the stream is committed to its target; a
failure ends it with an error event and no [DONE].
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from functools import partial
from time import perf_counter
from typing import Any

import msgspec

from gateway.api import anthropic
from gateway.api.codec import patch_fields
from gateway.api.envelope import error_event
from gateway.api.requests import RequestView
from gateway.config.routing import RoutingCfg
from gateway.errors import (
    GatewayError,
    InvalidRequest,
    Overloaded,
    TargetsUnavailable,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_type,
    provider_failed,
)
from gateway.observability import metrics
from gateway.pipeline.call import Call, Handler, Reply
from gateway.pipeline.faults import HEADER as FAULT_HEADER
from gateway.pipeline.faults import parse_fault
from gateway.providers.base import COUNTING, Endpoint, Timeouts
from gateway.responses.native import PREAMBLE as RESPONSES_PREAMBLE
from gateway.routing import retry
from gateway.routing.plan import SMART_MODES, Group, Leaf, Node
from gateway.routing.signals import Params, Signals, fits_by_size
from gateway.routing.smart import SmartRouter, child_name
from gateway.tracing import OPERATIONS
from gateway.tracing.spans import CLIENT, Trace, new_id

_ANTHROPIC_ENDPOINTS = (Endpoint.MESSAGES, Endpoint.COUNT_TOKENS)
# A role-only opening chunk ({"role": "assistant", "content": ""}) is not content yet.
_PREAMBLE = re.compile(rb'"role"\s*:\s*"assistant"')
_EMPTY_CONTENT = re.compile(rb'"content"\s*:\s*(?:""|null)')
_ANTHROPIC_PREAMBLE = (b"event: message_start", b"event: ping", b"event: content_block_start")
_PREAMBLES = _ANTHROPIC_PREAMBLE + RESPONSES_PREAMBLE


class UnsupportedEndpoint(InvalidRequest):
    code = "unsupported_endpoint"


class Unfit(InvalidRequest):
    """A target that cannot take this request (never sent): the next one is tried."""

    code = "unsupported_request"


class ContextOverflow(Unfit):
    code = "context_length_exceeded"


_SKIPPED = (TargetsUnavailable, Overloaded, UnsupportedEndpoint, Unfit)  # never sent


def carries_content(batch: bytes) -> bool:
    """Whether a batch of frames holds anything past the stream's opening formalities."""
    for frame in batch.split(b"\n\n"):
        if not frame:
            continue
        if frame.startswith(b"event: "):
            if not frame.startswith(_PREAMBLES):
                return True
            continue
        if (
            _PREAMBLE.search(frame)
            and _EMPTY_CONTENT.search(frame)
            and frame.find(b'"tool_calls"') < 0
        ):
            continue
        return True
    return False


# Reserves an attempt on a target's own limits (governance), or raises TargetsUnavailable.
Gate = Callable[[Call, Leaf], Awaitable[None]]


class Failover:
    def __init__(
        self,
        settings: RoutingCfg,
        decode: Callable[[Endpoint, bytes], RequestView],
        gate: Gate | None = None,
        smart: SmartRouter | None = None,
    ) -> None:
        self._budget = settings.max_attempts
        self._faults = settings.fault_injection
        self._decode = decode
        self._gate = gate
        self._smart = smart

    async def __call__(self, call: Call, call_next: Handler) -> Reply:
        route = call.route
        assert route is not None
        if self._faults:
            header = call.http.headers.get(FAULT_HEADER)
            if header:
                call.fault = parse_fault(header)
        walk = _Walk(call, call_next, self._budget, self._decode, self._gate)
        if route.fitted:
            walk.smart = self._smart
        if route.conditional:
            walk.context = walk.build_context()
        try:
            try:
                reply = await walk.node(route.root, "")
            except Unfit:
                if route.overflow is None:
                    raise
                call.route_reason = "context_fallback"
                reply = await walk.node(route.overflow, "overflow")
        except GatewayError as err:
            err.headers = {**err.headers, "x-gateway-attempts": str(call.attempts)}
            raise
        _stamp(call, walk, reply.headers)
        if reply.events is not None:
            reply.events = _committed(call, walk, reply.events)
        return reply


def _stamp(call: Call, walk: _Walk, headers: dict[str, str]) -> None:
    """The attempts and the routing decision, on the answer (and, via the call, the ledger)."""
    headers["x-gateway-attempts"] = str(call.attempts)
    if call.fallback_path:
        headers["x-gateway-fallback-index"] = call.fallback_path
    if call.route_choice is None and call.target is not None:
        call.route_choice = walk.leaf_name
    if call.route_choice is not None:
        headers["x-gateway-route"] = call.route_choice
    headers["x-gateway-route-reason"] = call.route_reason or walk.mode
    if call.route_score is not None:
        headers["x-gateway-route-score"] = f"{call.route_score:.3f}"


class _Walk:
    """One request's way through a route tree."""

    __slots__ = (
        "_budget",
        "_call",
        "_decode",
        "_deadline",
        "_gate",
        "_next",
        "_original",
        "_signals",
        "context",
        "finalizers",
        "held",
        "leaf",
        "leaf_name",
        "mode",
        "smart",
    )

    def __init__(
        self,
        call: Call,
        call_next: Handler,
        budget: int,
        decode: Callable[[Endpoint, bytes], RequestView],
        gate: Gate | None = None,
    ) -> None:
        self._call = call
        self._gate = gate
        self._next = call_next
        self._budget = budget
        self._decode = decode
        self._deadline = call.started + call.timeout if call.timeout else None
        # Stages after this one may rewrite these (the front door); each attempt starts afresh.
        self._original = (call.raw, call.view, call.upstream_endpoint)
        self.context: dict[str, Any] | None = None
        self.smart: SmartRouter | None = None  # set when targets are checked and ranked
        self._signals: Signals | None = None
        self.mode = "single"  # the strategy of the last node that chose (route-reason)
        self.leaf_name: str | None = None  # what the last attempt went to
        # A committed stream: what was read while priming, the leaf that serves it, and what
        # to do when it ends (release slots, record in-flight counts).
        self.held: list[bytes] = []
        self.leaf: Leaf | None = None
        self.finalizers: list[Callable[[], object]] = []

    async def node(self, node: Node, path: str) -> Reply:
        if isinstance(node, Leaf):
            return await self._leaf(node, path)
        return await self._group(node, path)

    @property
    def signals(self) -> Signals:
        if self._signals is None:
            self.build_context()
        assert self._signals is not None
        return self._signals

    def build_context(self) -> dict[str, Any]:
        """What conditional routes may ask about a request (routing/conditions.py)."""
        call = self._call
        signals = self._signals = Signals.of(call.raw, call.stream, call.view)
        return {"metadata": call.metadata or {}, "params": Params(call.raw), "signals": signals}

    async def _group(self, group: Group, path: str) -> Reply:
        excluded = 0
        last: GatewayError | None = None
        order = await self._ranked(group) if group.mode in SMART_MODES else None
        while True:
            index = group.choose(excluded, self.context) if order is None else group.first(
                order, excluded
            )  # fmt: skip
            if index < 0:
                break
            self.mode = group.mode
            started = perf_counter()
            group.balancer.begin(index)
            try:
                reply = await self.node(
                    group.children[index], f"{path}.{index}" if path else str(index)
                )
            except GatewayError as err:
                if isinstance(err, _SKIPPED):
                    # Never sent: the child's latency estimate stays as it was.
                    group.balancer.end(index, group.balancer.latency(index), True)
                else:
                    group.balancer.end(index, perf_counter() - started, not provider_failed(err))
                if not self._moves_on(group, err):
                    raise
                last = err
                excluded |= 1 << index
                if self._call.attempts >= self._budget:
                    raise
                metrics.labelled(metrics.FALLBACKS, self._call.model_label).inc()
                continue
            except BaseException:
                group.balancer.end(index, perf_counter() - started, True)
                raise
            seconds = perf_counter() - started
            if reply.events is None:
                group.balancer.end(index, seconds, True)
            else:  # in flight until the stream ends; its latency is the time to first content
                self.finalizers.append(partial(group.balancer.end, index, seconds, True))
            if order is not None and index != order[0]:  # the ranked choice was passed over
                call, first = self._call, child_name(group, order[0])
                call.route_choice = child_name(group, index)
                call.route_reason = f"{call.route_reason}; moved on from {first}"
            return reply
        if last is not None:
            raise last
        wait = max(1, math.ceil(group.retry_after()))
        raise TargetsUnavailable(
            "Every target of this model is cooling down after failures; try again shortly.",
            headers={"retry-after": str(wait)},
        )

    async def _ranked(self, group: Group) -> list[int] | None:
        """A ranked node's children, best first, its decision noted on the call."""
        smart = self.smart
        if smart is None:
            return None
        decision = await smart.rank(group, self.signals)
        call = self._call
        call.route_choice, call.route_reason = decision.route, decision.reason
        if decision.score is not None:
            call.route_score = decision.score
        return decision.order

    @staticmethod
    def _moves_on(group: Group, err: GatewayError) -> bool:
        if group.mode in ("single", "conditional"):
            return False
        if isinstance(err, (UpstreamUnavailable, UpstreamTimeout, *_SKIPPED)):
            return True
        return isinstance(err, UpstreamError) and err.status in group.moves_on

    async def _leaf(self, leaf: Leaf, path: str) -> Reply:
        call = self._call
        self._check_fit(leaf)
        self.leaf_name = leaf.name or leaf.key
        breaker = leaf.breaker
        retries = 0
        while True:
            if self._gate is not None:
                # A target at its own configured limit is skipped like a cooling-down one.
                await self._gate(call, leaf)
            if breaker is not None and not breaker.acquire():
                cooldown = max(1, math.ceil(breaker.retry_after()))
                raise TargetsUnavailable(
                    f"Target {leaf.key} is cooling down after failures.",
                    headers={"retry-after": str(cooldown)},
                )
            call.attempts += 1
            call.fallback_path = path
            try:
                reply = await self._attempt(leaf)
            except GatewayError as err:
                failed = provider_failed(err)
                if breaker is not None:
                    if failed:
                        asked = retry.retry_after(err.headers) if err.status == 429 else None
                        breaker.record(False, asked)
                    else:
                        breaker.release()
                wait = self._retry_delay(leaf, retries, err)
                if wait is None:
                    raise
                retries += 1
                metrics.labelled(metrics.RETRIES, leaf.target.provider.name).inc()
                await asyncio.sleep(wait)
                continue
            except BaseException:
                if breaker is not None:
                    breaker.release()
                raise
            if breaker is not None:
                breaker.record(True)
            return reply

    def _check_fit(self, leaf: Leaf) -> None:
        """Skips a target that cannot serve the endpoint, or that the request cannot fit,
        rather than send it for the provider's 400. Most requests are settled by the body's
        size alone (Signals.within)."""
        call = self._call
        # /v1/messages is served natively or translated to chat completions (frontdoor.py).
        # A count (COUNTING): whatever can answer the request can have it counted.
        needed = call.endpoint
        if needed in _ANTHROPIC_ENDPOINTS or needed in COUNTING:
            needed = Endpoint.CHAT
        if not leaf.target.provider.supports(needed):
            raise UnsupportedEndpoint(
                f"Model `{leaf.key}` cannot serve /v1/{call.endpoint.value}.", param="model"
            )
        smart = self.smart
        if smart is None:
            return
        if leaf.supports is None:
            window = smart.window(leaf)
            if window is None:
                return
            view = call.view
            asked = getattr(view, "max_completion_tokens", None) or getattr(
                view, "max_tokens", None
            )  # fmt: skip
            if call.raw.find(b"image") < 0 and fits_by_size(len(call.raw), asked, window):
                return
        lacking = smart.unfit(leaf, self.signals)
        if lacking == "context_window":
            raise ContextOverflow(
                f"This request is longer than the context window of {leaf.key}"
                f" ({smart.window(leaf)} tokens, the reply's max_tokens included).",
                param="messages",
            )
        if lacking is not None:
            raise Unfit(f"Target {leaf.key} does not support {lacking}.", param="model")

    def _retry_delay(self, leaf: Leaf, retries: int, err: GatewayError) -> float | None:
        if retries >= leaf.retry.attempts or self._call.attempts >= self._budget:
            return None
        if not retry.retryable(err, leaf.retry.on_status_codes):
            return None
        wait = retry.delay(leaf.retry, retries, err)
        if wait is None:
            return None
        if self._deadline is not None and perf_counter() + wait >= self._deadline:
            return None
        return wait

    async def _attempt(self, leaf: Leaf) -> Reply:  # noqa: C901 - deadline, admission, trace
        call = self._call
        started = perf_counter()
        timeouts = leaf.timeouts
        if self._deadline is not None:
            remaining = self._deadline - started
            if remaining <= 0:
                raise UpstreamTimeout("The request's deadline passed before the provider answered.")
            timeouts = _capped(timeouts, remaining)
        call.timeouts = timeouts
        self._prepare(leaf)
        trace = call.trace
        if trace is not None:  # this attempt's span id: the provider's parent (upstream.py)
            trace.attempt_id = new_id(8)
        admission = leaf.admission
        if admission is not None:
            waited = await admission.acquire()
            if waited:
                metrics.labelled(metrics.QUEUE_WAIT_SECONDS, leaf.target.provider.name).observe(
                    waited
                )
        try:
            reply = await self._next(call)
            if reply.events is not None:
                await self._prime(reply, timeouts.first_byte - (perf_counter() - started))
                self.leaf = leaf
        except BaseException as err:
            if admission is not None:
                admission.release()
            if trace is not None:
                _attempt_span(call, trace, leaf, started, err)
            raise
        if trace is not None:
            _attempt_span(call, trace, leaf, started, None, reply.status)
        if admission is not None:
            if reply.events is None:
                admission.release()
            else:
                self.finalizers.append(admission.release)
        return reply

    def _prepare(self, leaf: Leaf) -> None:
        call = self._call
        raw, view, endpoint = self._original
        call.raw, call.view, call.upstream_endpoint = raw, view, endpoint
        call.target = leaf.target
        call.override = leaf.override
        if leaf.override:
            call.raw = patch_fields(raw, leaf.override)
            try:
                call.view = self._decode(call.body_endpoint, call.raw)
            except msgspec.MsgspecError as err:
                raise InvalidRequest(
                    f"override_params of {leaf.key} make the request invalid: {err}"
                ) from None

    async def _prime(self, reply: Reply, budget: float) -> None:
        """Holds the stream until its first content, so a failure before it can fail over."""
        events = reply.events
        assert events is not None
        held: list[bytes] = []
        try:
            async with asyncio.timeout(max(budget, 0.001)):
                async for batch in events:
                    held.append(batch)
                    if carries_content(batch):
                        break
        except TimeoutError:
            await _close(events)
            raise UpstreamTimeout(
                "The provider sent no content before the first-byte deadline."
            ) from None
        except BaseException:
            await _close(events)
            raise
        self.held = held


def _attempt_span(  # noqa: PLR0913 - the attempt's outcome, one value each
    call: Call,
    trace: Trace,
    leaf: Leaf,
    started: float,
    err: BaseException | None,
    status: int | None = None,
) -> None:
    """The attempt's span (until its answer's head, or a stream's first content)."""
    target = leaf.target
    error = None
    if isinstance(err, GatewayError):
        status, error = err.status, error_type(err)
    elif err is not None:
        error = type(err).__name__
    operation = OPERATIONS.get(call.upstream_endpoint.value, call.upstream_endpoint.value)
    trace.child(
        f"{operation} {target.model}"[:200], started, perf_counter(),
        {
            "gen_ai.operation.name": operation, "gen_ai.provider.name": target.provider.name,
            "gen_ai.request.model": target.model, "gateway.attempt": call.attempts,
            "gateway.fallback_path": call.fallback_path, "http.response.status_code": status,
            "error.type": error,
        },
        kind=CLIENT, span_id=trace.attempt_id, error=error,
    )  # fmt: skip
    trace.attempt_id = None


def _capped(timeouts: Timeouts, remaining: float) -> Timeouts:
    return Timeouts(
        connect=min(timeouts.connect, remaining),
        first_byte=min(timeouts.first_byte, remaining),
        idle=timeouts.idle,
        total=min(timeouts.total, remaining),
    )


async def _close(events: AsyncIterator[bytes]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


async def _committed(call: Call, walk: _Walk, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream after its first content: replays what priming held, relays the rest, and, if
    it fails, ends it with an error event and no [DONE] so the client can tell it was cut.
    One generator for all of it, since every layer costs on every chunk."""
    try:
        for batch in walk.held:
            yield batch
        walk.held = []
        async with aclosing(events):  # type: ignore[type-var]
            async for batch in events:
                yield batch
    except GatewayError as err:
        leaf = walk.leaf
        if leaf is not None and leaf.breaker is not None and provider_failed(err):
            leaf.breaker.record(False)  # a committed stream that fails still counts
        call.stream_error = err
        if call.endpoint in _ANTHROPIC_ENDPOINTS:
            yield anthropic.error_event(err)
        else:
            yield error_event(err.message, error_type(err), err.code)
    finally:
        for done in reversed(walk.finalizers):
            done()
