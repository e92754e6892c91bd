"""OpenAI clients talking to Anthropic models through the gateway (strict openai SDK)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.harness import MASTER_KEY
from tests.mock_anthropic import ANTHROPIC_KEY, MockAnthropic

WEATHER_TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time",
     "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]  # fmt: skip
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def test_text_system_and_merged_turns(
    pclient: openai.OpenAI, anthropic_mock: MockAnthropic
) -> None:
    raw = pclient.chat.completions.with_raw_response.create(
        model="claude",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "and kind"}]},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "there"},
        ],
        stop="END",
        temperature=0.3,
        user="user-17",
        seed=7,  # no Anthropic equivalent: dropped
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hi there"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    # Anthropic's input_tokens exclude cache reads (5) and writes (3); OpenAI's include them.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (28, 9, 37)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 5
    assert raw.headers["x-ratelimit-limit-requests"] == "50"
    assert raw.headers["x-ratelimit-remaining-tokens"] == "39000"
    sent = anthropic_mock.state.last()
    assert sent.headers["x-api-key"] == ANTHROPIC_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in sent.headers}
    assert sent.body["system"] == [
        {"type": "text", "text": "be brief"},
        {"type": "text", "text": "and kind"},
    ]
    assert sent.body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "there"}],
        }
    ]
    assert sent.body["max_tokens"] == 4096  # filled in: Anthropic requires it
    assert sent.body["stop_sequences"] == ["END"]
    assert sent.body["metadata"] == {"user_id": "user-17"}
    assert sent.body["temperature"] == 0.3
    assert "seed" not in sent.body


def test_max_tokens_default_depends_on_model(
    pclient: openai.OpenAI, anthropic_mock: MockAnthropic
) -> None:
    pclient.chat.completions.create(
        model="anthropic/claude-3-5-sonnet-20241022", messages=[{"role": "user", "content": "x"}]
    )
    assert anthropic_mock.state.last().body["max_tokens"] == 8192
    pclient.chat.completions.create(
        model="anthropic/claude-ok",
        messages=[{"role": "user", "content": "x"}],
        max_completion_tokens=55,
    )
    assert anthropic_mock.state.last().body["max_tokens"] == 55


def test_images_data_url_and_link(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    pclient.chat.completions.create(
        model="claude",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what are these?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        ]}],
    )  # fmt: skip
    blocks = anthropic_mock.state.last().body["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/cat.jpg"},
    }


def test_bad_image_url_is_a_400(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        pclient.chat.completions.create(
            model="claude",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}],
                }
            ],
        )
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"  # type: ignore[index]


def test_tool_calls_non_stream(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    completion = pclient.chat.completions.create(
        model="anthropic/claude-tools",
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=WEATHER_TOOLS,
        tool_choice="required",
        parallel_tool_calls=False,
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None and [c.id for c in calls] == ["toolu_01A", "toolu_01B"]
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    sent = anthropic_mock.state.last().body
    assert sent["tools"][0] == {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


def test_named_tool_choice(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    pclient.chat.completions.create(
        model="anthropic/claude-tools", messages=[{"role": "user", "content": "x"}],
        tools=WEATHER_TOOLS, tool_choice={"type": "function", "function": {"name": "get_time"}},
    )  # fmt: skip
    assert anthropic_mock.state.last().body["tool_choice"] == {"type": "tool", "name": "get_time"}


def test_tool_calls_stream_dense_indexes(pclient: openai.OpenAI) -> None:
    stream = pclient.chat.completions.create(
        model="anthropic/claude-tools",
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=WEATHER_TOOLS,
        stream=True,
    )
    chunks = list(stream)
    roles = [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role]
    assert roles == ["assistant"]  # sent once
    indexes = {tc.index for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or ()}
    # The text block is content block 0; tool calls are still numbered from 0.
    assert indexes == {0, 1}
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["tool_calls"]
    assert all(c.usage is None for c in chunks)  # include_usage was not asked for


def test_stream_accumulates_with_sdk_helper(pclient: openai.OpenAI) -> None:
    with pclient.chat.completions.stream(
        model="anthropic/claude-tools",
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=WEATHER_TOOLS,
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert message.tool_calls is not None
    assert [json.loads(c.function.arguments) for c in message.tool_calls] == [
        {"city": "Paris"},
        {"tz": "CET"},
    ]  # type: ignore[union-attr]
    assert final.usage is not None and final.usage.prompt_tokens == 28


def test_multi_turn_tool_results(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    completion = pclient.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": "weather and time?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call:1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}},
            ]},
            {"role": "tool", "tool_call_id": "call:1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
        ],
        tools=WEATHER_TOOLS,
    )  # fmt: skip
    assert completion.choices[0].message.content == "results: sunny; noon"
    turns = anthropic_mock.state.last().body["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"][0] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "get_weather",
        "input": {"city": "Paris"},
    }
    assert turns[1]["content"][1]["input"] == {}
    assert turns[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "noon"},
    ]


def test_tool_history_without_tools_declares_them(
    pclient: openai.OpenAI, anthropic_mock: MockAnthropic
) -> None:
    pclient.chat.completions.create(
        model="claude",
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
        ],
    )  # fmt: skip
    sent = anthropic_mock.state.last().body
    assert [t["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tool_choice"] == {"type": "none"}


def test_invalid_tool_arguments_are_a_400(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        pclient.chat.completions.create(
            model="claude",
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "r"},
            ],
        )  # fmt: skip
    assert info.value.body["param"] == "messages[1].tool_calls[0].function.arguments"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_json_schema_response_format(
    pclient: openai.OpenAI, anthropic_mock: MockAnthropic, stream: bool
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}},
    }
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}}
    if stream:
        chunks = list(
            pclient.chat.completions.create(
                model="claude",
                messages=[{"role": "user", "content": "x"}],
                response_format=fmt,
                stream=True,
            )
        )
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [
            c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
        ]
        assert finish == ["stop"]
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    else:
        completion = pclient.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}], response_format=fmt
        )
        content = completion.choices[0].message.content or ""
        assert completion.choices[0].finish_reason == "stop"
        assert completion.choices[0].message.tool_calls is None
    assert json.loads(content) == {"city": "Paris", "temp_c": 21}
    sent = anthropic_mock.state.last().body
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert sent["tools"][-1]["input_schema"] == schema


def test_thinking_and_length(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    completion = pclient.chat.completions.create(
        model="anthropic/claude-think",
        messages=[{"role": "user", "content": "x"}],
        reasoning_effort="low",
    )
    assert completion.choices[0].message.content == "echo: x"
    assert completion.choices[0].message.reasoning_content == "Let me think."  # type: ignore[attr-defined]
    assert anthropic_mock.state.last().body["thinking"] == {
        "type": "enabled",
        "budget_tokens": 1024,
    }
    stream = pclient.chat.completions.create(
        model="anthropic/claude-max", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert [
        c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason
    ] == ["length"]


@pytest.mark.parametrize(("param", "value"), [("n", 2), ("logprobs", True)])
def test_parameters_anthropic_cannot_honour_are_400(
    pclient: openai.OpenAI, param: str, value: Any
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        pclient.chat.completions.create(
            model="claude", messages=[{"role": "user", "content": "x"}], **{param: value}
        )
    assert info.value.body["param"] == param  # type: ignore[index]


def test_rate_limit_error(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        pclient.chat.completions.create(
            model="anthropic/fail-429", messages=[{"role": "user", "content": "x"}]
        )
    err = info.value
    assert err.code == "rate_limit_exceeded"
    assert err.response.headers["retry-after"] == "11"
    assert err.response.headers["x-ratelimit-remaining-requests"] == "49"


def test_overloaded_529_becomes_503(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        pclient.chat.completions.create(
            model="anthropic/fail-529", messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.status_code == 503
    assert info.value.code == "overloaded"


@pytest.mark.parametrize(
    ("model", "error", "code"),
    [
        ("anthropic/fail-404", openai.NotFoundError, "model_not_found"),
        ("anthropic/fail-context", openai.BadRequestError, "context_length_exceeded"),
        ("anthropic-badkey/claude-ok", openai.AuthenticationError, "invalid_api_key"),
    ],
)
def test_error_classes(
    pclient: openai.OpenAI, model: str, error: type[openai.APIStatusError], code: str
) -> None:
    with pytest.raises(error) as info:
        pclient.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert info.value.code == code
    assert "sk-ant-wrong" not in info.value.response.text
    assert MASTER_KEY not in info.value.response.text


def test_mid_stream_error_event(pclient: openai.OpenAI) -> None:
    stream = pclient.chat.completions.create(
        model="anthropic/error-stream",
        messages=[{"role": "user", "content": "a b c d"}],
        stream=True,
    )
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert "Overloaded" in str(info.value)


def test_error_before_any_content_is_a_plain_http_error(pclient: openai.OpenAI) -> None:
    """Nothing reached the client yet, so the failure is an ordinary 503 the SDK can retry."""
    with pytest.raises(openai.InternalServerError) as info:
        pclient.chat.completions.create(model="anthropic/error-early", messages=[{"role": "user", "content": "a b c d"}], stream=True)
    assert info.value.status_code == 503 and info.value.code == "overloaded"


@pytest.mark.parametrize("model", ["claude", "gemini/gemini-ok", "bedrock/m"])
def test_only_system_messages_is_a_400(pclient: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        pclient.chat.completions.create(model=model, messages=[{"role": "system", "content": "be brief"}])
    assert info.value.body["param"] == "messages"  # type: ignore[index]
