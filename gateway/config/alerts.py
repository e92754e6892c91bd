"""Alerts: the config file's `alerts:` section (gateway/alerts sends them).

```
alerts:
  webhooks:
    - {url: env:SLACK_WEBHOOK_URL, format: slack}          # Slack's incoming-webhook JSON
    - {url: https://ops.example.com/hook, events: [budget]} # plain JSON, budget alerts only
  budget_thresholds: [0.8, 1.0]   # of a key's or team's max_budget, once each per period
  error_rate: {threshold: 0.2, window_seconds: 300, min_requests: 20}
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct

Event = Literal["budget", "breaker", "error_rate"]
EVENTS: tuple[Event, ...] = ("budget", "breaker", "error_rate")


class _Cfg(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class WebhookCfg(_Cfg, frozen=True, kw_only=True):
    url: Annotated[str, Meta(pattern=r"^https?://")]
    format: Literal["slack", "json"] = "json"
    events: tuple[Event, ...] = EVENTS
    headers: dict[str, str] = {}  # e.g. an authorization header (env: values)


class ErrorRateCfg(_Cfg, frozen=True, kw_only=True):
    # The share of answers with a 5xx status, over the window, that raises an alert.
    threshold: Annotated[float, Meta(gt=0, le=1)] = 0.25
    window_seconds: Annotated[int, Meta(ge=10, le=86400)] = 300
    min_requests: Annotated[int, Meta(ge=1)] = 20


class AlertsCfg(_Cfg, frozen=True, kw_only=True):
    webhooks: list[WebhookCfg] = []
    budget_thresholds: tuple[Annotated[float, Meta(gt=0, le=10)], ...] = (0.8, 1.0)
    error_rate: ErrorRateCfg | None = ErrorRateCfg()
    # The same alert (kind, subject, level) is sent at most once in this many seconds.
    cooldown_seconds: Annotated[float, Meta(ge=0)] = 300.0
    max_per_minute: Annotated[int, Meta(ge=1)] = 20  # per webhook; past it, alerts wait
    check_interval: Annotated[float, Meta(gt=0, le=3600)] = 10.0  # budgets and error rate
    max_queue: Annotated[int, Meta(ge=1)] = 1000  # alerts waiting to be sent; past it, dropped
