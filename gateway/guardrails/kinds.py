"""What the scanner looks for: each kind's patterns, as sources both engines accept.

A kind may have several patterns ("forms"): the validators (validate.py) know which form
matched, since a bare nine-digit number needs a context word and a dashed one does not. Every
pattern is ASCII, without look-around, `.` or negated classes; literal-led patterns carry no
leading `\\b` (the boundary is checked in code, which keeps Python's `re` on its fast literal
search in the pure-Python build).
"""

from __future__ import annotations

from typing import NamedTuple

from gateway._native.scan import Pattern

PII = (
    "email",
    "phone",
    "us_ssn",
    "credit_card",
    "iban",
    "ipv4",
    "ipv6",
    "us_address",
)
SECRETS = (
    "aws_access_key",
    "aws_secret_key",
    "github_token",
    "openai_key",
    "anthropic_key",
    "jwt",
    "private_key",
)
KINDS = PII + SECRETS
D = "\\d"  # trigger: a digit somewhere
D3 = "\\d\\d\\d"  # trigger: three digits in a row somewhere


class Form(NamedTuple):
    kind: str
    form: str
    pattern: Pattern


_AWS_PREFIXES = (
    "AKIA",
    "ASIA",
    "ABIA",
    "ACCA",
    "AGPA",
    "AIDA",
    "AROA",
    "AIPA",
    "ANPA",
    "ANVA",
    "APKA",
)
_STREET = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|"
    "Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl"
)

FORMS: tuple[Form, ...] = (
    Form("email", "email", Pattern(
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}", ("@",),
        bounded=r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}")),
    # Digit groups always split by a separator, so the greedy and the longest match agree.
    Form("phone", "intl", Pattern(r"\+\d{1,3}(?:[ .-]\(?\d{1,8}\)?){1,5}", ("+",))),
    Form("phone", "e164", Pattern(r"\+\d{8,15}", ("+",))),
    Form("phone", "us", Pattern(
        r"(?:\+?1[ .-]?)?\(?[2-9]\d{2}\)?[ .-]?[2-9]\d{2}[ .-]?\d{4}", (D3,))),
    Form("phone", "national", Pattern(r"0\d{1,4}(?:[ .-]\d{2,8}){1,4}", (D,))),
    Form("phone", "national", Pattern(r"0\d{8,11}", (D3,))),
    Form("us_ssn", "dashed", Pattern(r"\d{3}-\d{2}-\d{4}", ("-",))),
    Form("us_ssn", "spaced", Pattern(r"\d{3} \d{2} \d{4}", (D3,))),
    Form("us_ssn", "bare", Pattern(r"\d{9}", (D3,))),
    Form("credit_card", "grouped", Pattern(r"\d{4}[ -]\d{4}[ -]\d{4}[ -]\d{1,4}(?:[ -]\d{3})?", (D3,))),
    Form("credit_card", "amex", Pattern(r"\d{4}[ -]\d{6}[ -]\d{4,5}", (D3,))),
    Form("credit_card", "plain", Pattern(r"\d{13,19}", (D3,))),
    Form("iban", "iban", Pattern(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?", (D3,))),
    Form("ipv4", "ipv4", Pattern(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", (".",))),
    Form("ipv6", "full", Pattern(r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}", ("::", ":"))),
    Form("ipv6", "leading", Pattern(r"::[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6}", ("::",))),
    Form("us_address", "street", Pattern(
        r"\d{1,6} (?:[A-Z][a-z]+ |[A-Z]\. |\d{1,3}(?:st|nd|rd|th) ){1,4}"
        rf"(?:{_STREET})\b\.?"
        r"(?:,? (?:Apt|Suite|Ste|Unit|Fl|Floor)\.? ?#?[A-Za-z0-9-]{1,6})?"
        r"(?:, [A-Z][a-z]+(?: [A-Z][a-z]+){0,2},? [A-Z]{2}(?: \d{5}(?:-\d{4})?)?)?",
        (D,))),
    Form("aws_access_key", "id", Pattern(
        "(?:" + "|".join(_AWS_PREFIXES) + ")[A-Z0-9]{16}", _AWS_PREFIXES)),
    Form("aws_secret_key", "secret", Pattern(
        r"[A-Za-z0-9/+]{40}", ("aws", "secret", "akia", "asia"), caseless=True)),
    Form("github_token", "classic", Pattern(r"gh[pousr]_[A-Za-z0-9]{36,}", ("gh",))),
    Form("github_token", "fine", Pattern(r"github_pat_[A-Za-z0-9_]{40,}", ("github_pat_",))),
    Form("openai_key", "key", Pattern(r"sk-[A-Za-z0-9_-]{20,}", ("sk-",))),
    Form("anthropic_key", "key", Pattern(r"sk-ant-[A-Za-z0-9_-]{20,}", ("sk-ant-",))),
    Form("jwt", "jwt", Pattern(
        r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}", ("eyJ",))),
    Form("private_key", "pem", Pattern(
        r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----", ("-----BEGIN",))),
)  # fmt: skip
