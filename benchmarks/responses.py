"""The Responses API beside chat completions: one gateway (compiled) behind one fast mock,
four scenarios in interleaved rounds: chat and /v1/responses passed through to an OpenAI
target, and both translated to an Anthropic target. Goals (issue 19): Responses pass-through
within 5% of chat pass-through, Responses translation within 20% of chat translation.

    python -m benchmarks.responses [--rounds 12] [--duration 3] [--stream]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.run import MASTER_KEY, QUESTION, _free_port, _start, _wait, wrk  # noqa: E402

CONFIG = (
    f"server: {{master_key: {MASTER_KEY}}}\n"
    "providers:\n"
    '  openai: {api_key: sk-bench, base_url: "{up}/v1"}\n'
    '  anthropic: {api_key: sk-ant-bench, base_url: "{up}"}\n'
    "models:\n"
    "  - name: native\n"
    "    targets: [{provider: openai, model: gpt-4o-mini}]\n"
    "  - name: translated\n"
    "    targets: [{provider: anthropic, model: claude-bench}]\n"
)


def _bodies(stream: bool) -> dict[str, tuple[str, str]]:
    flag = ',"stream":true' if stream else ""
    chat = '{{"model":"{m}","messages":[{{"role":"user","content":"' + QUESTION + '"}}]' + flag + "}}"
    responses = '{{"model":"{m}","input":"' + QUESTION + '","store":false' + flag + "}}"
    return {
        "chat, passed through": ("/v1/chat/completions", chat.format(m="native")),
        "responses, passed through": ("/v1/responses", responses.format(m="native")),
        "chat, translated (Anthropic)": ("/v1/chat/completions", chat.format(m="translated")),
        "responses, translated (Anthropic)": ("/v1/responses", responses.format(m="translated")),
    }


def run(rounds: int, duration: int, stream: bool) -> list[str]:
    python = sys.executable
    mock, port = _free_port(), _free_port()
    path = Path(tempfile.mkstemp(suffix=".yaml")[1])
    path.write_text(CONFIG.replace("{up}", f"http://127.0.0.1:{mock}"))
    procs = [
        _start([python, "-m", "benchmarks.fast_upstream", "--port", str(mock)], "1"),
        _start([python, "-m", "gateway", "serve", "--config", str(path), "--port", str(port)], "0"),
    ]
    auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    scenarios = _bodies(stream)
    samples: dict[str, list[tuple[float, float, float]]] = {k: [] for k in scenarios}
    try:
        _wait(mock)
        _wait(port)
        for url, body in scenarios.values():
            wrk(port, body, 2, 32, auth, path=url)
        # This machine's speed drifts within seconds: each Responses scenario runs right beside
        # its chat twin (the pair's order alternating), and the ratios are taken pair by pair.
        pairs = [list(scenarios)[0:2], list(scenarios)[2:4]]
        for i in range(rounds):
            for pair in pairs:
                for label in pair if i % 2 == 0 else reversed(pair):
                    url, body = scenarios[label]
                    samples[label].append(wrk(port, body, duration, 32, auth, path=url))
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
    lines = ["| scenario (compiled) | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    for label, got in samples.items():
        rps, p50, p99 = (statistics.median(r[i] for r in got) for i in range(3))
        lines.append(f"| {label} | {rps:,.0f} | {p50:.2f} | {p99:.2f} |")
    lines.append("")
    for a, b in (("responses, passed through", "chat, passed through"),
                 ("responses, translated (Anthropic)", "chat, translated (Anthropic)")):  # fmt: skip
        ratios = [x[0] / y[0] for x, y in zip(samples[a], samples[b], strict=True)]
        each = ", ".join(f"{r:.3f}" for r in ratios)
        lines.append(f"{a} ÷ {b.split(',')[0]}: per round {each}; median {statistics.median(ratios):.3f}.")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    print("\n".join(run(args.rounds, args.duration, args.stream)))


if __name__ == "__main__":
    main()
