"""Guardrails, measured: the scanner against Python `re`, google-re2 and bare Hyperscan side by
side; masking a request end to end; the cost per streamed chunk; and gateway throughput with a
PII + secrets guardrail on and off, in interleaved rounds.

    python -m benchmarks.guardrails [--rounds 5] [--duration 8] [--only scanner|throughput]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.metering import per_call  # noqa: E402
from benchmarks.run import ONE_MODEL, SHORT_BODY, print_sections, side_by_side  # noqa: E402
from gateway._native import _scan_c, _scan_py  # noqa: E402
from gateway.config.guardrails import GuardrailCfg  # noqa: E402
from gateway.guardrails.detector import Detector, mask  # noqa: E402
from gateway.guardrails.kinds import FORMS  # noqa: E402
from gateway.guardrails.policy import Guardrail  # noqa: E402
from gateway.guardrails.report import Report  # noqa: E402
from gateway.guardrails.request import RequestGuard  # noqa: E402
from gateway.guardrails.stream import HoldBack  # noqa: E402
from gateway.providers.base import Endpoint  # noqa: E402

PROSE = (
    "Hi team, following up on yesterday's call about the quarterly migration. The staging cluster "
    "is healthy again after the rollback, and the dashboards show latency back under budget. "
    "Could you review the runbook before Friday and confirm the cut-over window with the client? "
    "We also need the updated architecture diagram, the load-test summary and the list of open "
    "risks, in particular the cache warm-up and the DNS change on the edge proxies. Thanks! "
)
CLEAN_2K = (PROSE * 6)[:2048]
ITEMS = " Email jane.doe+news@gmail.com, call (415) 867-5309, card 4539 5781 2345 6789. "
DIRTY_2K = CLEAN_2K[:700] + ITEMS + CLEAN_2K[700 + len(ITEMS) :]
CODE = (ROOT / "gateway" / "server" / "http.py").read_text()
BIG_ITEMS = [
    "ops@acme-corp.io", "+44 20 7946 0958", "10.2.3.4", "AKIAZ3M5T7Q2WXYZ9ABC",
    "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5", "536-22-8451", "DE44 5001 0517 5407 3249 31",
    "fe80::1ff:fe23:4567:890a", "1600 Pennsylvania Avenue", "sk-proj-Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1",
]  # fmt: skip


def _big() -> str:
    parts, at = [], 0
    block = (PROSE + CODE)[:3200]
    for item in BIG_ITEMS:
        parts.append(block[at % 1000 : at % 1000 + 3200])
        parts.append(f" {item} ")
        at += 317
    return "".join(parts)[:32768]


BIG_32K = _big()
TEXTS = {"2 KB clean": CLEAN_2K, "2 KB, 3 items": DIRTY_2K, "32 KB, 10 items": BIG_32K}


def _re_baseline() -> Callable[[str], list[Any]]:
    compiled = [re.compile(f.pattern.source, re.ASCII) for f in FORMS]

    def scan(text: str) -> list[Any]:
        return [m.span() for c in compiled for m in c.finditer(text)]

    return scan


def _re2_baseline() -> Callable[[str], Any] | None:
    try:
        import re2  # type: ignore[import-not-found]
    except ImportError:
        return None
    opts = re2.Options()
    patterns = [f.pattern.source for f in FORMS]
    any_set = re2.Set.SearchSet(opts)
    for p in patterns:
        any_set.Add(p)
    any_set.Compile()
    each = [re2.compile(p) for p in patterns]

    def scan(text: str) -> Any:
        hit = any_set.Match(text)
        if not hit:
            return []
        return [m.span() for i in hit for m in each[i].finditer(text)]

    return scan


def scanner(rounds: int) -> list[str]:
    compiled = Detector(engine=_scan_c.Engine)  # type: ignore[arg-type]
    pure = Detector(engine=_scan_py.Engine, prefilter=None)  # as the pure-Python build runs
    raw_hs = _scan_c.Engine([f.pattern for f in FORMS])
    re_scan = _re_baseline()
    re2_scan = _re2_baseline()
    systems: dict[str, Callable[[str], Any]] = {
        "gateway (Hyperscan + validators)": lambda t: compiled.find(t, cache=False),
        "gateway twin (re + validators)": lambda t: pure.find(t, cache=False),
        "bare Hyperscan, spans, no validation": raw_hs.candidates,
        "Python re, one finditer per pattern": re_scan,
    }
    if re2_scan is not None:
        systems["google-re2 Set, then spans of what fired"] = re2_scan
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for label, text in TEXTS.items():
            for name, fn in systems.items():
                seconds = 0.05 if "twin" in name or "Python" in name else 0.2
                results.setdefault((name, label), []).append(
                    per_call(lambda f=fn, t=text: f(t), seconds)
                )
    lines = [
        "| scanner | " + " | ".join(f"{t} µs" for t in TEXTS) + " |",
        "|---|" + "---:|" * len(TEXTS),
    ]
    for name in systems:
        cells = " | ".join(f"{statistics.median(results[(name, t)]):,.1f}" for t in TEXTS)
        lines.append(f"| {name} | {cells} |")
    lines.append("")
    lines.extend(end_to_end(rounds))
    return lines


def _chat_body(text: str) -> bytes:
    import msgspec

    return msgspec.json.encode(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    )


def end_to_end(rounds: int) -> list[str]:
    """A request's input pass as the stage runs it (prefilter on the body, decode, walk, scan,
    validate, mask, re-encode), and a streamed answer's cost per chunk."""
    cases: dict[str, tuple[Guardrail, Guardrail]] = {}
    for impl, engine, prefilter in (
        ("compiled", _scan_c.Engine, _scan_c.maybe),
        ("twin", _scan_py.Engine, None),
    ):
        g = Guardrail("pii", GuardrailCfg(block_pii=True, action="mask"))
        g.detector = Detector(engine=engine, prefilter=prefilter)  # type: ignore[arg-type]
        cases[impl] = (g, g)
    rows: dict[tuple[str, str], list[float]] = {}
    bodies = {
        "2 KB clean": _chat_body(CLEAN_2K),
        "2 KB, 3 items": _chat_body(DIRTY_2K),
        "32 KB, 10 items": _chat_body(BIG_32K),
    }
    answer = DIRTY_2K * 2
    chunks = [answer[i : i + 4] for i in range(0, len(answer), 4)]

    def stream(g: Guardrail) -> None:
        hold = HoldBack([g], {}, Report(), 96)
        for c in chunks:
            hold.feed(c)
        hold.finish()

    for _ in range(rounds):
        for impl, (g, _) in cases.items():
            for label, body in bodies.items():

                def run(b: bytes = body, guard: Guardrail = g) -> None:
                    guard.detector._cache.clear()  # noqa: SLF001 - measure the scan, not the cache
                    RequestGuard(Endpoint.CHAT, {}, Report()).run(b, "gpt-4o-mini", [guard])

                rows.setdefault((impl, label), []).append(
                    per_call(run, 0.05 if impl == "twin" else 0.2)
                )
            rows.setdefault((impl, "chunk"), []).append(
                per_call(lambda guard=g: stream(guard), 0.1) / len(chunks)
            )
    lines = [
        "| request input pass, end to end | "
        + " | ".join(f"{t} µs" for t in bodies)
        + " | streamed answer, µs per 4-char chunk |",
        "|---|" + "---:|" * (len(bodies) + 1),
    ]
    for impl in cases:
        cells = " | ".join(f"{statistics.median(rows[(impl, t)]):,.1f}" for t in bodies)
        lines.append(f"| {impl} | {cells} | {statistics.median(rows[(impl, 'chunk')]):.2f} |")
    masked = mask(DIRTY_2K, cases["compiled"][0].detector.find(DIRTY_2K), {})
    lines.append("")
    lines.append(f"The 3-item prompt masks to `…{masked[690:800].strip()}…`.")
    return lines


