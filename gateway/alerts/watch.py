"""What raises alerts: a breaker opening (and closing again), a key's or team's budget use
crossing a threshold (once per threshold and budget period), and the share of 5xx answers over
a sliding window passing the configured rate (and falling back under it). Budgets and the
error rate are checked by one task every `check_interval`; the request path only counts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from gateway.alerts.notifier import Alert, Notifier
from gateway.config.alerts import AlertsCfg
from gateway.routing.health import State

Budgets = Callable[[], Awaitable[list[dict[str, Any]]]]


class ErrorWindow:
    """Answers and 5xx answers so far; the watcher takes differences over its window."""

    __slots__ = ("errors", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0

    def observe(self, status: int) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1


class Watcher:
    def __init__(self, cfg: AlertsCfg, notifier: Notifier, budgets: Budgets | None) -> None:
        self._cfg = cfg
        self.notifier = notifier
        self._budgets = budgets
        self.window = ErrorWindow() if cfg.error_rate is not None and notifier.active else None
        self._samples: deque[tuple[float, int, int]] = deque()
        self._high = False
        self._open: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def breaker(self, target: str, state: State) -> None:
        """A breaker's transition (routing/health.py's listener): open, then closed again."""
        if state is State.OPEN and target not in self._open:
            self._open.add(target)
            level, news = "open", "opened for {}: its requests go elsewhere"
        elif state is State.CLOSED and target in self._open:
            self._open.discard(target)
            level, news = "closed", "closed for {}: it serves again"
        else:
            return
        self.notifier.alert(Alert(
            kind="breaker", subject=target, level=level,
            message=f"circuit breaker {news.format(target)}", details={"target": target},
        ))  # fmt: skip

    async def start(self) -> None:
        await self.notifier.start()
        if self.window is not None:  # the window's first edge: nothing counted yet
            self._samples.append((time.monotonic(), self.window.requests, self.window.errors))
        if self.notifier.active:
            self._task = asyncio.create_task(self._check_forever(), name="alerts-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.notifier.stop()

    async def _check_forever(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.check_interval)
            self.check_errors(time.monotonic())
            with contextlib.suppress(Exception):  # a store or Redis outage: next time
                await self.check_budgets()

    async def check_budgets(self) -> None:
        if self._budgets is None or not self._cfg.budget_thresholds:
            return
        for item in await self._budgets():
            budget = item["budget"]
            limit = float(budget["max_budget"])
            spent = float(budget["spent"])
            if limit <= 0:
                continue
            for threshold in sorted(self._cfg.budget_thresholds, reverse=True):
                if spent >= threshold * limit:
                    level = f"{threshold:.0%}"
                    scope = item["scope"]
                    self.notifier.alert(
                        Alert(
                            kind="budget", subject=scope, level=level,
                            message=(
                                f"budget {level} reached: {item['kind']} {item['name']} has"
                                f" spent ${spent:.4f} of ${limit:.4f} ({spent / limit:.0%})"
                            ),
                            details={"scope": scope, "name": item["name"], "kind": item["kind"],
                                     "threshold": threshold, **budget},
                        ),
                        once=("budget", scope, level, str(budget.get("period_start"))),
                    )  # fmt: skip
                    break  # the highest threshold crossed; lower ones are implied

    def check_errors(self, now: float) -> None:
        rule, window = self._cfg.error_rate, self.window
        if rule is None or window is None:
            return
        samples = self._samples
        samples.append((now, window.requests, window.errors))
        while len(samples) > 1 and now - samples[1][0] >= rule.window_seconds:
            samples.popleft()
        _, first_requests, first_errors = samples[0]
        requests = window.requests - first_requests
        errors = window.errors - first_errors
        if requests < rule.min_requests:
            return
        rate = errors / requests
        details = {"rate": round(rate, 4), "requests": requests, "errors": errors,
                   "window_seconds": rule.window_seconds, "threshold": rule.threshold}  # fmt: skip
        if rate >= rule.threshold and not self._high:
            self._high = True
            self.notifier.alert(Alert(
                kind="error_rate", subject="gateway", level="high", details=details,
                message=f"{rate:.0%} of {requests} answers failed with a 5xx status"
                        f" in the last {rule.window_seconds}s",
            ))  # fmt: skip
        elif rate < rule.threshold / 2 and self._high:
            self._high = False
            self.notifier.alert(Alert(
                kind="error_rate", subject="gateway", level="normal", details=details,
                message=f"the error rate is back to {rate:.0%} ({requests} answers)",
            ))  # fmt: skip
