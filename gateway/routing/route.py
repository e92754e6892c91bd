"""A model name clients send, with its targets and the weighted choice between them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway._native.wrr import SmoothWeighted
from gateway.providers.base import ProviderAdapter


@dataclass(frozen=True, slots=True)
class Target:
    provider: ProviderAdapter
    model: str


class Route:
    __slots__ = ("_picker", "configured", "name", "targets")

    def __init__(
        self,
        name: str,
        targets: Sequence[Target],
        weights: Sequence[float] | None = None,
        *,
        configured: bool = True,
    ) -> None:
        self.name = name
        self.targets = tuple(targets)
        # Whether the name is a configured alias (bounded) or a client-chosen direct name.
        self.configured = configured
        self._picker = SmoothWeighted(weights) if len(self.targets) > 1 and weights else None

    def pick(self, unavailable: int = 0) -> Target | None:
        if self._picker is None:
            return None if unavailable & 1 else self.targets[0]
        index = self._picker.pick(unavailable)
        return self.targets[index] if index >= 0 else None