BODY = SHORT_BODY
SYSTEMS = {
    "guardrails off": "",
    "stage only (every guardrail mode: off)": "guardrails:\n  input: {mode: 'off'}",
    "PII + secrets on input": "guardrails:\n  input: {block_pii: true}",
    "PII + secrets on input and output": "guardrails:\n  input: {block_pii: true}\n  output: {block_pii: true}",
}


def throughput(rounds: int, duration: int) -> list[str]:
    configs = {label: ONE_MODEL + guardrails for label, guardrails in SYSTEMS.items()}
    samples = side_by_side(configs, BODY, rounds, duration)
    lines = ["| gateway (compiled) | req/s | p50 ms | p99 ms | ÷ off, median of rounds |", "|---|---:|---:|---:|---:|"]
    med = {k: [statistics.median(s[i] for s in v) for i in range(3)] for k, v in samples.items()}
    off = samples["guardrails off"]
    for label, (rps, p50, p99) in med.items():
        ratio = statistics.median(s[0] / o[0] for s, o in zip(samples[label], off, strict=True))
        lines.append(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | {ratio:.3f} |")
    both = samples["PII + secrets on input and output"]
    lines.append("")
    lines.append(
        "Input and output on ÷ off, per round: "
        + ", ".join(f"{s[0] / o[0]:.3f}" for s, o in zip(both, off, strict=True))
        + "."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--only", help="one section: scanner or throughput")
    args = parser.parse_args()
    sections: list[tuple[str, Callable[[], list[str]]]] = [
        ("Scanner (scanner), median µs per call, one core", lambda: scanner(args.rounds)),
        ("Gateway throughput (throughput), non-stream pass-through, 32 connections",
         lambda: throughput(args.rounds, args.duration)),
    ]  # fmt: skip
    print_sections(sections, args.only)


if __name__ == "__main__":
    main()
