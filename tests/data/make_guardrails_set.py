"""Writes tests/data/guardrails.jsonl: a labelled set of chat-like messages for the guardrails'
detector. Positives carry the exact character spans of every PII item and secret; hard
negatives are the look-alikes a naive detector flags (order numbers, versions, git SHAs, OIDs,
documentation addresses, placeholder domains and keys, test cards, redacted keys).

All values are generated (seeded): checksums are computed, never copied from real data.
Run `python -m tests.data.make_guardrails_set` to regenerate; review the diff.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).with_name("guardrails.jsonl")
R = random.Random(20261203)
FIRST = [
    "jane",
    "john",
    "maria",
    "wei",
    "olu",
    "priya",
    "lukas",
    "sofia",
    "ahmed",
    "kenji",
    "ana",
    "tom",
]
LAST = [
    "doe",
    "smith",
    "garcia",
    "chen",
    "okafor",
    "patel",
    "muller",
    "rossi",
    "hassan",
    "sato",
    "silva",
]
DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "acme-corp.io",
    "mail.bigbank.com",
    "proton.me",
    "uni-heidelberg.de",
    "startup.ai",
    "corp.example-hosting.net",
    "icloud.com",
]
STREETS = [
    "Main",
    "Oak",
    "Maple",
    "Pennsylvania",
    "Elm",
    "Cedar",
    "Sunset",
    "Lake Shore",
    "Park",
    "Washington",
]
SUFFIXES = [
    "Street",
    "St",
    "Avenue",
    "Ave",
    "Road",
    "Rd",
    "Boulevard",
    "Blvd",
    "Lane",
    "Drive",
    "Court",
    "Way",
]
CITIES = [
    ("Springfield", "IL"),
    ("Austin", "TX"),
    ("Portland", "OR"),
    ("Boston", "MA"),
    ("Denver", "CO"),
    ("San Jose", "CA"),
    ("Miami", "FL"),
]


def rand(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + rand(string.digits, length - len(prefix) - 1)
    for d in string.digits:
        n = body + d
        total = 0
        for i, ch in enumerate(reversed(n)):
            v = int(ch)
            if i % 2:
                v *= 2
                if v > 9:
                    v -= 9
            total += v
        if total % 10 == 0:
            return n
    raise AssertionError


def iban(country: str, length: int) -> str:
    bban = rand(string.digits, length - 4)
    moved = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in moved))
    check = 98 - num % 97
    return f"{country}{check:02d}{bban}"


def email() -> str:
    local = (
        R.choice(FIRST)
        + R.choice([".", "_", "", "+news."])
        + R.choice(LAST)
        + R.choice(["", "42", "1990"])
    )
    return local + "@" + R.choice(DOMAINS)


def phone() -> tuple[str, str]:
    area = f"{R.randint(2, 9)}{R.randint(0, 9)}{R.randint(0, 9)}"
    if area[1:] == "11":
        area = area[0] + "23"
    exch = f"{R.randint(2, 9)}{R.randint(0, 9)}{R.randint(0, 9)}"
    line = f"{R.randint(0, 9999):04d}"
    if exch == "555":
        exch = "556"
    forms = [
        f"({area}) {exch}-{line}",
        f"{area}-{exch}-{line}",
        f"{area}.{exch}.{line}",
        f"+1 {area} {exch} {line}",
        f"+1-{area}-{exch}-{line}",
        f"1-{area}-{exch}-{line}",
        f"+44 20 {R.randint(7000, 8999)} {R.randint(1000, 9999)}",
        f"+49 30 {R.randint(1000000, 9999999)}",
        f"+33 1 {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)} {R.randint(10, 99)}",
        f"+91 {R.randint(70000, 99999)} {R.randint(10000, 99999)}",
        f"+1{area}{exch}{line}",
        f"+81 3-{R.randint(1000, 9999)}-{R.randint(1000, 9999)}",
    ]
    value = R.choice(forms)
    return value, R.choice(
        [
            "Call me at {} tomorrow.",
            "My number is {}.",
            "Reach the front desk on {}, ext 4.",
            "{} is my cell",
            "Text me ({}) when you land",
            "Customer phone: {}",
        ]
    )


def national_phone() -> tuple[str, str]:
    value = R.choice(
        [
            f"020 {R.randint(7000, 8999)} {R.randint(1000, 9999)}",
            f"030 {R.randint(1000000, 9999999)}",
            f"{R.randint(2, 9)}{R.randint(10, 99)}{R.randint(200, 999)}{R.randint(1000, 9999)}",
        ]
    )
    return value, R.choice(["phone: {}", "call me on {} after six", "my mobile is {}", "Tel. {}"])


def ssn() -> tuple[str, str]:
    area, group, serial = R.randint(1, 665), R.randint(1, 99), R.randint(1, 9999)
    form = R.choice(["dash", "dash", "space", "bare"])
    if form == "dash":
        return f"{area:03d}-{group:02d}-{serial:04d}", R.choice(
            [
                "My SSN is {}.",
                "SSN: {}",
                "{} is the applicant's social",
                "Employee record: {} (do not share)",
            ]
        )
    sep = " " if form == "space" else ""
    value = f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"
    return value, R.choice(["social security number {}", "SSN {} on file", "her ssn: {}"])


def card() -> tuple[str, str]:
    kind = R.choice(["visa", "mc", "amex", "disc", "mc2"])
    if kind == "visa":
        n = luhn_complete("4" + rand("0123456789", 1), 16)
    elif kind == "mc":
        n = luhn_complete(str(R.randint(51, 55)), 16)
    elif kind == "mc2":
        n = luhn_complete(str(R.randint(2221, 2720)), 16)
    elif kind == "disc":
        n = luhn_complete("6011", 16)
    else:
        n = luhn_complete(R.choice(["34", "37"]), 15)
    if len(n) == 15:
        value = R.choice([f"{n[:4]} {n[4:10]} {n[10:]}", n, f"{n[:4]}-{n[4:10]}-{n[10:]}"])
    else:
        value = R.choice(
            [
                " ".join(n[i : i + 4] for i in range(0, 16, 4)),
                n,
                "-".join(n[i : i + 4] for i in range(0, 16, 4)),
            ]
        )
    return value, R.choice(
        [
            "Charge my card {} please.",
            "card number: {}, exp 09/28",
            "Use {} for the order",
            "The customer's Visa is {}.",
        ]
    )


def iban_item() -> tuple[str, str]:
    country, length = R.choice(
        [("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24), ("IT", 27), ("CH", 21)]
    )
    if country in ("GB", "NL"):
        bank = rand(string.ascii_uppercase, 4)
        digits = rand(string.digits, length - 8)
        moved = bank + digits + country + "00"
        num = int("".join(str(int(c, 36)) for c in moved))
        value = f"{country}{98 - num % 97:02d}{bank}{digits}"
    else:
        value = iban(country, length)
    if R.random() < 0.5:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value, R.choice(
        ["Wire it to IBAN {} today.", "IBAN: {}", "my account {} (Sparkasse)", "Pay to {}, ref 77"]
    )


def ipv4() -> tuple[str, str]:
    value = R.choice(
        [
            f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
            f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}",
            f"172.{R.randint(16, 31)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
            f"{R.randint(11, 99)}.{R.randint(1, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
            f"{R.randint(100, 190)}.{R.randint(1, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}",
        ]
    )
    return value, R.choice(
        [
            "The server at {} is down.",
            "ssh admin@{}",
            "login from {} flagged",
            "whitelist {} in the firewall",
            "Connection refused (host {}, port 5432)",
        ]
    )


def ipv6() -> tuple[str, str]:
    hexes = lambda n: ":".join(f"{R.randint(1, 0xFFFF):x}" for _ in range(n))  # noqa: E731
    value = R.choice(
        [
            f"2a01:{hexes(7)}",
            f"fe80::{hexes(4)}",
            f"fd12:3456:789a:{hexes(1)}::{hexes(1)}",
            f"2607:f8b0:{hexes(2)}::{hexes(2)}",
            f"2001:{R.randint(0x4000, 0xFFF0):x}:{hexes(6)}",
        ]
    )
    return value, R.choice(
        ["client ip {} blocked", "route to {} failed", "Our ULA block includes {}.", "IPv6: {}"]
    )


def address() -> tuple[str, str]:
    city, state = R.choice(CITIES)
    value = f"{R.randint(1, 9999)} {R.choice(STREETS)} {R.choice(SUFFIXES)}"
    if R.random() < 0.3:
        value += f", Apt {R.randint(1, 40)}"
    if R.random() < 0.6:
        value += f", {city}, {state} {R.randint(10000, 99999)}"
    return value, R.choice(
        ["Ship it to {} please.", "I live at {}.", "Office: {}", "Deliver to {} before noon"]
    )


def aws_key() -> tuple[str, str]:
    return R.choice(["AKIA", "ASIA"]) + rand(string.ascii_uppercase + string.digits, 16), R.choice(
        [
            "aws_access_key_id = {}",
            "export AWS_ACCESS_KEY_ID={}",
            "the key id is {} for prod",
            "AccessKeyId: {}",
        ]
    )


def aws_secret() -> tuple[str, str]:
    value = rand(string.ascii_letters + string.digits + "/+", 40)
    while not (
        any(c.isdigit() for c in value)
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    ):
        value = rand(string.ascii_letters + string.digits + "/+", 40)
    return value, R.choice(
        [
            "aws_secret_access_key = {}",
            "export AWS_SECRET_ACCESS_KEY={}",
            "AWS secret: {}",
            'SecretAccessKey: "{}"',
        ]
    )


def github() -> tuple[str, str]:
    if R.random() < 0.7:
        value = R.choice(["ghp_", "gho_", "ghs_"]) + rand(string.ascii_letters + string.digits, 36)
    else:
        value = (
            "github_pat_"
            + rand(string.ascii_letters + string.digits, 22)
            + "_"
            + rand(string.ascii_letters + string.digits, 59)
        )
    return value, R.choice(
        ["GITHUB_TOKEN={}", "use token {} for the CI", "git clone https://{}@github.com/org/repo"]
    )


def openai_key() -> tuple[str, str]:
    alnum = string.ascii_letters + string.digits
    value = R.choice(
        [
            f"sk-proj-{rand(alnum + '_-', 120)}",
            f"sk-{rand(alnum, 48)}",
            f"sk-svcacct-{rand(alnum + '_-', 80)}",
        ]
    )
    return value, R.choice(
        ["OPENAI_API_KEY={}", 'client = OpenAI(api_key="{}")', "my key is {} - why 401?"]
    )


def anthropic_key() -> tuple[str, str]:
    value = "sk-ant-api03-" + rand(string.ascii_letters + string.digits + "_-", 93) + "AA"
    return value, R.choice(["ANTHROPIC_API_KEY={}", "x-api-key: {}", "here's the key: {}"])


def jwt() -> tuple[str, str]:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": R.choice(["HS256", "RS256"]), "typ": "JWT"}).encode())
    payload = b64(
        json.dumps(
            {"sub": rand(string.digits, 8), "exp": R.randint(1_700_000_000, 1_900_000_000)}
        ).encode()
    )
    value = f"{header}.{payload}.{b64(R.randbytes(32))}"
    return value, R.choice(
        ["Authorization: Bearer {}", "token={}", "the session JWT is {} and it expired"]
    )


def private_key() -> tuple[str, str]:
    label = R.choice(
        [
            "RSA PRIVATE KEY",
            "PRIVATE KEY",
            "EC PRIVATE KEY",
            "OPENSSH PRIVATE KEY",
            "ENCRYPTED PRIVATE KEY",
        ]
    )
    lines = [base64.b64encode(R.randbytes(48)).decode() for _ in range(R.randint(3, 8))]
    body = "\n".join(lines)
    if R.random() < 0.25:  # a truncated paste
        value = f"-----BEGIN {label}-----\n{body}"
        return value, "my key (it got cut off):\n{}"
    value = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"
    return value, R.choice(["deploy key:\n{}\nthanks", "{}", "Here it is:\n{}\n"])


POSITIVES: dict[str, Callable[[], tuple[str, str]]] = {
    "email": lambda: (
        email(),
        R.choice(
            [
                "Email me at {} when ready.",
                "contact: {}",
                "Send the invoice to {}.",
                "From: {}",
                "cc {} and the team",
            ]
        ),
    ),
    "phone": phone,
    "us_ssn": ssn,
    "credit_card": card,
    "iban": iban_item,
    "ipv4": ipv4,
    "ipv6": ipv6,
    "us_address": address,
    "aws_access_key": aws_key,
    "aws_secret_key": aws_secret,
    "github_token": github,
    "openai_key": openai_key,
    "anthropic_key": anthropic_key,
    "jwt": jwt,
    "private_key": private_key,
}

NEGATIVES = [
    "Order #1234567890 shipped; tracking 9400111899223857412345.",
    "Invoice INV-2024-000123 is overdue by 30 days.",
    "Please bump to v1.2.3.4 and pin pkg==2.10.3.1 in requirements.",
    "User agent: Mozilla/5.0 Chrome/120.0.6099.109 Safari/537.36",
    "The OID 1.3.6.1.4.1.311.21.8 identifies the template.",
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixes the secret rotation bug",
    "uses: actions/checkout@b4ffde65f46336ab88eb53be808477a3936bae11",
    "Clone git@github.com:acme/payments.git and run make.",
    "Write to someone@example.com or admin@test.example.org for the demo.",
    "Test with user@mail.test and root@localhost.",
    "AWS docs use AKIAIOSFODNN7EXAMPLE and wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY as the sample key pair.",
    "Call 555-0123 or (212) 555-0199 in the movie script.",
    "Docs example: 192.0.2.10, 198.51.100.7 and 203.0.113.254; bind to 0.0.0.0 or 127.0.0.1.",
    "IPv6 docs use 2001:db8::1 and loopback ::1.",
    "Stripe test card 4242 4242 4242 4242, or 4111 1111 1111 1111 with any CVC.",
    "My key is sk-...abcd (redacted) and the template says sk-xxxxxxxxxxxxxxxxxxxxxxxx.",
    "Set OPENAI_API_KEY=<YOUR_API_KEY> or sk-your-api-key-here-1234567890.",
    "Our ticket number is 4539578123456780, which is not a card.",
    "The epoch timestamp 1700000000000 is in milliseconds.",
    "Record id 536228451 was archived.",
    "The meeting is at 12:30:45 UTC; MAC 00:1a:2b:3c:4d:5e.",
    "Use std::vector<int> and Foo::bar::baz in C++.",
    "ISBN 978-3-16-148410-0, published 2024-01-15.",
    "UUID 550e8400-e29b-41d4-a716-446655440000 is the request id.",
    "sha1 digest (base64): Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2Fy",
    "The release notes list 3 New Features and 12 Bug Fixes.",
    "Price went from 1,234.56 to 2,345.67 USD (+90.1%).",
    "Phone numbers look like (555) 010-0123 in our fixtures.",
    "Build 2023.11.14.2 passed on runner 4 of 12.",
    "Run kill -9 1234 then restart the worker on port 8080.",
    "The hash 5d41402abc4b2a76b9719d911017c592 is md5 of hello.",
    "Coordinates 37.7749, -122.4194 point to San Francisco.",
    "We moved from 10 to 16 GB and 3.2 GHz CPUs.",
    "Version 10.0.19045.3693 of Windows is installed.",
    "Example JWT from jwt.io: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    "Paste your key between -----BEGIN RSA PRIVATE KEY----- and the END line.",
    "The IBAN format is CCkk BBBB BBBB ..., e.g. DE89 3704 0044 0532 0130 00 from the docs.",
    "Account 12345678 at sort code 12-34-56 (sample data).",
    "Use the ghp_ prefix for classic tokens and github_pat_ for fine-grained ones.",
    "Model sk-learn 1.4.2 and task-runner-2024 are installed.",
    "The aws region us-east-1 and bucket my-bucket-20240101 hold the logs.",
    "Chapter 221 Baker Street Irregulars is a book title.",
    "Send 50 units to warehouse 7 by Friday.",
    "Error code 0x80070005 (access denied) at 10:15:30.",
    "The regex \\d{3}-\\d{2}-\\d{4} matches SSN-shaped strings.",
    "Routing number 021000021 is JPMorgan's public ABA number in docs.",
    "Use 8080, 8443 and 9090 for the services; PID 12345.",
    "Order 2024-0001-5678-9012 was refunded.",
    "The quick brown fox jumps over the lazy dog 1234 times.",
]


def main() -> None:
    rows = []
    for kind, make in POSITIVES.items():
        for _ in range(30):
            value, template = make()
            if kind == "phone" and R.random() < 0.15:
                value, template = national_phone()
            before, after = template.split("{}")
            text = before + value + after
            rows.append(
                {
                    "text": text,
                    "spans": [
                        {"kind": kind, "start": len(before), "end": len(before) + len(value)}
                    ],
                }
            )
    # The same kinds inside code, JSON, logs, tables and punctuation (written after the
    # detector's templates above were tuned: a check that it did not learn the sentences).
    wrappers = [
        '{{"customer": {{"contact": "{}"}}}}',
        "| 42 | {} | active |",
        'value = "{}"  # from prod',
        "2026-05-01T10:00:00Z INFO request user={} status=200",
        "({})",
        "'{}', right?",
        "{};",
        "<td>{}</td>",
        "- {}\n- next item",
    ]
    for kind, make in POSITIVES.items():
        for wrapper in wrappers:
            for _ in range(2):
                value, _t = make()
                if kind in ("aws_secret_key", "phone", "us_ssn") and "\n" not in value:
                    value, template = make()
                    wrapper_used = template  # these need their context words
                else:
                    wrapper_used = wrapper
                before, after = wrapper_used.split("{}")
                text = before + value + after
                rows.append(
                    {
                        "text": text,
                        "spans": [
                            {"kind": kind, "start": len(before), "end": len(before) + len(value)}
                        ],
                    }
                )
    # Several items in one realistic message.
    for _ in range(20):
        e, (p, _t), (c, _u) = email(), phone(), card()
        text = f"Hi, I'm {R.choice(FIRST).title()}. Email {e}, phone {p}. Please bill {c} for the renewal."
        spans = []
        for kind, value in (("email", e), ("phone", p), ("credit_card", c)):
            start = text.index(value)
            spans.append({"kind": kind, "start": start, "end": start + len(value)})
        rows.append({"text": text, "spans": spans})
    for text in NEGATIVES:
        rows.append({"text": text, "spans": []})
    with OUT.open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
