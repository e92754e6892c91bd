"""OpenAI clients talking to AWS Bedrock's Converse API through the gateway."""

from __future__ import annotations

import json
from typing import Any

import httpx2 as httpx
import openai
import pytest
from botocore.eventstream import EventStreamBuffer

from gateway.errors import UpstreamError
from gateway.providers.bedrock import SigV4Signer
from gateway.providers.bedrock.eventstream import EventStreamDecoder, encode
from tests.mock_bedrock import ACCESS_KEY, BEDROCK_TOKEN, SECRET_KEY, MockBedrock

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
TOOLS: Any = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
]  # fmt: skip
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


@pytest.mark.parametrize("provider", ["bedrock", "bedrock-sigv4"])
def test_converse_text(pclient: openai.OpenAI, bedrock_mock: MockBedrock, provider: str) -> None:
    completion = pclient.chat.completions.create(
        model=f"{provider}/{MODEL}",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": [
            {"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}],
        max_tokens=100, temperature=0.1, stop=["END"], extra_body={"top_k": 5},
    )  # fmt: skip
    assert completion.choices[0].message.content == "echo: hi <image>"
    usage = completion.usage
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (17, 8)
    sent = bedrock_mock.state.last()
    assert sent.path == f"/model/{MODEL}/converse"  # the ':' travels percent-encoded
    assert sent.body["system"] == [{"text": "be brief"}]
    assert sent.body["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": PNG}}
    }
    assert sent.body["inferenceConfig"] == {
        "maxTokens": 100,
        "temperature": 0.1,
        "stopSequences": ["END"],
    }
    assert sent.body["additionalModelRequestFields"] == {"top_k": 5}
    if provider == "bedrock":
        assert sent.headers["authorization"] == f"Bearer {BEDROCK_TOKEN}"
    else:
        assert sent.headers["authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
        )
        assert "/eu-west-1/bedrock/aws4_request" in sent.headers["authorization"]


def test_tools_and_results(pclient: openai.OpenAI, bedrock_mock: MockBedrock) -> None:
    completion = pclient.chat.completions.create(
        model="bedrock-sigv4/tools-model",
        messages=[{"role": "user", "content": "x"}],
        tools=TOOLS,
        tool_choice="required",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Checking."
    assert [(c.id, json.loads(c.function.arguments)) for c in choice.message.tool_calls or []] == [  # type: ignore[union-attr]
        ("tooluse_A1", {"city": "Paris"}),
        ("tooluse_B2", {"tz": "CET"}),
    ]
    sent = bedrock_mock.state.last().body
    assert sent["toolConfig"]["toolChoice"] == {"any": {}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"] == {
        "city": {"type": "string"}
    }
    follow_up = pclient.chat.completions.create(
        model="bedrock/m",
        messages=[
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call.1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "call.1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
        ],
    )  # fmt: skip
    assert follow_up.choices[0].message.content == "results: sunny; noon"
    sent = bedrock_mock.state.last().body
    assert sent["messages"][1]["content"][1] == {
        "toolUse": {"toolUseId": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
    }
    assert sent["messages"][1]["content"][2]["toolUse"]["input"] == {}  # required even when empty
    assert sent["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "sunny"}]}},
        {"toolResult": {"toolUseId": "call_2", "content": [{"text": "noon"}]}},
    ]
    assert [t["toolSpec"]["name"] for t in sent["toolConfig"]["tools"]] == ["get_time", "get_weather"]


def test_stream_binary_event_stream(pclient: openai.OpenAI, bedrock_mock: MockBedrock) -> None:
    chunks = list(pclient.chat.completions.create(
        model=f"bedrock-sigv4/{MODEL}", messages=[{"role": "user", "content": "one two"}], stream=True,
        stream_options={"include_usage": True}))  # fmt: skip
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: one two "
    )
    assert [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 25
    assert bedrock_mock.state.last().path == f"/model/{MODEL}/converse-stream"
    with pclient.chat.completions.stream(
        model="bedrock/tools-model", messages=[{"role": "user", "content": "x"}], tools=TOOLS
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {"tz": "CET"}]  # type: ignore[union-attr]


def test_errors(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        pclient.chat.completions.create(
            model="bedrock/fail-throttle", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as long:
        pclient.chat.completions.create(
            model="bedrock/fail-long", messages=[{"role": "user", "content": "x"}]
        )
    assert long.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as link:
        pclient.chat.completions.create(
            model="bedrock/m",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        )
    assert link.value.code == "invalid_image_url"
    stream = pclient.chat.completions.create(
        model="bedrock/error-stream", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    with pytest.raises(openai.APIError) as cut:
        list(stream)
    assert "Too many tokens" in str(cut.value)


def test_event_stream_codec_agrees_with_botocore() -> None:
    frame = encode(
        {":event-type": "contentBlockDelta", ":message-type": "event"}, b'{"delta":{"text":"hi"}}'
    )
    buffer = EventStreamBuffer()
    buffer.add_data(frame)
    (message,) = list(buffer)
    assert (
        message.headers[":event-type"] == "contentBlockDelta"
        and message.payload == b'{"delta":{"text":"hi"}}'
    )
    decoder = EventStreamDecoder()
    assert decoder.feed(frame[:10]) == []
    assert [m.payload for m in decoder.feed(frame[10:] + frame)] == [message.payload] * 2
    corrupt = bytearray(frame)
    corrupt[-6] ^= 0xFF
    with pytest.raises(UpstreamError):
        EventStreamDecoder().feed(bytes(corrupt))


def test_mock_refuses_a_wrong_signature(bedrock_mock: MockBedrock) -> None:
    """The SigV4 check above can fail: a signature made with the wrong secret is refused."""
    url = f"{bedrock_mock.url}/model/m/converse"
    body = b'{"messages":[{"role":"user","content":[{"text":"x"}]}]}'
    good = SigV4Signer(ACCESS_KEY, SECRET_KEY, None, "us-east-1").sign(
        url, {"content-type": "application/json"}, body
    )
    bad = SigV4Signer(ACCESS_KEY, "wrong-secret", None, "us-east-1").sign(
        url, {"content-type": "application/json"}, body
    )
    assert httpx.post(url, content=body, headers=good).status_code == 200
    refused = httpx.post(url, content=body, headers=bad)
    assert refused.status_code == 403 and "signature" in refused.json()["message"]
    assert (
        httpx.post(url, content=body + b" ", headers=good).status_code == 403
    )  # the body is signed
