"""Alerts to webhooks (Slack-compatible or plain JSON): budgets crossing thresholds, breakers
opening, error-rate spikes; de-duplicated, rate-limited, retried, never on the request path."""

from gateway.alerts.notifier import Alert, Notifier
from gateway.alerts.watch import Budgets, ErrorWindow, Watcher
from gateway.config.alerts import AlertsCfg
from gateway.providers.transport import Transport


def build_alerts(cfg: AlertsCfg, transport: Transport, budgets: Budgets | None) -> Watcher:
    return Watcher(cfg, Notifier(cfg, transport), budgets)


__all__ = ["Alert", "ErrorWindow", "Notifier", "Watcher", "build_alerts"]
