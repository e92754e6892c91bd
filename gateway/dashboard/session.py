"""Signed session cookies: `v1.<role>.<expiry>.<nonce>.<mac>`, the MAC an HMAC-SHA256 under a
key derived from the master key. Nothing is stored server-side, so every worker and instance
with the same master key accepts the same sessions, and changing the master key ends them all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

COOKIE = "gateway_session"
ROLES = ("admin", "viewer")


class Sessions:
    def __init__(self, master_key: str, hours: float, *, secure: bool) -> None:
        self._mac_key = hashlib.sha256(
            b"gateway-dashboard-session\0" + master_key.encode()
        ).digest()
        self._seconds = hours * 3600
        self._secure = secure

    def _mac(self, payload: str) -> str:
        return hmac.new(self._mac_key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, role: str, now: float | None = None) -> str:
        """The Set-Cookie value for a new session of `role`."""
        expiry = int((now or time.time()) + self._seconds)
        payload = f"v1.{role}.{expiry}.{secrets.token_hex(8)}"
        value = f"{payload}.{self._mac(payload)}"
        return (
            f"{COOKIE}={value}; Path=/dashboard; Max-Age={int(self._seconds)}; HttpOnly;"
            f" SameSite=Strict{'; Secure' if self._secure else ''}"
        )

    def cleared(self) -> str:
        return (
            f"{COOKIE}=; Path=/dashboard; Max-Age=0; HttpOnly; SameSite=Strict"
            f"{'; Secure' if self._secure else ''}"
        )

    def role(self, headers: Mapping[str, str], now: float | None = None) -> str | None:
        """The role of the session the request's cookie carries, if valid and unexpired."""
        value = cookie(headers.get("cookie", ""), COOKIE)
        if not value or len(value) > 200:
            return None
        payload, _, mac = value.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        parts = payload.split(".")
        if len(parts) != 4 or parts[0] != "v1" or parts[1] not in ROLES:
            return None
        try:
            expiry = int(parts[2])
        except ValueError:
            return None
        return parts[1] if expiry > (now or time.time()) else None


def cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value.strip()
    return None
