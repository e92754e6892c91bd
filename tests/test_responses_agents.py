"""A real agent framework through the gateway: the OpenAI Agents SDK (its default model talks
to /v1/responses) running an agent with a function tool against Anthropic- and Gemini-format
providers, streamed and not."""

from __future__ import annotations

import asyncio

import openai
import pytest
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled

from tests.harness import MASTER_KEY, Gateway

set_tracing_disabled(True)  # the SDK would export its traces to OpenAI
CALLS: list[str] = []


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    CALLS.append(city)
    return f"sunny in {city}"


def _agent(client: openai.AsyncOpenAI, model: str) -> Agent:
    return Agent(
        name="weather",
        instructions="Answer with the tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model=model, openai_client=client),
    )


@pytest.mark.parametrize("model", ["anthropic/claude-agent", "gemini/gemini-3-pro"])
@pytest.mark.parametrize("streamed", [False, True])
def test_an_agent_runs_its_tool_loop(providers_gateway: Gateway, model: str, streamed: bool) -> None:
    async def run() -> tuple[str, list[str]]:
        url = providers_gateway.v1
        async with openai.AsyncOpenAI(base_url=url, api_key=MASTER_KEY, max_retries=0) as client:
            agent = _agent(client, model)
            if not streamed:
                result = await Runner.run(agent, "What is the weather in Paris?")
                return str(result.final_output), [type(i).__name__ for i in result.new_items]
            run = Runner.run_streamed(agent, "What is the weather in Paris?")
            kinds = [event.type async for event in run.stream_events()]
            assert "raw_response_event" in kinds
            return str(run.final_output), [type(i).__name__ for i in run.new_items]

    CALLS.clear()
    final, items = asyncio.run(run())
    assert CALLS == ["Paris"]
    assert items[:2] == ["ToolCallItem", "ToolCallOutputItem"] and items[-1] == "MessageOutputItem"
    assert final.startswith("results:") and "sunny in Paris" in final
