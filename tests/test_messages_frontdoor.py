"""Anthropic clients on /v1/messages, served by Anthropic natively and by OpenAI-format models."""

from __future__ import annotations

import anthropic
import httpx2 as httpx
import pytest

from tests.harness import MASTER_KEY, Gateway
from tests.mock_anthropic import MockAnthropic
from tests.mock_openai import MockOpenAI

TOOLS: list[anthropic.types.ToolParam] = [
    {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
]  # fmt: skip


def test_native_pass_through(aclient: anthropic.Anthropic, anthropic_mock: MockAnthropic) -> None:
    message = aclient.messages.create(
        model="claude",
        max_tokens=300,
        system="be brief",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
        extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}, "container": "c-1"},
    )
    assert message.content[0].type == "text" and message.content[0].text == "echo: hi"
    assert message.usage.input_tokens == 20 and message.usage.cache_read_input_tokens == 5
    sent = anthropic_mock.state.last()
    assert sent.body["model"] == "claude-ok"  # alias resolved; everything else untouched
    assert sent.body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent.body["container"] == "c-1"
    assert sent.body["system"] == "be brief"
    assert sent.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert sent.headers["x-api-key"] != MASTER_KEY


def test_native_stream(aclient: anthropic.Anthropic) -> None:
    with aclient.messages.stream(
        model="anthropic/claude-tools",
        max_tokens=100,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == 9


def test_openai_model_text(aclient: anthropic.Anthropic, mock: MockOpenAI) -> None:
    message = aclient.messages.create(
        model="gpt",
        max_tokens=50,
        system=[{"type": "text", "text": "be brief"}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi there"}]}],
        stop_sequences=["END"],
        metadata={"user_id": "u-9"},
    )
    assert message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "echo"
    assert message.stop_reason == "end_turn"
    # OpenAI's prompt_tokens (11) include the cached 3; Anthropic's input_tokens do not.
    assert message.usage.input_tokens == 8 and message.usage.cache_read_input_tokens == 3
    assert message.usage.output_tokens == 7
    sent = mock.state.last().body
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi there"}]},
    ]
    assert sent["max_tokens"] == 50 and sent["stop"] == ["END"] and sent["user"] == "u-9"


def test_openai_model_tools_and_results(aclient: anthropic.Anthropic, mock: MockOpenAI) -> None:
    message = aclient.messages.create(
        model="openai/tools-model",
        max_tokens=50,
        tools=TOOLS,
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "weather?"}],
    )
    assert message.stop_reason == "tool_use"
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [(u.id, u.name, u.input) for u in uses] == [
        ("call_a1", "get_weather", {"city": "Paris"}),
        ("call_b2", "get_time", {"tz": "CET"}),
    ]
    sent = mock.state.last().body
    assert sent["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False
    aclient.messages.create(
        model="gpt",
        max_tokens=50,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "call_a1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_a1", "content": "sunny"},
                {"type": "text", "text": "and tomorrow?"},
            ]},
        ],
    )  # fmt: skip
    sent_messages = mock.state.last().body["messages"]
    assert sent_messages[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Paris"}',
    }
    assert sent_messages[2] == {"role": "tool", "tool_call_id": "call_a1", "content": "sunny"}
    assert sent_messages[3] == {
        "role": "user",
        "content": [{"type": "text", "text": "and tomorrow?"}],
    }


def test_openai_model_stream(aclient: anthropic.Anthropic) -> None:
    with aclient.messages.stream(
        model="gpt", max_tokens=50, messages=[{"role": "user", "content": "one two three"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: one two three "
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 7


def test_openai_model_stream_tool_calls(aclient: anthropic.Anthropic) -> None:
    with aclient.messages.stream(
        model="openai/tools-model",
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "x"}],
    ) as stream:
        final = stream.get_final_message()
    assert [(b.type, getattr(b, "input", None)) for b in final.content] == [
        ("tool_use", {"city": "Paris"}),
        ("tool_use", {"tz": "CET"}),
    ]
    assert final.stop_reason == "tool_use"


def test_openai_model_stream_error(aclient: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        aclient.messages.stream(
            model="openai/error-stream",
            max_tokens=50,
            messages=[{"role": "user", "content": "a b c"}],
        ) as stream,
    ):
        list(stream)
    assert "overloaded mid-stream" in str(info.value)


def test_count_tokens(aclient: anthropic.Anthropic, providers_gateway: Gateway) -> None:
    native = aclient.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hello"}]
    )
    assert native.input_tokens == 42
    raw = aclient.messages.with_raw_response.count_tokens(
        model="gpt", messages=[{"role": "user", "content": "hello world"}]
    )
    assert raw.headers["x-gateway-token-count"] == "estimate"
    assert 1 <= raw.parse().input_tokens < 40
    # An OpenAI model: its own tokenizer and OpenAI's message overhead, so the count is exact:
    # 3 to prime the reply + 3 for the message + "user" (1) + "hello world" (2).
    raw = aclient.messages.with_raw_response.count_tokens(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hello world"}]
    )
    assert raw.headers["x-gateway-token-count"] == "counted"
    assert raw.parse().input_tokens == 9


def test_errors_use_anthropic_envelope(
    aclient: anthropic.Anthropic, providers_gateway: Gateway
) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        aclient.messages.create(
            model="nope/nothing", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["type"] == "error"  # type: ignore[index]
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    response = httpx.post(
        f"{providers_gateway.url}/v1/messages",
        headers={"x-api-key": MASTER_KEY},
        json={"model": "gpt", "messages": [{"role": "user", "content": "x"}]},
    )
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["param"] == "max_tokens"
    assert body["error"]["type"] == "invalid_request_error"


def test_hosted_tool_on_openai_model_is_400(aclient: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        aclient.messages.create(
            model="gpt", max_tokens=5, messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )  # fmt: skip
    assert "hosted" in str(info.value)


def test_anthropic_rate_limit_via_front_door(aclient: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        aclient.messages.create(
            model="anthropic/fail-429", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.response.headers["retry-after"] == "11"


def test_native_stream_error_event_reaches_the_client(aclient: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:  # noqa: SIM117 - the error is raised while iterating
        with aclient.messages.stream(model="anthropic/error-stream", max_tokens=50, messages=[{"role": "user", "content": "a b c d"}]) as stream:
            list(stream)
    assert "Overloaded" in str(info.value)
