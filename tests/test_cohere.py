"""OpenAI clients talking to Cohere's v2 chat and embed APIs through the gateway."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.harness import MASTER_KEY, Gateway
from tests.mock_cohere import COHERE_KEY, MockCohere

TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
]  # fmt: skip


def test_chat_text(pclient: openai.OpenAI, cohere_mock: MockCohere) -> None:
    completion = pclient.chat.completions.create(
        model="cohere/command-r",
        messages=[{"role": "developer", "content": "be brief"}, {"role": "user", "content": "hi"}],
        top_p=0.5,
        max_tokens=20,
        stop="END",
    )
    assert completion.choices[0].message.content == "echo: hi"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 70
    sent = cohere_mock.state.last()
    assert sent.path == "/v2/chat"
    assert sent.headers["authorization"] == f"Bearer {COHERE_KEY}"
    assert sent.body["messages"][0] == {"role": "system", "content": "be brief"}
    assert (
        sent.body["p"] == 0.5
        and sent.body["max_tokens"] == 20
        and sent.body["stop_sequences"] == ["END"]
    )


def test_stream_options_never_reach_cohere(pclient: openai.OpenAI) -> None:
    chunks = list(
        pclient.chat.completions.create(
            model="cohere/command-r", messages=[{"role": "user", "content": "a b"}],
            stream=True, stream_options={"include_usage": True},
        )
    )  # fmt: skip
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: a b "
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_tools_and_results(pclient: openai.OpenAI, cohere_mock: MockCohere) -> None:
    completion = pclient.chat.completions.create(
        model="cohere/command-tools",
        messages=[{"role": "user", "content": "x"}],
        tools=TOOLS,
        tool_choice="required",
    )
    calls = completion.choices[0].message.tool_calls or []
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name) for c in calls] == [
        ("get_weather_x1", "get_weather"),
        ("get_time_x2", "get_time"),
    ]  # type: ignore[union-attr]
    assert cohere_mock.state.last().body["tool_choice"] == "REQUIRED"
    with pclient.chat.completions.stream(
        model="cohere/command-tools", messages=[{"role": "user", "content": "x"}], tools=TOOLS
    ) as stream:
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in streamed] == [
        {"city": "Paris"},
        {"tz": "CET"},
    ]  # type: ignore[union-attr]
    pclient.chat.completions.create(
        model="cohere/command-r",
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "get_weather_x1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "get_weather_x1", "content": "sunny"},
        ],
        tools=TOOLS,
    )  # fmt: skip
    sent = cohere_mock.state.last().body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == "get_weather_x1"
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": "get_weather_x1"}


@pytest.fixture
def loose(providers_gateway: Gateway) -> Iterator[openai.OpenAI]:
    """Strict validation rejects base64 embeddings even from OpenAI itself (an SDK limit)."""
    with openai.OpenAI(base_url=providers_gateway.v1, api_key=MASTER_KEY, max_retries=0) as c:
        yield c


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_embeddings(loose: openai.OpenAI, cohere_mock: MockCohere, fmt: str) -> None:
    raw = loose.embeddings.create(
        model="cohere/embed-v4.0", input=["a", "b"], encoding_format=fmt,  # type: ignore[arg-type]
        extra_body={"input_type": "search_query"},
    )  # fmt: skip
    vectors = [d.embedding for d in raw.data]
    if fmt == "base64":
        vectors = [list(struct.unpack("<3f", base64.b64decode(v))) for v in vectors]  # type: ignore[arg-type]
    assert vectors == [[0.25, -0.5, 2.0], [1.25, -0.5, 2.0]]
    assert raw.usage.prompt_tokens == 6
    sent = cohere_mock.state.last().body
    assert sent["input_type"] == "search_query" and sent["embedding_types"] == [fmt]


def test_embeddings_default_through_the_sdk(loose: openai.OpenAI) -> None:
    # The SDK asks for base64 and decodes it back to floats on its own.
    result = loose.embeddings.create(model="cohere/embed-v4.0", input="a")
    assert result.data[0].embedding == [0.25, -0.5, 2.0]


def test_errors(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as limited:
        pclient.chat.completions.create(
            model="cohere/fail-429", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "3"
    with pytest.raises(openai.AuthenticationError) as bad:
        pclient.chat.completions.create(
            model="cohere/fail-498", messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.code == "invalid_api_key"


def test_error_at_stream_end(pclient: openai.OpenAI) -> None:
    stream = pclient.chat.completions.create(model="cohere/error-stream", messages=[{"role": "user", "content": "a b"}], stream=True)
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert "internal server error" in str(info.value)


def test_images_and_multi_turn(pclient: openai.OpenAI, cohere_mock: MockCohere) -> None:
    pclient.chat.completions.create(
        model="cohere/command-a-vision",
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        ],
    )  # fmt: skip
    sent = cohere_mock.state.last().body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[2]["content"] == [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]


def test_openai_strict_becomes_strict_tools(pclient: openai.OpenAI, cohere_mock: MockCohere) -> None:
    """Cohere v2's function has only name, description and parameters (it answers 422 to any
    other member); OpenAI's per-function `strict` maps to the top-level `strict_tools`."""
    strict_tools = [{**tool, "function": {**tool["function"], "strict": True}} for tool in TOOLS]
    pclient.chat.completions.create(
        model="cohere/command-tools", messages=[{"role": "user", "content": "x"}], tools=strict_tools  # type: ignore[arg-type]
    )
    sent = cohere_mock.state.last().body
    assert sent["strict_tools"] is True
    assert all(set(tool["function"]) <= {"name", "description", "parameters"} for tool in sent["tools"])
    pclient.chat.completions.create(
        model="cohere/command-tools", messages=[{"role": "user", "content": "x"}], tools=TOOLS
    )
    sent = cohere_mock.state.last().body
    assert "strict_tools" not in sent and all("strict" not in tool["function"] for tool in sent["tools"])
