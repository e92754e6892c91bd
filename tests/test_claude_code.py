"""Claude Code (Anthropic's coding agent, the real binary from tests/node) through the gateway's
/v1/messages: passed through to Anthropic and translated to an OpenAI chat model, each a whole
agent run with tool calls and their results. Found by running it: it sends instructions as a
`system` message inside `messages`, which the Anthropic front door refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import MASTER_KEY, Gateway
from tests.mock_anthropic import MockAnthropic
from tests.mock_gemini import MockGemini
from tests.mock_openai import MockOpenAI

CLAUDE = Path(__file__).parent / "node" / "node_modules" / ".bin" / "claude"


def _claude(gw: Gateway, model: str, home: Path) -> dict[str, Any]:
    assert shutil.which("node"), "this test needs Node.js: apt-get install nodejs npm"
    assert CLAUDE.exists(), "Claude Code is not installed: run `make test` (or `npm ci` in tests/node)"
    work = home / "work"
    work.mkdir(parents=True)
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home), "ANTHROPIC_BASE_URL": gw.url,
        "ANTHROPIC_API_KEY": MASTER_KEY, "ANTHROPIC_SMALL_FAST_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model, "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
    }  # fmt: skip
    done = subprocess.run(
        [str(CLAUDE), "-p", "say hello", "--model", model, "--output-format", "json", "--max-turns", "4"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize("model", ["anthropic/claude-agent", "openai/agent-ok", "gemini/gemini-3-pro"])
def test_claude_code_runs_through_the_gateway(  # noqa: PLR0913 - the mocks it may reach
    providers_gateway: Gateway, mock: MockOpenAI, anthropic_mock: MockAnthropic,
    gemini_mock: MockGemini, model: str, tmp_path: Path,
) -> None:  # fmt: skip
    """The model calls a tool, Claude Code runs it and sends the result back, the model
    answers: streamed Messages both ways, through the gateway's pass-through and through its
    translation to chat completions."""
    upstream = {"anthropic": anthropic_mock, "openai": mock}.get(model.split("/")[0], gemini_mock)
    before = len(upstream.state.requests)
    result = _claude(providers_gateway, model, tmp_path / "claude")
    assert result["is_error"] is False and result["subtype"] == "success", result
    assert result["result"].startswith("results:"), result
    assert result["num_turns"] >= 2 and result["usage"]["output_tokens"] > 0
    sent = [r.body for r in upstream.state.requests[before:]]
    if upstream is gemini_mock:  # Gemini streams by its URL, and wants its thought signatures back
        assert all("streamGenerateContent" in r.path for r in upstream.state.requests[before:])
        parts = [p for c in sent[-1]["contents"] for p in c["parts"]]
        assert any("functionCall" in p and p.get("thoughtSignature") for p in parts)
        return
    assert sent and all(body.get("stream") is True for body in sent)
    if upstream is mock:  # translated: the in-conversation system message is a chat one
        assert any(m["role"] == "system" and "working directory" in str(m["content"])
                   for body in sent for m in body["messages"][1:])  # fmt: skip
        assert any(m["role"] == "tool" for body in sent for m in body["messages"])
