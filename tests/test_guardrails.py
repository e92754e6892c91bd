"""The guardrails' detector on labelled data, for both builds (Hyperscan and the `re` twin):
recall and precision per kind, look-alikes and placeholders, identical findings from both
engines, streamed masking equal to whole-text masking under many chunkings, topics."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway._native import _scan_py
from gateway.config.guardrails import GuardrailCfg
from gateway.guardrails.detector import Detector, Finding, mask
from gateway.guardrails.kinds import KINDS, SECRETS
from gateway.guardrails.policy import Guardrail
from gateway.guardrails.report import Report
from gateway.guardrails.stream import HoldBack
from gateway.guardrails.topics import TOPICS, topic_kinds
from tests.harness import ROOT, clean_env

try:
    from gateway._native import _scan_c
except ImportError:  # pragma: no cover - the suite requires the compiled build
    _scan_c = None  # type: ignore[assignment]

DATA = Path(__file__).parent / "data"
ROWS = [json.loads(line) for line in (DATA / "guardrails.jsonl").read_text().splitlines()]
TOPIC_ROWS = [json.loads(line) for line in (DATA / "topics.jsonl").read_text().splitlines()]


def prefilter(impl: str) -> Callable[[str | bytes], bool]:
    if impl in ("compiled", "re2"):
        assert _scan_c is not None, "the compiled scanner is missing: run make install"
        return _scan_c.maybe  # type: ignore[no-any-return]
    return _scan_py.maybe


def engine(impl: str) -> Callable[..., object]:
    if impl == "re2":
        from gateway._native import _scan_re2  # google-re2: a test dependency

        return _scan_re2.Engine  # type: ignore[no-any-return]
    if impl == "compiled":
        assert _scan_c is not None, "the compiled scanner is missing: run make install"
        return _scan_c.Engine  # type: ignore[no-any-return]
    return _scan_py.Engine


ENGINES = ["compiled", "pure", "re2"]


@pytest.fixture(scope="module", params=ENGINES)
def detector(request: pytest.FixtureRequest) -> Detector:
    return Detector(engine=engine(request.param), prefilter=prefilter(request.param))  # type: ignore[arg-type]


def _spans(d: Detector, text: str) -> set[tuple[str, int, int]]:
    return {(f.kind, f.start, f.end) for f in d.find(text, cache=False)}


def test_accuracy_per_kind(detector: Detector) -> None:
    found, missed, wrong = Counter[str](), Counter[str](), Counter[str]()
    negatives = flagged = 0
    for row in ROWS:
        got = _spans(detector, row["text"])
        want = {(s["kind"], s["start"], s["end"]) for s in row["spans"]}
        if not want:
            negatives += 1
            flagged += bool(got)
        for item in want:
            (found if item in got else missed)[item[0]] += 1
        for item in got - want:
            wrong[item[0]] += 1
    for kind in KINDS:
        total = found[kind] + missed[kind]
        assert total >= 30, kind
        recall = found[kind] / total
        bar = 1.0 if kind in SECRETS else 0.8 if kind == "us_address" else 0.9
        assert recall >= bar, (kind, recall)
    all_found = sum(found.values())
    assert all_found / (all_found + sum(missed.values())) >= 0.95
    assert all_found / (all_found + sum(wrong.values())) >= 0.97
    assert negatives >= 50 and flagged / negatives <= 0.03


@pytest.mark.parametrize("other", ["pure", "re2"])
def test_every_engine_agrees_on_every_row_and_on_noise(other: str) -> None:
    compiled = Detector(engine=engine("compiled"), prefilter=prefilter("compiled"))  # type: ignore[arg-type]
    pure = Detector(engine=engine(other), prefilter=prefilter(other))  # type: ignore[arg-type]
    rng = random.Random(7)
    alphabet = "0123456789 -.:@+/()abcdefABCDEF_xyzAKIAsk-ghp_eyJ\n€é"
    noise = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))) for _ in range(400)]
    for text in [r["text"] for r in ROWS] + noise:
        assert _spans(compiled, text) == _spans(pure, text), text


@pytest.mark.parametrize(
    "text",
    [
        "git@github.com:org/repo.git",
        "upgrade to v1.2.3.4 or pkg==1.2.3.4",
        "Chrome/120.0.6099.109",
        "OID 1.3.6.1.4.1.311",
        "write to a@example.com, b@sub.example.org or c@host.test",
        "keys AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "call (212) 555-0100 or 212-555-0199",
        "hosts 192.0.2.1, 198.51.100.2, 203.0.113.3, 2001:db8::5, 127.0.0.1, ::1, 0.0.0.0",
        "cards 4111 1111 1111 1111 and 4242424242424242",
        "my key sk-...abcd, <YOUR_KEY>, sk-YOUR_OPENAI_KEY_HERE_1234",
        "commit 3f786850e387550fdab836ed7e6dc881de23001b",
        "record 536228451 and 4155552671",
        "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    ],
)
def test_placeholders_and_look_alikes_are_not_findings(detector: Detector, text: str) -> None:
    assert _spans(detector, text) == set()


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("host 10.1.2.3", "ipv4"),
        ("host 172.16.0.9", "ipv4"),
        ("host 192.168.1.20", "ipv4"),
        ("link-local fe80::1ff:fe23:4567:890a", "ipv6"),
        ("ula fd12:3456:789a:1::1", "ipv6"),
        ("ssn: 536228451", "us_ssn"),
        ("call me at 4155552671", "phone"),
        ("phone: 020 7946 0958", "phone"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx7Jr3nT9v2K8Qwabcdef0123",
            "private_key",
        ),
    ],
)
def test_private_addresses_context_and_truncated_keys_are_findings(
    detector: Detector, text: str, kind: str
) -> None:
    assert [f.kind for f in detector.find(text, cache=False)] == [kind]


def test_a_pem_block_is_found_whole(detector: Detector) -> None:
    block = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----"
    text = f"key:\n{block}\nthanks"
    assert _spans(detector, text) == {("private_key", 5, 5 + len(block))}


def test_allowlists_and_custom_kinds() -> None:
    d = Detector(("email",), allow=["Support@Acme.io"], allow_patterns=[r".*@corp\.internal"])
    assert d.find("mail support@acme.io or x@corp.internal", cache=False) == ()
    from gateway.guardrails.detector import CustomKind

    custom = Detector(
        (), [CustomKind("ticket", r"TCK-[0-9]{6}"), CustomKind("codename", words=("bluebird",))]
    )
    assert [
        f.kind for f in custom.find("TCK-123456 about Bluebird, not bluebirds", cache=False)
    ] == [
        "ticket",
        "codename",
    ]


def test_the_prefilter_is_sound_and_both_builds_agree() -> None:
    """Every labelled item passes the cheap pass (else it would be missed), both builds of it
    answer alike on noise, and clean prose does not pass it."""
    assert _scan_c is not None
    for row in ROWS:
        for span in row["spans"]:
            value = row["text"][span["start"] : span["end"]]
            assert _scan_c.maybe(value) and _scan_py.maybe(value), value
            assert _scan_c.maybe(value.encode()), value
    rng = random.Random(5)
    alphabet = "0123456789 -.:@+/()abcdefABCDEFXYZ_skeyJgh-\n€"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert _scan_c.maybe(text) == _scan_py.maybe(text), text
    assert not _scan_c.maybe("Hello! How can I assist you today? Tell me a joke about gateways.")


def test_luhn_and_mod97_agree_between_builds() -> None:
    assert _scan_c is not None
    rng = random.Random(3)
    for _ in range(2000):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(12, 19)))
        assert _scan_c.luhn(digits) == _scan_py.luhn(digits)
    for iban in ("GB82WEST12345698765432", "DE89370400440532013000", "DE89370400440532013001"):
        assert _scan_c.mod97(iban) == _scan_py.mod97(iban)
    assert _scan_py.mod97("GB82WEST12345698765432") and not _scan_py.mod97("GB82WEST12345698765433")


def _masking_guardrail(impl: str) -> Guardrail:
    g = Guardrail("pii", GuardrailCfg(block_pii=True, action="mask"))
    g.detector = Detector(engine=engine(impl), prefilter=prefilter(impl))  # type: ignore[arg-type]
    return g


@pytest.mark.parametrize("impl", ENGINES)
def test_streamed_masking_equals_whole_text_masking(impl: str) -> None:
    g = _masking_guardrail(impl)
    rng = random.Random(11)
    # Items in running text: each row on its own, and rows glued into long answers.
    texts = [r["text"] for r in ROWS] + [
        " ".join(r["text"] for r in rng.sample(ROWS, 6)) for _ in range(60)
    ]
    replays = 0
    for text in texts:
        expected = mask(text, g.detector.find(text, cache=False), {})
        for _ in range(5):
            hold = HoldBack([g], {}, Report(), 96)
            out, at = [], 0
            while at < len(text):
                step = rng.choice((1, 2, 3, 5, 8, 13, 40))
                out.append(hold.feed(text[at : at + step]))
                at += step
            out.append(hold.finish())
            assert "".join(out) == expected, text
            replays += 1
    assert replays >= 4000


@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_a_streamed_block_sends_no_held_character(impl: str) -> None:
    g = Guardrail("secrets", GuardrailCfg(kinds=["openai_key"]))
    g.detector = Detector(("openai_key",), engine=engine(impl), prefilter=prefilter(impl))  # type: ignore[arg-type]
    secret = "sk-proj-Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1Xy"
    text = "Sure. Here is a long preamble before the key. " * 3 + f"Use {secret} now."
    hold = HoldBack([g], {}, Report(), 96)
    sent = "".join(hold.feed(ch) for ch in text) + hold.finish()
    assert hold.blocked is not None
    assert "sk-" not in sent and text.startswith(sent)
    assert len(text) - len(sent) >= 96 - len(" now.")  # what was held stays held


@pytest.mark.parametrize("impl", ENGINES)
def test_topics_precision_and_recall(impl: str) -> None:
    names = [n for n in TOPICS if n != "illegal_activity"]
    d = Detector((), topic_kinds(names), engine=engine(impl))  # type: ignore[arg-type]
    tp = fn = fp = 0
    for row in TOPIC_ROWS:
        got = {f.kind for f in d.find(row["text"], cache=False)}
        if row["topic"]:
            if row["topic"] in got:
                tp += 1
            else:
                fn += 1
        elif got:
            fp += 1
    assert tp + fn >= 40 and len(TOPIC_ROWS) - tp - fn >= 39
    assert tp / (tp + fn) >= 0.95 and tp / (tp + fp) >= 0.95


def test_finding_offsets_are_characters_in_non_ascii_text() -> None:
    for impl in ENGINES:
        d = Detector(("email", "ipv4"), engine=engine(impl), prefilter=prefilter(impl))  # type: ignore[arg-type]
        text = "Héllo ünïcode — jane@acme.io, café 10.1.2.3 ✓"
        found = d.find(text, cache=False)
        assert [text[f.start : f.end] for f in found] == ["jane@acme.io", "10.1.2.3"], impl
        assert found[0] == Finding("email", text.index("jane"), text.index("jane") + 12)


def test_the_verdict_cache_is_bounded_and_keyed_by_content() -> None:
    d = Detector(("email",))
    long = "x" * 100 + " jane@acme.io"
    assert d.find(long) == d.find(long)
    for i in range(5000):
        d.find(f"{i:08d}" + "y" * 80)
    assert len(d._cache) <= 4096  # noqa: SLF001


@pytest.mark.parametrize("impl", ["compiled", "pure"])
def test_cli_check(impl: str, tmp_path: Path) -> None:
    path = tmp_path / "prompt.txt"
    path.write_text("mail jane@acme.io")
    run = subprocess.run(
        [sys.executable, "-m", "gateway", "guardrails", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, env=clean_env(impl), check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["verdict"] == "mask" and result["masked"] == "mail [EMAIL_1]"
    path.write_text("key AKIAZ3M5T7Q2WXYZ9ABC")
    blocked = subprocess.run(
        [sys.executable, "-m", "gateway", "guardrails", "check", str(path)],
        capture_output=True, text=True, cwd=ROOT, env=clean_env(impl), check=False,
    )  # fmt: skip
    assert blocked.returncode == 1 and json.loads(blocked.stdout)["verdict"] == "block"


@pytest.mark.parametrize("impl", ENGINES)
def test_a_long_run_before_an_at_sign_is_cut_to_rfc_5321s_local_part(impl: str) -> None:
    """The twin's pattern bounds the local part (Python's backtracking would be quadratic on a
    long run); the validator trims every engine's match to the same 64 characters."""
    d = Detector(("email",), engine=engine(impl), prefilter=prefilter(impl))  # type: ignore[arg-type]
    text = "x" * 300 + "@corp.io"
    assert [(f.start, f.end) for f in d.find(text, cache=False)] == [(236, 308)]
    assert d.find("a" * 5000 + "@", cache=False) == ()
