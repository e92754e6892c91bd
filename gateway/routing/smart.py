"""The ranked routing modes, and the check of a target against what a request needs.

- `cheapest`: children in order of this request's expected cost (the compiled token count
  × input price + the expected reply × output price; a child with no price goes last, never
  assumed free), ties broken by measured latency.
- `complexity`: the tier whose bound the request's complexity score falls below, then the
  tiers above it (more capable), then those below.
- `semantic`: the route whose examples are nearest the last user turn (cosine, with the
  configured embedder), if at least `threshold`; else the default; then the rest in order.

Each ranking comes with the decision as the client sees it in x-gateway-route (the child
taken) and x-gateway-route-reason ("complexity=0.22<0.35", "cheapest: $0.0004 vs $0.0061"),
and the ledger keeps both. A child that cannot take the request (its context window is too
small, or it lacks tools, vision or JSON-schema support) is ranked out.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from gateway.cache.embedders import Embedder, build_embedder
from gateway.metering.prices import ModelPrice, Rates, Tiered
from gateway.providers.transport import Transport
from gateway.routing.catalog import Catalog
from gateway.routing.plan import Group, Leaf, Node, Semantic
from gateway.routing.signals import Signals

# semantic mode's similarity a route needs, by embedder; a provider's model gets the neural
# one. Measured on the routes of tests/test_smart_routing.py: with `local` (words, not
# meanings) questions on a route's topic in its words score 0.6-0.75, unrelated ones
# 0.03-0.28, and the topic in other words ("money back" for a refund) 0.2, a miss; with
# `minilm` those score 0.72-0.79, 0.10-0.19 and 0.43-0.45, a hit.
THRESHOLDS = {"local": 0.35, "minilm": 0.4}
_NEURAL = 0.4


class Decision(NamedTuple):
    order: list[int]  # children, best first
    route: str  # the child taken, as x-gateway-route shows it
    reason: str
    score: float | None = None  # semantic: the winning similarity


PriceOf = Callable[[Leaf], ModelPrice | None]


def _rate(rate: int | Tiered | None, tokens: int) -> int | None:
    if rate is None or isinstance(rate, int):
        return rate
    return rate.at(tokens)


def child_name(group: Group, index: int) -> str:
    node = group.children[index]
    if isinstance(node, Leaf):
        return node.name or node.key
    return node.name or f"{group.mode}[{index}]"


def _tier_plans(group: Group) -> list[tuple[float | None, list[int], str, str]]:
    """complexity mode, worked out once per node: for each tier, its bound, the children in
    the order they are tried (the tier, the tiers above, those below, the rest), the name
    x-gateway-route shows and the bound as the reason shows it."""
    tiers = group.tiers
    plans = []
    for at, (below, _) in enumerate(tiers):
        picked = [tiers[k][1] for k in (*range(at, len(tiers)), *range(at - 1, -1, -1))]
        order = list(dict.fromkeys(picked))
        order += [i for i in range(len(group.children)) if i not in order]
        above = tiers[at - 1][0] if at else None
        bound = f"<{below:g}" if below is not None else f">={above:g}"
        plans.append((below, order, child_name(group, order[0]), bound))
    return plans


class SmartRouter:
    """Ranks the children of cheapest, complexity and semantic nodes for one request, and
    tells whether a target can take it. Prices and context windows come from metering's
    price lookup (remembered per target); embedders are built by name, once."""

    def __init__(self, price_of: PriceOf, embedder: Callable[[str], Embedder | None]) -> None:
        self._price_of = price_of
        self._embedder = embedder
        self._windows: dict[Leaf, int | None] = {}
        self._rates: dict[Leaf, tuple[int, int] | None] = {}
        self._tiers: dict[Group, list[tuple[float | None, list[int], str, str]]] = {}
        self._examples: dict[Semantic, tuple[np.ndarray[Any, Any], list[int]]] = {}
        self._embedding: dict[Semantic, asyncio.Future[None]] = {}

    # --- can this target take the request? ---

    def window(self, leaf: Leaf) -> int | None:
        windows = self._windows
        if leaf not in windows:
            price = self._price_of(leaf)
            windows[leaf] = leaf.context_window or (price.context_window if price else None)
        return windows[leaf]

    def unfit(self, leaf: Leaf, signals: Signals) -> str | None:
        """Why `leaf` cannot take the request ("context_window", "tools", ...), or None."""
        if leaf.supports is not None:
            lacking = signals.lacks(leaf.supports)
            if lacking is not None:
                return lacking
        window = self.window(leaf)
        if window is not None and not signals.within(window):
            return "context_window"
        return None

    def fits(self, node: Node, signals: Signals) -> bool:
        if isinstance(node, Leaf):
            return self.unfit(node, signals) is None
        return any(self.fits(child, signals) for child in node.children)

    # --- ranking ---

    async def rank(self, group: Group, signals: Signals) -> Decision:
        if group.mode == "cheapest":
            return self._cheapest(group, signals)
        if group.mode == "complexity":
            return self._complexity(group, signals)
        return await self._semantic(group, signals)

    def _cost(self, node: Node, signals: Signals, output: int) -> int | None:
        """Femto-dollars the request is expected to cost at `node` (its cheapest fitting leaf
        for a group), or None when unpriced (or nothing under it fits)."""
        if isinstance(node, Group):
            costs = [self._cost(child, signals, output) for child in node.children]
            known = [c for c in costs if c is not None]
            return min(known) if known else None
        if self.unfit(node, signals) is not None:
            return None
        return self._leaf_cost(node, signals, output)

    def _leaf_cost(self, leaf: Leaf, signals: Signals, output: int) -> int | None:
        """What a fitting leaf is expected to cost, or None when it has no price."""
        fixed = self._fixed_rates(leaf)
        prompt: int = signals["prompt_tokens"]
        if fixed is not None:
            return prompt * fixed[0] + output * fixed[1]
        price = self._price_of(leaf)
        if price is None:
            return None
        rates: Rates = price.fixed or price.rates_at(datetime.datetime.now(datetime.UTC))
        rate_in, rate_out = _rate(rates.input, prompt), _rate(rates.output, prompt)
        if rate_in is None or rate_out is None:
            return None
        return prompt * rate_in + output * rate_out

    def _fixed_rates(self, leaf: Leaf) -> tuple[int, int] | None:
        """A leaf's input and output rates when they are plain numbers fixed in time (most
        models), remembered; else None (unpriced, tiered or dated: the general path)."""
        rates = self._rates
        if leaf not in rates:
            price = self._price_of(leaf)
            fixed = price.fixed if price is not None else None
            plain = fixed is not None and type(fixed.input) is int and type(fixed.output) is int
            rates[leaf] = (fixed.input, fixed.output) if plain and fixed else None  # type: ignore[assignment]
        return rates[leaf]

    def _cheapest(self, group: Group, signals: Signals) -> Decision:
        asked = signals["max_tokens"]
        output = min(asked, group.expected_output) if asked else group.expected_output
        latency = group.balancer.latency
        ranked = []
        for i, child in enumerate(group.children):
            if isinstance(child, Leaf):
                fits = self.unfit(child, signals) is None
                cost = self._leaf_cost(child, signals, output) if fits else None
            else:
                cost = self._cost(child, signals, output)
                fits = cost is not None or self.fits(child, signals)
            # priced first, then unpriced but fitting, then what cannot take the request
            rank = 0 if cost is not None else 1 if fits else 2
            ranked.append((rank, cost or 0, latency(i), i))
        ranked.sort()
        order = [entry[3] for entry in ranked]
        first = ranked[0][1] if ranked[0][0] == 0 else None
        second = ranked[1][1] if len(ranked) > 1 and ranked[1][0] == 0 else None
        if first is None:
            reason = "cheapest: no price known, in the order given"
        elif second is None:
            reason = f"cheapest: ${first / 1e15:.6f}"
        else:
            reason = f"cheapest: ${first / 1e15:.6f} vs ${second / 1e15:.6f}"
        return Decision(order, child_name(group, order[0]), reason)

    def _complexity(self, group: Group, signals: Signals) -> Decision:
        value = signals["complexity"]
        plans = self._tiers.get(group)
        if plans is None:
            plans = self._tiers[group] = _tier_plans(group)
        for below, order, name, bound in plans:
            if below is None or value < below:
                return Decision(order, name, f"complexity={value:.2f}{bound}")
        raise AssertionError("the last tier has no bound")  # pragma: no cover - build.py

    async def _semantic(self, group: Group, signals: Signals) -> Decision:
        spec = group.semantic
        assert spec is not None and group.default is not None
        threshold = spec.threshold if spec.threshold is not None else (
            THRESHOLDS.get(spec.embedder, _NEURAL)
        )  # fmt: skip
        best, best_score = -1, -1.0
        text = signals.last_user
        embedder = self._embedder(spec.embedder)
        vector = await embedder.embed(text) if text and embedder is not None else None
        found = await self._route_vectors(spec, embedder) if vector is not None else None
        if found is not None:  # else the embedder failed: the default serves
            matrix, owners = found
            scores = matrix @ vector
            k = int(scores.argmax())  # the method: half the cost of np.argmax on a few rows
            best, best_score = owners[k], float(scores[k])
        if best >= 0 and best_score >= threshold:
            name, _, index = spec.routes[best]
            reason = f"semantic: {name} {best_score:.2f}>={threshold:g}"
        else:
            index = group.default
            reason = (
                f"semantic: default, nearest {best_score:.2f}<{threshold:g}"
                if best >= 0 else "semantic: default, no text to compare"
            )  # fmt: skip
        order = [index, *(i for i in range(len(group.children)) if i != index)]
        score = best_score if best >= 0 else None
        return Decision(order, child_name(group, index), reason, score)

    async def _route_vectors(
        self, spec: Semantic, embedder: Embedder | None
    ) -> tuple[np.ndarray[Any, Any], list[int]] | None:
        """Every example's vector (one row each) and its route, embedded once on first use
        (concurrent first requests share the work); None while the embedder fails."""
        found = self._examples.get(spec)
        if found is not None or embedder is None:
            return found
        pending = self._embedding.get(spec)
        if pending is None:
            pending = asyncio.ensure_future(self._embed_examples(spec, embedder))
            self._embedding[spec] = pending
        await asyncio.shield(pending)
        return self._examples.get(spec)

    async def _embed_examples(self, spec: Semantic, embedder: Embedder) -> None:
        rows, owners = [], []
        try:
            for k, (_, examples, _) in enumerate(spec.routes):
                for example in examples:
                    vector = await embedder.embed(example)
                    if vector is None:  # a provider's embedder failing: tried again later
                        return
                    rows.append(vector)
                    owners.append(k)
            self._examples[spec] = (np.vstack(rows).astype(np.float32), owners)
        finally:
            self._embedding.pop(spec, None)


def build_smart_router(
    catalog: Catalog,
    model_price: Callable[[str, str], ModelPrice | None],
    transport: Transport,
    cache_embedder: Embedder,
) -> SmartRouter:
    """The smart router of a config: prices (and context windows) from metering's lookup,
    and the embedders its semantic routes name, built now (the cache's own when the same)."""
    embedders: dict[str, Embedder] = {cache_embedder.name: cache_embedder}
    for name in catalog.semantic_embedders():
        if name not in embedders:
            embedders[name] = build_embedder(name, catalog, transport, "strategy.embedder")

    def price_of(leaf: Leaf) -> ModelPrice | None:
        return model_price(leaf.target.provider.name, leaf.target.model)

    return SmartRouter(price_of, embedders.get)
