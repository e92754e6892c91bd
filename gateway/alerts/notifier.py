"""Sends alerts to webhooks, never on the request path: `alert()` only queues (bounded; past
it, alerts are dropped and counted), and one task delivers them, de-duplicated (the same kind,
subject and level once per cooldown), rate-limited per webhook, and retried with exponential
backoff. A webhook URL is a secret (Slack's are): only its host is ever logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import msgspec

from gateway import __version__
from gateway.config.alerts import AlertsCfg, WebhookCfg
from gateway.observability import metrics
from gateway.providers.base import Timeouts, UpstreamRequest
from gateway.providers.transport import Transport

LOG = logging.getLogger("gateway.alerts")
_TIMEOUTS = Timeouts(connect=5.0, first_byte=10.0, idle=None, total=15.0)
ATTEMPTS = 4  # tries per alert and webhook
BACKOFF = 1.0  # seconds before the first retry; doubled each time, with jitter
_JSON = msgspec.json.Encoder(decimal_format="number")


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # budget | breaker | error_rate
    subject: str  # a key's or team's scope, a target, or "gateway"
    level: str  # "80%", "100%"; "open", "closed"; "high", "normal"
    message: str
    details: dict[str, Any] = {}
    ts: float = 0.0


def payload(alert: Alert, webhook: WebhookCfg) -> bytes:
    if webhook.format == "slack":
        icon = {"budget": ":moneybag:", "breaker": ":rotating_light:", "error_rate": ":warning:"}
        return _JSON.encode({"text": f"{icon.get(alert.kind, '')} *gateway* {alert.message}"})
    return _JSON.encode({
        "source": "gateway", "version": __version__, "kind": alert.kind,
        "subject": alert.subject, "level": alert.level, "message": alert.message,
        "details": alert.details, "ts": alert.ts,
    })  # fmt: skip


class Notifier:
    def __init__(self, cfg: AlertsCfg, transport: Transport) -> None:
        self._cfg = cfg
        self._transport = transport
        self._queue: deque[Alert] = deque()
        self._wake = asyncio.Event()
        self._sent_at: dict[tuple[str, str, str], float] = {}
        self._spent: dict[int, deque[float]] = {i: deque() for i in range(len(cfg.webhooks))}
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return bool(self._cfg.webhooks)

    def alert(self, alert: Alert, *, once: tuple[str, ...] | None = None) -> bool:
        """Queues an alert unless the same one went out within the cooldown (or, with
        `once`, ever under that key: a budget's threshold once per period). Never blocks."""
        if not self.active:
            return False
        key = (alert.kind, alert.subject, alert.level if once is None else "|".join(once))
        now = time.monotonic()
        last = self._sent_at.get(key)
        if last is not None and (once is not None or now - last < self._cfg.cooldown_seconds):
            metrics.ALERTS.labels(alert.kind, "deduplicated").inc()
            return False
        if len(self._queue) >= self._cfg.max_queue:
            metrics.ALERTS.labels(alert.kind, "dropped").inc()
            return False
        self._sent_at[key] = now
        if len(self._sent_at) > 10_000:  # bounded: the oldest half forgotten
            for old in sorted(self._sent_at, key=self._sent_at.__getitem__)[:5000]:
                del self._sent_at[old]
        self._queue.append(msgspec.structs.replace(alert, ts=alert.ts or time.time()))
        self._wake.set()
        return True

    async def start(self) -> None:
        if self.active:
            self._task = asyncio.create_task(self._deliver_forever(), name="alerts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _deliver_forever(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            alert = self._queue.popleft()
            sends = [
                self._send(i, webhook, alert)
                for i, webhook in enumerate(self._cfg.webhooks)
                if alert.kind in webhook.events
            ]
            await asyncio.gather(*sends)

    async def _send(self, index: int, webhook: WebhookCfg, alert: Alert) -> None:
        await self._admit(index)
        body = payload(alert, webhook)
        request = UpstreamRequest(
            method="POST",
            url=webhook.url,
            headers={**webhook.headers, "content-type": "application/json"},
            body=body,
        )
        host = urlsplit(webhook.url).hostname or "?"
        delay = BACKOFF
        for attempt in range(ATTEMPTS):
            try:
                status, _, _ = await self._transport.fetch(request, _TIMEOUTS, "alerts")
                if status < 300:
                    metrics.ALERTS.labels(alert.kind, "sent").inc()
                    return
                retry = status == 429 or status >= 500
                problem = f"HTTP {status}"
            except Exception as err:  # noqa: BLE001 - any failure to deliver is retried
                retry, problem = True, type(err).__name__
            if not retry or attempt == ATTEMPTS - 1:
                break
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay *= 2
        metrics.ALERTS.labels(alert.kind, "failed").inc()
        LOG.warning("alert %s/%s not delivered to %s: %s", alert.kind, alert.level, host, problem)

    async def _admit(self, index: int) -> None:
        """At most max_per_minute sends a minute to one webhook; the rest wait their turn."""
        spent = self._spent[index]
        while True:
            now = time.monotonic()
            while spent and now - spent[0] >= 60:
                spent.popleft()
            if len(spent) < self._cfg.max_per_minute:
                spent.append(now)
                return
            await asyncio.sleep(60 - (now - spent[0]))
