"""The AI SDK's Anthropic provider (Node), which speaks /v1/messages, through the gateway to an
Anthropic model (passed through) and to OpenAI- and Gemini-format ones (translated): text, a
stream, and a tool loop. Its packages are installed by `make test` (tests/node)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.harness import MASTER_KEY, Gateway, until

NODE_DIR = Path(__file__).parent / "node"


@pytest.mark.parametrize("model", ["anthropic/claude-agent", "openai/agent-ok", "gemini/gemini-3-pro"])
def test_the_ai_sdk_anthropic_provider(providers_gateway: Gateway, model: str) -> None:
    node = shutil.which("node")
    assert node, "this test needs Node.js 18 or newer: apt-get install nodejs npm"
    assert (NODE_DIR / "node_modules" / "@ai-sdk" / "anthropic").is_dir(), (
        "the AI SDK is not installed: run `make test` (or `npm ci` in tests/node)"
    )
    line = f" messages model={model} "
    before = providers_gateway.output().count(line)
    done = subprocess.run(
        [node, "ai_sdk_anthropic.mjs", providers_gateway.v1, MASTER_KEY, model],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["text"].startswith("echo") and result["streamed"].strip() == result["text"].strip()
    assert result["calls"] == ["Paris"] and result["steps"] == 2
    assert result["agent"].startswith("results:")
    assert result["usage"]["outputTokens"] > 0
    # It spoke the Messages API: plain, streamed, and the agent's two steps.
    until(lambda: providers_gateway.output().count(line) - before >= 4, timeout=5)
