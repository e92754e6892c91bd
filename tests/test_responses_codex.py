"""Codex CLI (OpenAI's coding agent, the real binary from tests/node) through the gateway's
/v1/responses: passed through to OpenAI and translated to Anthropic, each a whole agent turn
with a tool call and its result. And what Codex sends that plain SDK calls do not: its
`client_metadata`, `namespace` tools (functions grouped under a name), and its history sent
back with `store: false`, hosted tools' items (a web search's call) included."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, Gateway
from tests.mock_anthropic import MockAnthropic
from tests.mock_gemini import MockGemini
from tests.mock_openai import MockOpenAI

CODEX = Path(__file__).parent / "node" / "node_modules" / ".bin" / "codex"
NAMESPACE = {
    "type": "namespace", "name": "multi_agent_v1", "description": "Tools for sub-agents.",
    "tools": [{"type": "function", "name": "spawn_agent", "description": "Start one.",
               "strict": False, "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}],
}  # fmt: skip
SEARCH_CALL = {
    "type": "web_search_call", "id": "ws_0123", "status": "completed",
    "action": {"type": "search", "query": "weather in Paris"},
}  # fmt: skip


def _codex(gw: Gateway, model: str, home: Path) -> list[dict[str, Any]]:
    assert CODEX.exists(), "Codex CLI is not installed: run `make test` (or `npm ci` in tests/node)"
    home.mkdir()
    (home / "config.toml").write_text(
        'model_provider = "gw"\n'
        'web_search = "disabled"\n'  # a hosted tool: only OpenAI runs it (the translated run)
        "[model_providers.gw]\n"
        f'name = "gateway"\nbase_url = "{gw.v1}"\nenv_key = "GATEWAY_KEY"\nwire_api = "responses"\n'
    )
    work = home / "work"
    work.mkdir()
    env = {**os.environ, "CODEX_HOME": str(home), "GATEWAY_KEY": MASTER_KEY, "NO_COLOR": "1"}
    done = subprocess.run(
        [str(CODEX), "exec", "--skip-git-repo-check", "--json", "-m", model, "say hello"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    return events


@pytest.mark.parametrize("model", ["gpt", "anthropic/claude-agent", "gemini/gemini-3-pro"])
def test_codex_cli_runs_a_turn_through_the_gateway(  # noqa: PLR0913 - the mocks it may reach
    providers_gateway: Gateway, mock: MockOpenAI, anthropic_mock: MockAnthropic,
    gemini_mock: MockGemini, model: str, tmp_path: Path,
) -> None:  # fmt: skip
    """A whole Codex turn: its first request (streamed, `store: false`, its tools), the
    model's tool call, Codex's tool output sent back with the history, the final answer."""
    node = shutil.which("node")
    assert node, "this test needs Node.js: apt-get install nodejs npm"
    upstream = {"gpt": mock, "anthropic/claude-agent": anthropic_mock}.get(model, gemini_mock)
    before = len(upstream.state.requests)
    events = _codex(providers_gateway, model, tmp_path / "codex")
    kinds = [e["type"] for e in events]
    assert "turn.completed" in kinds and "turn.failed" not in kinds and "error" not in kinds, events
    said = [e["item"]["text"] for e in events if e["type"] == "item.completed"
            and e["item"]["type"] == "agent_message"]  # fmt: skip
    assert said, events
    sent = [r.body for r in upstream.state.requests[before:]]
    assert len(sent) == 2  # the turn's two steps: the call, then the answer to its output
    if model == "gpt":  # passed through: Codex's own fields reach OpenAI as sent
        assert said[-1].startswith("native: tool said")
        assert all("client_metadata" in body and body["store"] is False for body in sent)
        kinds_back = [item.get("type") for item in sent[1]["input"]]
        assert "function_call" in kinds_back and "function_call_output" in kinds_back
    elif upstream is anthropic_mock:  # translated: the call became Anthropic's tool_use and back
        assert said[-1].startswith("results:")
        assert any(b.get("type") == "tool_result" for m in sent[1]["messages"]
                   if isinstance(m["content"], list) for b in m["content"])  # fmt: skip
    else:  # Gemini 3: its functionCall's thought signature went back with the call
        assert said[-1].startswith("results:")
        parts = [p for c in sent[1]["contents"] for p in c["parts"]]
        assert any("functionCall" in p and p.get("thoughtSignature") for p in parts)
        assert any("functionResponse" in p for p in parts)


def test_namespace_tools_translate_both_ways(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    """A namespace's functions reach a chat provider by joined names; the call comes back as
    a function_call item naming its namespace and function, whole and streamed, and goes out
    again joined when the agent sends it back with its output."""
    tools: Any = [NAMESPACE]
    answer = pclient.responses.create(model="anthropic/claude-agent", input="spawn one", tools=tools)
    call = next(item for item in answer.output if item.type == "function_call")
    assert (call.namespace, call.name) == ("multi_agent_v1", "spawn_agent")  # type: ignore[union-attr]
    sent = anthropic_mock.state.last().body
    assert [t["name"] for t in sent["tools"]] == ["multi_agent_v1__spawn_agent"]
    assert sent["tools"][0]["description"] == "Tools for sub-agents. Start one."
    with pclient.responses.stream(model="anthropic/claude-agent", input="spawn one", tools=tools) as stream:
        streamed = stream.get_final_response()
    item = next(item for item in streamed.output if item.type == "function_call")
    assert (item.namespace, item.name) == ("multi_agent_v1", "spawn_agent")  # type: ignore[union-attr]
    back: Any = [
        {"role": "user", "content": "spawn one"},
        {"type": "function_call", "call_id": call.call_id, "name": "spawn_agent",  # type: ignore[union-attr]
         "namespace": "multi_agent_v1", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": call.call_id, "output": "spawned"},  # type: ignore[union-attr]
    ]  # fmt: skip
    done = pclient.responses.create(model="anthropic/claude-agent", input=back, tools=tools)
    assert done.output_text.startswith("results:")
    uses = [b for m in anthropic_mock.state.last().body["messages"] if isinstance(m["content"], list)
            for b in m["content"] if b["type"] == "tool_use"]  # fmt: skip
    assert [u["name"] for u in uses] == ["multi_agent_v1__spawn_agent"]


def test_hosted_items_are_relayed_to_openai_and_left_out_for_others(
    providers_gateway: Gateway, mock: MockOpenAI, anthropic_mock: MockAnthropic
) -> None:
    """An agent's history holds a hosted tool's items (a web search's call): OpenAI gets them
    as sent; a translated provider gets the conversation without them, not a 400."""
    history = [{"role": "user", "content": "weather?"}, SEARCH_CALL,
               {"role": "assistant", "content": "It is sunny."}, {"role": "user", "content": "thanks"}]  # fmt: skip
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    for model, upstream in (("gpt", mock), ("claude", anthropic_mock)):
        reply = httpx.post(f"{providers_gateway.v1}/responses", headers=headers, timeout=30,
                           json={"model": model, "input": history, "store": False,
                                 "client_metadata": {"session_id": "s1"}})  # fmt: skip
        assert reply.status_code == 200, reply.text
        sent = upstream.state.last().body
        if upstream is mock:
            assert SEARCH_CALL in sent["input"] and sent["client_metadata"] == {"session_id": "s1"}
        else:
            assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    unknown = httpx.post(f"{providers_gateway.v1}/responses", headers=headers, timeout=30,
                         json={"model": "claude", "input": [{"type": "telepathy_call", "id": "x"}]})  # fmt: skip
    assert unknown.status_code == 400 and unknown.json()["error"]["param"] == "input[0].type"
