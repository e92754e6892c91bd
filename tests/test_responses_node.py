"""The AI SDK (Node) through the gateway: its default `openai(model)` provider, which speaks
/v1/responses, to an Anthropic-format and a Gemini-format provider; its Anthropic provider,
which speaks /v1/messages, to an Anthropic model (passed through) and to OpenAI- and
Gemini-format ones (translated). Each: text, a stream, and a tool loop. Its packages are
installed by `make test` (tests/node, pinned in package-lock.json)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.harness import MASTER_KEY, Gateway, until

NODE_DIR = Path(__file__).parent / "node"


def _ai_sdk(gw: Gateway, model: str, provider: str, endpoint: str) -> dict[str, Any]:
    """Runs tests/node/ai_sdk.mjs with one of the AI SDK's providers; what came back, once
    the gateway has logged the run's four calls to `endpoint` (plain, streamed, the agent's
    two steps)."""
    node = shutil.which("node")
    assert node, "this test needs Node.js 18 or newer: apt-get install nodejs npm"
    assert (NODE_DIR / "node_modules" / "@ai-sdk" / provider).is_dir(), (
        "the AI SDK is not installed: run `make test` (or `npm ci` in tests/node)"
    )
    line = f" {endpoint} model={model} "
    before = gw.output().count(line)
    done = subprocess.run(
        [node, "ai_sdk.mjs", gw.v1, MASTER_KEY, model, provider],
        cwd=NODE_DIR, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    until(lambda: gw.output().count(line) - before >= 4, timeout=5)
    return result


@pytest.mark.parametrize("model", ["anthropic/claude-agent", "gemini/gemini-3-pro"])
def test_the_ai_sdk_default_provider(providers_gateway: Gateway, model: str) -> None:
    result = _ai_sdk(providers_gateway, model, "openai", "responses")
    assert result["text"].startswith("echo") and result["streamed"].strip() == result["text"]
    assert result["calls"] == ["Paris"] and result["steps"] == 2
    assert result["agent"].startswith("results:") and "sunny in Paris" in result["agent"]
    assert result["usage"]["outputTokens"] > 0


@pytest.mark.parametrize("model", ["anthropic/claude-agent", "openai/agent-ok", "gemini/gemini-3-pro"])
def test_the_ai_sdk_anthropic_provider(providers_gateway: Gateway, model: str) -> None:
    result = _ai_sdk(providers_gateway, model, "anthropic", "messages")
    assert result["text"].startswith("echo") and result["streamed"].strip() == result["text"].strip()
    assert result["calls"] == ["Paris"] and result["steps"] == 2
    assert result["agent"].startswith("results:")
    assert result["usage"]["outputTokens"] > 0
