"""Chat completions through the gateway, driven by the official openai SDK in strict mode."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.harness import UPSTREAM_KEY, Gateway
from tests.mock_openai import MockOpenAI

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]


def test_non_stream_roundtrip(client: openai.OpenAI, mock: MockOpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chat-default",
        messages=MESSAGES,  # type: ignore[arg-type]
        temperature=0.2,
        extra_body={"vendor_extra": {"keep": [1, 2]}, "top_k": 5},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hi there"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert raw.headers["x-gateway-provider"] == "openai"
    assert raw.headers["x-gateway-model"] == "gpt-ok"
    assert raw.headers["x-request-id"]
    sent = mock.state.last()
    assert sent.body["model"] == "gpt-ok"  # alias patched to the upstream model
    assert sent.body["vendor_extra"] == {"keep": [1, 2]} and sent.body["top_k"] == 5
    assert sent.body["temperature"] == 0.2
    assert sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_client_request_id_is_echoed(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="chat-default",
        messages=MESSAGES,
        extra_headers={"x-request-id": "req-abc-123"},  # type: ignore[arg-type]
    )
    assert raw.headers["x-request-id"] == "req-abc-123"


def test_stream_with_usage(client: openai.OpenAI, mock: MockOpenAI) -> None:
    stream = client.chat.completions.create(
        model="chat-default",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: hi there "
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 11


def test_stream_without_usage_hides_the_accounting_chunk(
    client: openai.OpenAI, mock: MockOpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(model="chat-default", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
    )
    assert all(c.choices for c in chunks), "the usage chunk the gateway asked for leaked"
    assert all(c.usage is None for c in chunks)
    # ...but the gateway asked upstream for usage, to account for it.
    assert mock.state.last().body["stream_options"] == {"include_usage": True}


def test_tool_calls_non_stream(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model="openai/tools-x", messages=MESSAGES)  # type: ignore[arg-type]
    calls = completion.choices[0].message.tool_calls
    assert completion.choices[0].finish_reason == "tool_calls"
    assert calls is not None and [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]


def test_tool_calls_stream_accumulate(client: openai.OpenAI) -> None:
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    with client.chat.completions.stream(
        model="openai/tools-x",
        messages=MESSAGES,
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None
    assert [(c.id, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr]
        ("call_a1", {"city": "Paris"}),
        ("call_b2", {"tz": "CET"}),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_loadbalance_follows_weights(client: openai.OpenAI, mock: MockOpenAI) -> None:
    seen = []
    for _ in range(40):
        raw = client.chat.completions.with_raw_response.create(model="balanced", messages=MESSAGES)  # type: ignore[arg-type]
        seen.append(raw.headers["x-gateway-model"])
    assert seen.count("gpt-a") == 30 and seen.count("gpt-b") == 10


def test_direct_provider_prefix(client: openai.OpenAI, mock: MockOpenAI) -> None:
    client.chat.completions.create(model="openai/gpt-direct", messages=MESSAGES)  # type: ignore[arg-type]
    assert mock.state.last().body["model"] == "gpt-direct"


def test_groq_nested_usage_is_normalised(client: openai.OpenAI, mock: MockOpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="groq/llama-3.1-8b-instant",
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage and with_usage[-1].usage.completion_tokens == 7  # type: ignore[union-attr]


@pytest.mark.parametrize("prefix", ["/v1", ""])
def test_legacy_completions(gateway: Gateway, prefix: str) -> None:
    with openai.OpenAI(
        base_url=gateway.url + prefix, api_key="gw-master-key-for-tests", max_retries=0,
        _strict_response_validation=True,
    ) as c:  # fmt: skip
        done = c.completions.create(model="chat-default", prompt="tell me")
        assert done.choices[0].text == "once upon a time"
    # The SDK's Completion type rejects the `finish_reason: null` that real legacy streams send,
    # so the stream is checked without strict validation.
    with openai.OpenAI(
        base_url=gateway.url + prefix, api_key="gw-master-key-for-tests", max_retries=0
    ) as c:
        parts = list(c.completions.create(model="chat-default", prompt="x", stream=True))
        assert "".join(p.choices[0].text for p in parts) == "once upon a time"
        assert parts[-1].choices[0].finish_reason == "stop"


def test_object_tool_choice_and_response_format_pass_through(
    client: openai.OpenAI, mock: MockOpenAI
) -> None:
    tools: Any = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    client.chat.completions.create(
        model="chat-default", messages=MESSAGES, tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "f"}}, response_format=fmt,
    )  # fmt: skip
    sent = mock.state.last().body
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "f"}}
    assert sent["response_format"] == fmt
