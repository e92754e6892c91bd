"""Which pattern matches are real: checksums, boundaries, context words, and placeholders.

Each validator sees the whole text and one candidate span, and answers the span to report
(a PEM block grows to its END line) or None. Context is read at most CONTEXT characters before
and LOOKAHEAD after a span, which is what lets the stream masker (stream.py) decide exactly what
the whole text would.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Callable

from gateway._native.scan import luhn, mod97

CONTEXT = 48  # characters before a span a validator may read
LOOKAHEAD = 64  # characters after a span a validator may read
PEM_CAP = 16384  # a PEM block without its END line is masked to here

Span = tuple[int, int] | None
Validator = Callable[[str, int, int, str], Span]

_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_DIGITS = frozenset("0123456789")
_WORD_DASH = _WORD | {"-"}
_WORD_DASH_DOT = _WORD | {"-", "."}
_WORD_B64 = _WORD | {"/", "+", "="}
_B64_RUN = _WORD | {"/", "+"}
_WORD_COLON = _WORD | {":"}
_TEMPLATE_WORDS = ("your", "here", "example", "placeholder", "dummy", "redacted",
                   "replace", "insert", "fake", "sample")  # fmt: skip


def _before(text: str, start: int) -> str:
    return text[max(0, start - CONTEXT) : start].lower()


def _near(text: str, start: int, end: int) -> str:
    return text[max(0, start - CONTEXT) : end + LOOKAHEAD].lower()


def _edge_ok(text: str, start: int, end: int, chars: frozenset[str] = _WORD) -> bool:
    """The span is not part of a longer run of `chars` on either side."""
    return (start == 0 or text[start - 1] not in chars) and (
        end >= len(text) or text[end] not in chars
    )


def _number_edge_ok(text: str, start: int, end: int) -> bool:
    """A number stands alone: no letter or digit next to it, and no `.`, `-` or `/` that
    continues it into more digits (a version, a date, a longer id)."""
    if start > 0:
        before = text[start - 1]
        if before in _WORD or before in ".-/" and start > 1 and text[start - 2] in _DIGITS:
            return False
    if end < len(text):
        after = text[end]
        if after in _WORD or after in ".-/" and end + 1 < len(text) and text[end + 1] in _DIGITS:
            return False
    return True


def _has_word(context: str, words: tuple[str, ...]) -> bool:
    return any(w in context for w in words)


# --- PII -------------------------------------------------------------------------------------

_PLACEHOLDER_TLDS = ("test", "example", "invalid", "localhost", "local")
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "localhost")


def email(text: str, start: int, end: int, form: str) -> Span:
    at = text.index("@", start, end)
    if at - start > 64:
        start = at - 64  # RFC 5321's longest local part (the twin's pattern stops there too)
    value = text[start:end]
    local, _, domain = value.partition("@")
    if not local or local[0] == "." or local[-1] == "." or ".." in local:
        return None
    if end < len(text) and text[end] == ":" and local.lower() == "git":
        return None  # git@host:org/repo, an scp-style address
    if end < len(text) and text[end] in "-_":
        return None
    d = domain.lower()
    if d in _PLACEHOLDER_DOMAINS or any(d.endswith("." + p) for p in _PLACEHOLDER_DOMAINS):
        return None
    if d.rsplit(".", 1)[-1] in _PLACEHOLDER_TLDS:
        return None
    return start, end


_PHONE_WORDS = ("phone", "call", "tel", "mobile", "cell", "fax", "text me", "reach me", "whatsapp",
                "sms", "contact", "dial", "ring", "landline", "hotline")  # fmt: skip
_NOT_PHONE_WORDS = ("order", "invoice", "ticket", "tracking", "ref", "serial", "isbn", "id:", "id ",
                    "#", "sku", "po ", "routing", "aba", "account", "iban")  # fmt: skip


def phone(text: str, start: int, end: int, form: str) -> Span:
    if text[end - 1] == ")" and "(" not in text[start:end]:
        end -= 1  # "(call +49 30 1234567)": the parenthesis is the sentence's
    if not _number_edge_ok(text, start, end) or start > 0 and text[start - 1] == "+":
        return None
    value = text[start:end]
    digits = "".join(ch for ch in value if ch in _DIGITS)
    before = _before(text, start)
    near_word = before[-24:]
    if _has_word(near_word, _NOT_PHONE_WORDS):
        return None
    if form in ("intl", "e164"):
        return (start, end) if 8 <= len(digits) <= 15 and not digits.startswith("0") else None
    if form == "national":
        if not 9 <= len(digits) <= 12 or not _has_word(before, _PHONE_WORDS):
            return None
        return start, end
    national = digits[1:] if len(digits) == 11 else digits
    if len(national) != 10 or (len(digits) == 11 and digits[0] != "1"):
        return None
    if national[3:6] == "555" and 100 <= int(national[6:]) <= 199:
        return None  # NANP's fictional numbers
    if national[0] in "01" or national[3] in "01" or national[1:3] == "11":
        return None
    formatted = len(digits) != len(value)
    if not formatted and not _has_word(before, _PHONE_WORDS):
        return None  # a bare ten-digit run is an id as often as a phone number
    return start, end


_SSN_WORDS = ("ssn", "social security", "social-security", "ss#", "soc sec", "taxpayer", "tin:")
_SSN_PLACEHOLDERS = frozenset(("123456789", "078051120", "219099999", "987654320"))


def us_ssn(text: str, start: int, end: int, form: str) -> Span:
    if not _number_edge_ok(text, start, end):
        return None
    digits = text[start:end].replace("-", "").replace(" ", "")
    area, group, serial = int(digits[:3]), int(digits[3:5]), int(digits[5:])
    if area == 0 or area == 666 or area >= 900 or group == 0 or serial == 0:
        return None
    if digits in _SSN_PLACEHOLDERS or len(set(digits)) == 1:
        return None
    before = _before(text, start)
    if form != "dashed" and not _has_word(before, _SSN_WORDS):
        return None
    if form == "dashed" and _has_word(before[-24:], _NOT_PHONE_WORDS):
        return None
    return start, end


_TEST_CARDS = frozenset((
    "4111111111111111", "4242424242424242", "4012888888881881", "4222222222222", "4000056655665556",
    "5555555555554444", "5105105105105100", "5200828282828210", "2223003122003222",
    "378282246310005", "371449635398431", "378734493671000", "6011111111111117",
    "6011000990139424", "6011000400000000", "3530111333300000", "3566002020360505",
    "30569309025904", "38520000023237", "36227206271667", "6200000000000005", "4000000000000002",
    "4000000000009995", "4000000000000077", "5454545454545454",
))  # fmt: skip


def _card_brand(d: str) -> bool:
    n = len(d)
    two, three, four = int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if four == 6011 or two == 65 or 644 <= three <= 649:
        return 16 <= n <= 19
    if 3528 <= four <= 3589:
        return 16 <= n <= 19
    if 300 <= three <= 305 or two in (36, 38, 39):
        return 14 <= n <= 19
    if two == 62:
        return 16 <= n <= 19
    return False


def credit_card(text: str, start: int, end: int, form: str) -> Span:
    if not _number_edge_ok(text, start, end):
        return None
    digits = "".join(ch for ch in text[start:end] if ch in _DIGITS)
    if form == "grouped":
        seps = {ch for ch in text[start:end] if ch not in _DIGITS}
        if len(seps) > 1:
            return None
    if digits in _TEST_CARDS or len(set(digits)) <= 2:
        return None
    if not _card_brand(digits) or not luhn(digits):
        return None
    return start, end


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip
_IBAN_EXAMPLES = frozenset((
    "GB82WEST12345698765432", "DE89370400440532013000", "GB29NWBK60161331926819",
    "FR1420041010050500013M02606", "NL91ABNA0417164300",
))  # fmt: skip


def iban(text: str, start: int, end: int, form: str) -> Span:
    if start > 0 and text[start - 1] in _WORD:
        return None
    length = _IBAN_LENGTHS.get(text[start : start + 2])
    if length is None:
        return None
    # The pattern is greedy: walk the span until `length` letters and digits are in.
    count, stop = 0, start
    while stop < end and count < length:
        if text[stop] != " ":
            count += 1
        stop += 1
    if count != length or (stop < len(text) and text[stop] in _WORD):
        return None
    compact = text[start:stop].replace(" ", "")
    if compact in _IBAN_EXAMPLES or not mod97(compact):
        return None
    return start, stop


_VERSION_CUES = ("version", "ver ", "ver.", "release", "build", "firmware", "==", ">=", "<=", "~=",
                 "v", "/", "chrome", "python", "node", "oid", "mib")  # fmt: skip
_DOC_NETS = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
)


def _address_is_pii(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return False
    if any(address in net for net in _DOC_NETS if net.version == address.version):
        return False
    # Public, private (RFC 1918), link-local and ULA addresses identify a host.
    return not (address.version == 4 and address.is_reserved)


def ipv4(text: str, start: int, end: int, form: str) -> Span:
    if not _number_edge_ok(text, start, end):
        return None  # an OID or a longer dotted run
    value = text[start:end]
    if any(len(part) > 1 and part[0] == "0" for part in value.split(".")):
        return None
    try:
        address = ipaddress.IPv4Address(value)
    except ValueError:
        return None
    tail = _before(text, start)[-10:].rstrip()
    if tail.endswith(_VERSION_CUES):
        return None
    return (start, end) if _address_is_pii(address) else None


_HEX = frozenset("0123456789abcdefABCDEF")


def ipv6(text: str, start: int, end: int, form: str) -> Span:
    while end > start and text[end - 1] == ":" and text[end - 2 : end] != "::":
        end -= 1
    if not _edge_ok(text, start, end, _WORD_COLON):
        return None
    value = text[start:end]
    groups = [g for g in value.split(":") if g]
    if len(groups) < 2 or not any(ch in _DIGITS for ch in value):
        return None
    if "::" not in value and len(groups) != 8:
        return None
    try:
        address = ipaddress.IPv6Address(value)
    except ValueError:
        return None
    return (start, end) if _address_is_pii(address) else None


def us_address(text: str, start: int, end: int, form: str) -> Span:
    if start > 0 and text[start - 1] in _WORD:
        return None
    if text[start:end].split(" ", 1)[0] == "0":
        return None
    if text[end - 1] == ".":
        end -= 1  # "Ave." at the end of a sentence: the dot is the sentence's
    return start, end


# --- secrets ---------------------------------------------------------------------------------


def _templated(body: str) -> bool:
    """Visibly fake: a template word, too few distinct characters, or no digit or no letter."""
    low = body.lower()
    if any(w in low for w in _TEMPLATE_WORDS) or "xxxx" in body or "XXXX" in body:
        return True
    if len(set(body)) < 10:
        return True
    return not any(c.isdigit() for c in body) or not any(c.isalpha() for c in body)


def aws_access_key(text: str, start: int, end: int, form: str) -> Span:
    if not _edge_ok(text, start, end):
        return None
    if "EXAMPLE" in text[start:end] or _templated(text[start + 4 : end]):
        return None
    return start, end


_AWS_WORDS = ("aws", "secret", "akia", "asia")


def aws_secret_key(text: str, start: int, end: int, form: str) -> Span:
    if start > 0 and text[start - 1] in _B64_RUN or end < len(text) and text[end] in _WORD_B64:
        return None  # part of a longer base64 run (or padded: a blob, not a key)
    value = text[start:end]
    if all(ch in _HEX for ch in value) or "EXAMPLE" in value or _templated(value):
        return None
    if not (any(c.isupper() for c in value) and any(c.islower() for c in value)):
        return None
    if not _has_word(_near(text, start, end), _AWS_WORDS):
        return None  # forty base64 characters alone are as often a hash or a blob
    return start, end


def token(text: str, start: int, end: int, form: str) -> Span:
    """GitHub, OpenAI and Anthropic keys: a whole token, and not a template."""
    if not _edge_ok(text, start, end, _WORD_DASH):
        return None
    value = text[start:end]
    body = value.split("_", 1)[-1] if value.startswith("gh") else value[3:]
    return None if _templated(body) else (start, end)


def openai_key(text: str, start: int, end: int, form: str) -> Span:
    if text.startswith("sk-ant-", start):
        return None  # Anthropic's, reported as anthropic_key
    return token(text, start, end, form)


def anthropic_key(text: str, start: int, end: int, form: str) -> Span:
    if not _edge_ok(text, start, end, _WORD_DASH):
        return None
    return None if _templated(text[start + 7 : end]) else (start, end)


_JWT_EXAMPLE = "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"  # jwt.io's sample signature


def jwt(text: str, start: int, end: int, form: str) -> Span:
    if not _edge_ok(text, start, end, _WORD_DASH_DOT):
        return None
    head, _, rest = text[start:end].partition(".")
    if rest.endswith(_JWT_EXAMPLE):
        return None
    try:
        decoded = base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))
    except (binascii.Error, ValueError):
        return None
    return (start, end) if b'"alg"' in decoded or b'"typ"' in decoded else None


_B64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


def private_key(text: str, start: int, end: int, form: str) -> Span:
    """The whole block: base64 lines up to the END line; a paste cut short (no END) ends at
    the first character that is not base64 or a line break. Read only forward and only over
    the block itself, so a stream decides it as the whole text does."""
    stop = end
    limit = min(len(text), end + PEM_CAP)
    body = 0
    while stop < limit and (text[stop] in _B64 or text[stop] in "\r\n\\"):
        body += text[stop] in _B64
        stop += 1
    if text.startswith("-----END ", stop):
        close = text.find("-----", stop + 9, stop + 80)
        stop = close + 5 if close >= 0 else stop + 9
    else:
        while stop > end and text[stop - 1] in "\r\n\\":
            stop -= 1
    if body < 16:
        return None  # "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----"
    return start, stop


VALIDATORS: dict[str, Validator] = {
    "email": email,
    "phone": phone,
    "us_ssn": us_ssn,
    "credit_card": credit_card,
    "iban": iban,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "us_address": us_address,
    "aws_access_key": aws_access_key,
    "aws_secret_key": aws_secret_key,
    "github_token": token,
    "openai_key": openai_key,
    "anthropic_key": anthropic_key,
    "jwt": jwt,
    "private_key": private_key,
}
