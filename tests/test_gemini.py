"""OpenAI clients talking to Gemini models through the gateway (strict openai SDK)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.mock_gemini import GEMINI_KEY, MockGemini

TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather", "strict": True,
     "parameters": {"type": "object", "additionalProperties": False, "$schema": "http://json-schema.org/draft-07/schema#",
                    "properties": {"city": {"type": ["string", "null"], "examples": ["Paris"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]  # fmt: skip
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def test_text_system_and_config(pclient: openai.OpenAI, gemini_mock: MockGemini) -> None:
    completion = pclient.chat.completions.create(
        model="gemini/gemini-ok",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "user", "content": "there"},
        ],
        temperature=0.4, top_p=0.9, max_tokens=64, stop=["END"], seed=3,
        response_format={"type": "json_object"},
    )  # fmt: skip
    assert completion.choices[0].message.content == "echo: hi there"
    assert completion.choices[0].finish_reason == "stop"
    usage = completion.usage
    assert usage is not None
    # thoughts (4) are outside candidatesTokenCount here: 12 + 6 < 22, so they are added.
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 10, 22)
    assert (
        usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 4
    )
    assert (
        usage.completion_tokens_details is not None
        and usage.completion_tokens_details.reasoning_tokens == 4
    )
    sent = gemini_mock.state.last()
    assert sent.path == "/v1beta/models/gemini-ok:generateContent"
    assert sent.headers["x-goog-api-key"] == GEMINI_KEY
    assert sent.body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "hi"}, {"text": "there"}]}]
    assert sent.body["generationConfig"] == {
        "temperature": 0.4, "topP": 0.9, "maxOutputTokens": 64, "stopSequences": ["END"], "seed": 3,
        "responseMimeType": "application/json",
    }  # fmt: skip


def test_images(pclient: openai.OpenAI, gemini_mock: MockGemini) -> None:
    pclient.chat.completions.create(
        model="gemini/gemini-ok",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a/cat.webp?x=1"}},
        ]}],
    )  # fmt: skip
    parts = gemini_mock.state.last().body["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": PNG}}
    assert parts[2] == {
        "fileData": {"mimeType": "image/webp", "fileUri": "https://example.com/a/cat.webp?x=1"}
    }
    with pytest.raises(openai.BadRequestError):
        pclient.chat.completions.create(
            model="gemini/gemini-ok",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/image"}}
                    ],
                }
            ],
        )


def test_tools_schema_cleaned_and_calls_returned(
    pclient: openai.OpenAI, gemini_mock: MockGemini
) -> None:
    completion = pclient.chat.completions.create(
        model="gemini/gemini-tools",
        messages=[{"role": "user", "content": "weather and time?"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[1].function.arguments) == {"tz": "CET"}  # type: ignore[union-attr]
    assert len({c.id for c in calls}) == 2 and all(c.id.startswith("call_") for c in calls)
    sent = gemini_mock.state.last().body
    params = sent["tools"][0]["functionDeclarations"][0]["parameters"]
    assert params == {
        "type": "object",
        "properties": {"city": {"type": "string", "nullable": True}},
        "required": ["city"],
    }
    assert sent["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    # The same response read again gives the same ids.
    again = pclient.chat.completions.create(
        model="gemini/gemini-tools", messages=[{"role": "user", "content": "x"}], tools=TOOLS
    )
    assert [c.id for c in again.choices[0].message.tool_calls or ()] == [c.id for c in calls]


def test_tool_results_round_trip(pclient: openai.OpenAI, gemini_mock: MockGemini) -> None:
    completion = pclient.chat.completions.create(
        model="gemini/gemini-ok",
        messages=[
            {"role": "user", "content": "weather and time?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_x1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_x2", "type": "function", "function": {"name": "get_time", "arguments": '{"tz":"CET"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_x1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_x2", "content": "noon"},
        ],
        tools=TOOLS,
    )  # fmt: skip
    assert (
        completion.choices[0].message.content
        == 'results: {"content": "sunny"}; {"content": "noon"}'
    )
    contents = gemini_mock.state.last().body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}}
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}},
    ]


def test_unknown_tool_call_id_is_a_400(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        pclient.chat.completions.create(
            model="gemini/gemini-ok",
            messages=[
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "nope", "content": "r"},
            ],
        )
    assert info.value.body["param"] == "messages[1].tool_call_id"  # type: ignore[index]


def test_stream_text_and_usage(pclient: openai.OpenAI) -> None:
    chunks = list(
        pclient.chat.completions.create(
            model="gemini/gemini-ok", messages=[{"role": "user", "content": "one two three"}],
            stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert [c.choices[0].delta.role for c in chunks if c.choices and c.choices[0].delta.role] == [
        "assistant"
    ]
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert (
        chunks[-1].choices == []
        and chunks[-1].usage is not None
        and chunks[-1].usage.total_tokens == 22
    )


def test_stream_tool_calls(pclient: openai.OpenAI) -> None:
    with pclient.chat.completions.stream(
        model="gemini/gemini-tools", messages=[{"role": "user", "content": "x"}], tools=TOOLS
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("get_weather", {"city": "Paris"}),
        ("get_time", {"tz": "CET"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_thoughts_are_reasoning_not_content(
    pclient: openai.OpenAI, gemini_mock: MockGemini
) -> None:
    completion = pclient.chat.completions.create(
        model="gemini/gemini-think",
        messages=[{"role": "user", "content": "x"}],
        reasoning_effort="low",
    )
    assert completion.choices[0].message.content == "echo: x"
    assert completion.choices[0].message.reasoning_content == "Thinking it over."  # type: ignore[attr-defined]
    assert gemini_mock.state.last().body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 1024,
        "includeThoughts": True,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_safety(pclient: openai.OpenAI, stream: bool) -> None:
    for model in ("gemini/gemini-blocked", "gemini/gemini-safety"):
        if stream:
            chunks = list(
                pclient.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": "x"}], stream=True
                )
            )
            reasons = [
                c.choices[0].finish_reason
                for c in chunks
                if c.choices and c.choices[0].finish_reason
            ]
        else:
            completion = pclient.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "x"}]
            )
            reasons = [completion.choices[0].finish_reason]
            assert completion.choices[0].message.content is None
        assert reasons == ["content_filter"]


def test_errors(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        pclient.chat.completions.create(
            model="gemini/fail-429", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as busy:
        pclient.chat.completions.create(
            model="gemini/fail-503", messages=[{"role": "user", "content": "x"}]
        )
    assert busy.value.status_code == 503
    with pytest.raises(openai.NotFoundError) as missing:
        pclient.chat.completions.create(
            model="gemini/fail-404", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError) as bad_key:
        pclient.chat.completions.create(
            model="gemini-badkey/gemini-ok", messages=[{"role": "user", "content": "x"}]
        )
    assert bad_key.value.code == "invalid_api_key"
    assert "AIzaWrong" not in bad_key.value.response.text


@pytest.mark.parametrize("model", ["gemini/error-stream", "gemini/cut-stream"])
def test_stream_failures_end_with_error_event(pclient: openai.OpenAI, model: str) -> None:
    stream = pclient.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a b c d"}], stream=True
    )
    with pytest.raises(openai.APIError):
        list(stream)


def test_max_tokens_is_length(pclient: openai.OpenAI) -> None:
    completion = pclient.chat.completions.create(model="gemini/gemini-max", messages=[{"role": "user", "content": "x"}], max_tokens=3)
    assert completion.choices[0].finish_reason == "length"
    chunks = list(pclient.chat.completions.create(model="gemini/gemini-max", messages=[{"role": "user", "content": "x"}], stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]


def test_thought_signatures_round_trip(pclient: openai.OpenAI, gemini_mock: MockGemini) -> None:
    """Gemini 3 refuses a function call sent back without its thought signature."""
    first = pclient.chat.completions.create(
        model="gemini/gemini-3-pro", messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
    )
    call = (first.choices[0].message.tool_calls or [])[0]
    assert call.id.endswith("__thought__c2lnLTE=")
    second = pclient.chat.completions.create(
        model="gemini/gemini-3-pro",
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
        ],
        tools=TOOLS,
    )
    assert second.choices[0].message.content == 'results: {"content": "sunny"}'
    sent = gemini_mock.state.last().body["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == "c2lnLTE=" and sent["functionCall"]["name"] == "get_weather"
