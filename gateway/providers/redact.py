"""Keeps provider credentials out of everything a client or a log may see of an upstream answer.

Providers echo keys back in error messages, and an error's other fields and headers are the
provider's strings too. So an upstream error is scrubbed whole before it leaves the upstream
stage (`scrub`): every string field is redacted with the secrets the request was sent with, and
only the upstream headers the gateway passes on are kept, each checked to be the number, date
or flag it claims to be (`passed_headers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import cache

from gateway.errors import UpstreamError
from gateway.guardrails.detector import Detector
from gateway.guardrails.kinds import SECRETS

_KEY_LIKE = re.compile(r"\b(?:(?:sk|gsk|xai|pk)-[A-Za-z0-9*_\-]{6,}|AIza[0-9A-Za-z_\-]{30,})")
# Header names whose values carry credentials, on the way up.
_CREDENTIAL_NAMES = ("auth", "key", "token", "secret", "signature", "cookie")
_MIN_SECRET = 6  # shorter values would redact ordinary words
_SCHEMES = ("Bearer ", "bearer ", "Basic ", "Token ")

_INTEGER = re.compile(r"[0-9]{1,19}")
_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
_HTTP_DATE = re.compile(
    r"[A-Z][a-z]{2}, [0-9]{2} [A-Z][a-z]{2} [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
# OpenAI's "6m0s" / "20ms" / "1.5s" durations, or Anthropic's RFC 3339 reset times.
_RESET = re.compile(
    r"(?:[0-9]{1,9}(?:\.[0-9]{1,9})?(?:h|m|s|ms))+"
    r"|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)


def _valid(name: str, value: str) -> bool:
    if name in ("retry-after",):
        return bool(_NUMBER.fullmatch(value) or _HTTP_DATE.fullmatch(value))
    if name == "retry-after-ms":
        return bool(_NUMBER.fullmatch(value))
    if name == "x-should-retry":
        return value in ("true", "false")
    if name.startswith("x-ratelimit-reset-"):
        return bool(_NUMBER.fullmatch(value) or _RESET.fullmatch(value))
    if name.startswith("x-ratelimit-"):
        return bool(_INTEGER.fullmatch(value))
    return False


def passed_headers(headers: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """The upstream headers worth passing to the client, `names` mapping theirs to ours; a value
    that is not what its header holds (a number, a date, a flag) is dropped."""
    passed = {}
    for theirs, ours in names.items():
        value = headers.get(theirs)
        if value is not None:
            value = value.strip()
            if _valid(ours, value):
                passed[ours] = value
    return passed


def request_secrets(headers: Mapping[str, str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The credentials a request carries: values of its credential headers (with and without
    their scheme), plus secrets the adapter holds that never travel as they are (a SigV4
    secret key)."""
    found: list[str] = [s for s in extra if s and len(s) >= _MIN_SECRET]
    for name, value in headers.items():
        lowered = name.lower()
        if not any(word in lowered for word in _CREDENTIAL_NAMES) or len(value) < _MIN_SECRET:
            continue
        found.append(value)
        for scheme in _SCHEMES:
            if value.startswith(scheme) and len(value) - len(scheme) >= _MIN_SECRET:
                found.append(value[len(scheme) :])
        if value.startswith("AWS4-HMAC-SHA256 "):  # the access key id and the signature
            found.extend(re.findall(r"(?:Credential=|Signature=)([^/,\s]{6,})", value))
    # Longest first, so a key inside a longer value is replaced with it, not piece by piece.
    return tuple(sorted(set(found), key=len, reverse=True))


def redact(text: str, secrets: str | Iterable[str] | None) -> str:
    """The request's own secrets, then anything shaped like a key: the guardrails' secret
    kinds (AWS, GitHub, OpenAI, Anthropic, JWTs, private keys) and other vendors' prefixes."""
    if isinstance(secrets, str):
        secrets = (secrets,)
    for secret in secrets or ():
        if secret and secret in text:
            text = text.replace(secret, "***")
    found = _secret_detector().find(text, cache=False)
    if found:
        parts, at = [], 0
        for f in found:
            parts.append(text[at : f.start])
            parts.append("***")
            at = f.end
        parts.append(text[at:])
        text = "".join(parts)
    return _KEY_LIKE.sub("***", text)


@cache
def _secret_detector() -> Detector:
    return Detector(SECRETS)


def scrub(err: UpstreamError, secrets: tuple[str, ...]) -> UpstreamError:
    """The error with no secret left in any field or header it carries to the client."""
    err.message = redact(err.message, secrets)
    err.args = (err.message,)
    err.error_type = redact(err.error_type, secrets)
    if err.param is not None:
        err.param = redact(err.param, secrets)
    if err.code is not None:
        err.code = redact(str(err.code), secrets)
    err.headers = passed_headers(err.headers, {name: name for name in err.headers})
    return err
