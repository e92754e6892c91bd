"""When to try the same target again, and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from time import time

from gateway.config.routing import RetryCfg
from gateway.errors import GatewayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable


def retry_after(headers: Mapping[str, str]) -> float | None:
    """The provider's own wait, from retry-after-ms, retry-after seconds or an HTTP date."""
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None


def retryable(err: GatewayError, statuses: tuple[int, ...] | frozenset[int]) -> bool:
    """Connection failures and deadlines always are; provider errors by their status."""
    if isinstance(err, (UpstreamUnavailable, UpstreamTimeout)):
        return True
    return isinstance(err, UpstreamError) and err.status in statuses


def delay(cfg: RetryCfg, retries_so_far: int, err: GatewayError) -> float | None:
    """Seconds to wait before the next try, or None when this target should not be retried:
    exponential backoff with full jitter, but never less than the provider asked for, and
    not at all when it asked for longer than max_retry_after_ms."""
    ceiling = min(cfg.backoff.max_ms, cfg.backoff.initial_ms * 2**retries_so_far) / 1000
    wait = random.uniform(0, ceiling)
    asked = retry_after(err.headers)
    if asked is not None:
        if asked * 1000 > cfg.max_retry_after_ms:
            return None
        wait = max(wait, asked)
    return wait
