"""A route as a tree: leaves are a provider's model, inner nodes a strategy over children.

Built once from config (build.py) and shared by every request; the per-request walk is in
pipeline/failover.py. Mutable state lives in the balancer kernel (weights, in-flight counts,
latency) and in the breakers and admission limits, which belong to targets, not routes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from gateway._native.balance import Balancer
from gateway.config.cache import CachePolicyCfg
from gateway.config.routing import RetryCfg, ShadowCfg
from gateway.providers.base import ProviderAdapter, Timeouts
from gateway.routing.admission import Admission
from gateway.routing.conditions import Predicate
from gateway.routing.health import Breaker


@dataclass(frozen=True, slots=True)
class Target:
    """What one upstream attempt goes to."""

    provider: ProviderAdapter
    model: str


class Leaf:
    __slots__ = (
        "admission", "breaker", "context_window", "key", "name", "override", "retry",
        "supports", "target", "timeouts",
    )  # fmt: skip

    def __init__(  # noqa: PLR0913 - a leaf is exactly these settings
        self,
        target: Target,
        *,
        name: str | None,
        override: dict[str, Any],
        retry: RetryCfg,
        timeouts: Timeouts,
        breaker: Breaker | None,
        admission: Admission | None,
        context_window: int | None = None,
        supports: frozenset[str] | None = None,
    ) -> None:
        self.target = target
        self.context_window = context_window  # as configured; else the price catalog's
        self.supports = supports  # None: whatever a request asks for
        self.name = name
        self.key = f"{target.provider.name}/{target.model}"
        self.override = override
        self.retry = retry
        self.timeouts = timeouts
        self.breaker = breaker
        self.admission = admission

    def available(self) -> bool:
        return self.breaker is None or self.breaker.available()

    def retry_after(self) -> float:
        return self.breaker.retry_after() if self.breaker is not None else 0.0


SMART_MODES = frozenset({"cheapest", "complexity", "semantic"})  # ranked by routing/smart.py


@dataclass(frozen=True, slots=True)
class Semantic:
    """semantic mode: each route's examples and the child it sends to (by index)."""

    routes: tuple[tuple[str, tuple[str, ...], int], ...]
    embedder: str
    threshold: float | None


class Group:
    __slots__ = (
        "balancer", "children", "conditions", "default", "expected_output", "mode",
        "moves_on", "name", "semantic", "tiers",
    )  # fmt: skip

    def __init__(  # noqa: PLR0913 - a group is exactly these settings
        self,
        mode: str,
        children: list[Node],
        weights: list[float],
        *,
        name: str | None,
        moves_on: frozenset[int],
        conditions: list[tuple[Predicate, int]],
        default: int | None,
        tiers: tuple[tuple[float | None, int], ...] = (),
        semantic: Semantic | None = None,
        expected_output: int = 256,
    ) -> None:
        self.mode = mode
        self.tiers = tiers  # complexity: (upper bound, child index), lowest tier first
        self.semantic = semantic
        self.expected_output = expected_output  # cheapest: reply tokens a request is priced at
        self.children = children
        self.name = name
        self.balancer = Balancer(weights)
        self.moves_on = moves_on  # statuses that send the request on to the next child
        self.conditions = conditions
        self.default = default

    def available(self) -> bool:
        return any(child.available() for child in self.children)

    def retry_after(self) -> float:
        waits = [child.retry_after() for child in self.children]
        return min(waits) if waits else 0.0

    def unavailable_mask(self) -> int:
        mask = 0
        for i, child in enumerate(self.children):
            if not child.available():
                mask |= 1 << i
        return mask

    def choose(self, excluded: int, context: dict[str, Any] | None) -> int:
        """The next child to try, or -1. `excluded` has a bit set per child already tried."""
        mode = self.mode
        if mode == "fallback" or mode in SMART_MODES:  # unranked: in the order given
            for i in range(len(self.children)):
                if not (excluded >> i) & 1 and self.children[i].available():
                    return i
            return -1
        if mode in ("single", "conditional"):
            if excluded:
                return -1  # these modes never move on to a sibling
            index = self._conditional(context) if mode == "conditional" else 0
            return index if index >= 0 and self.children[index].available() else -1
        mask = excluded | self.unavailable_mask()
        if mode == "least-busy":
            return self.balancer.least_busy(mask)
        if mode == "least-latency":
            return self.balancer.least_latency(mask, random.random(), random.random())
        return self.balancer.pick(mask)

    def first(self, order: list[int], excluded: int) -> int:
        """A ranked mode's next child: the best of `order` not yet tried and available."""
        children = self.children
        for i in order:
            if not (excluded >> i) & 1 and children[i].available():
                return i
        return -1

    def _conditional(self, context: dict[str, Any] | None) -> int:
        for predicate, index in self.conditions:
            if predicate(context or {}):
                return index
        return self.default if self.default is not None else -1


Node = Leaf | Group


class Route:
    """A name clients send, and the tree that serves it."""

    __slots__ = (
        "cache", "conditional", "configured", "fitted", "name", "overflow", "root", "shadow",
    )  # fmt: skip

    def __init__(  # noqa: PLR0913 - a route is exactly these settings
        self,
        name: str,
        root: Node,
        *,
        configured: bool = True,
        cache: CachePolicyCfg | None = None,
        overflow: Node | None = None,
        shadow: ShadowCfg | None = None,
    ) -> None:
        self.name = name
        self.shadow = shadow  # a candidate model sampled beside this one (evaluation/shadow.py)
        self.root = root
        self.cache = cache  # this model's own cache policy, if it has one
        # Whether the name is a configured alias (bounded) or a client-chosen direct name.
        self.configured = configured
        # Where a request too long for every target goes (context_fallback), if anywhere.
        self.overflow = overflow
        self.conditional = self._needs_context()
        # Whether targets are ranked (cheapest, complexity, semantic) and checked against what
        # the request needs (context window, tools, images, a JSON schema) before it is sent:
        # configured routes and routes sent in x-gateway-config with several targets; a
        # client's one `provider/model` is left to its provider.
        self.fitted = configured or isinstance(root, Group)

    def _needs_context(self) -> bool:
        """Whether any node routes on a condition (the ranked modes read the request's
        signals when they rank, built then)."""
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Group):
                if node.mode == "conditional":
                    return True
                stack.extend(node.children)
        return False

    def first_leaf(self) -> Leaf:
        """Where a request goes when nothing fails: each group's first child."""
        node = self.root
        while isinstance(node, Group):
            node = node.children[0]
        return node

    def leaves(self) -> list[Leaf]:
        out: list[Leaf] = []
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Leaf):
                out.append(node)
            else:
                stack.extend(reversed(node.children))
        return out
