"""OpenAI's Responses API on /v1/responses: passed through to OpenAI and Azure, translated for
every other provider, with conversation state, through the official SDK with strict validation."""

from __future__ import annotations

import json

import httpx2 as httpx
import openai
import pytest
from pydantic import BaseModel

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway
from tests.mock_anthropic import MockAnthropic
from tests.mock_gemini import MockGemini
from tests.mock_openai import MockOpenAI
from tests.mock_responses import USAGE

WEATHER = {
    "type": "function", "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]},
}  # fmt: skip
TRANSLATED = ["anthropic/claude-ok", "gemini/gemini-ok", "cohere/command-r", "bedrock/m"]


def _last(mock: MockOpenAI, path: str) -> dict:
    with mock.state.lock:
        return next(r for r in reversed(mock.state.requests) if r.path.endswith(path)).body


# --- pass-through ------------------------------------------------------------------------------


def test_openai_is_passed_through_with_its_hosted_tools(
    pclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    response = pclient.responses.create(
        model="gpt", input="hi", instructions="be brief",
        tools=[{"type": "web_search"}, WEATHER], tool_choice="auto",
        extra_body={"include": ["reasoning.encrypted_content"]},
    )  # fmt: skip
    assert response.id.startswith("resp_") and response.model == "gpt-ok-2026"
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "web_search_call", "function_call"]
    assert response.usage is not None and response.usage.input_tokens == USAGE["input_tokens"]
    assert response.usage.input_tokens_details.cached_tokens == 3
    sent = _last(mock, "/v1/responses")
    assert sent["model"] == "gpt-ok" and sent["tools"][0] == {"type": "web_search"}
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["instructions"] == "be brief"
    # The id is OpenAI's, so the next turn is OpenAI's to continue: sent by id, not replayed.
    call = next(item for item in response.output if item.type == "function_call")
    follow = pclient.responses.create(
        model="gpt", previous_response_id=response.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
    )  # fmt: skip
    assert follow.output_text == f"native: tool said sunny (after {response.id})"
    sent = _last(mock, "/v1/responses")
    assert sent["previous_response_id"] == response.id and len(sent["input"]) == 1
    assert pclient.responses.retrieve(follow.id).output_text == follow.output_text


def test_openai_stream_relays_every_event_unchanged(pclient: openai.OpenAI) -> None:
    raw = httpx.post(
        f"{pclient.base_url}responses",
        json={"model": "gpt", "input": "one two", "stream": True},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        timeout=10,
    )
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in raw.text.split("\n\n") if f]
    kinds = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "data: [DONE]" not in raw.text  # Responses streams end with their final event
    numbers = [json.loads(f.split("\ndata: ", 1)[1])["sequence_number"] for f in frames]
    assert numbers == list(range(len(frames)))
    with pclient.responses.stream(model="gpt", input="one two") as stream:
        final = stream.get_final_response()
    assert final.output_text == "native: one two "


def test_azure_is_passed_through(pclient: openai.OpenAI, mock: MockOpenAI) -> None:
    response = pclient.responses.create(model="azure/my-gpt4o", input="hi")
    assert response.output_text == "native: hi"
    with mock.state.lock:
        sent = mock.state.requests[-1]
    assert sent.path == "/openai/deployments/my-gpt4o/responses"


# --- translated ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", TRANSLATED)
def test_every_other_provider_answers_text_and_streams(pclient: openai.OpenAI, model: str) -> None:
    response = pclient.responses.create(model=model, input="hi", max_output_tokens=50)
    assert response.status == "completed" and response.output_text.startswith("echo")
    assert response.output[-1].type == "message" and response.output[-1].id.startswith("msg_")
    assert response.usage is not None and response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    with pclient.responses.stream(model=model, input="hi", max_output_tokens=50) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text.strip() == response.output_text.strip()  # mocks stream by words
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed" and "response.output_text.delta" in kinds
    assert final.usage is not None and final.usage.output_tokens > 0


def test_translated_request_reaches_the_provider_as_its_own(
    pclient: openai.OpenAI, anthropic_mock: MockAnthropic
) -> None:
    pclient.responses.create(
        model="anthropic/claude-ok", instructions="be brief", temperature=0.2,
        max_output_tokens=64, reasoning={"effort": "low"},
        input=[
            {"role": "developer", "content": "answer in French"},
            {"role": "user", "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            ]},
        ],
    )  # fmt: skip
    sent = anthropic_mock.state.last().body
    assert "be brief" in json.dumps(sent["system"]) and "answer in French" in json.dumps(
        sent["system"]
    )
    # reasoning.effort is mapped like chat's reasoning_effort (a thinking budget, room above it)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert sent["max_tokens"] == 1024 + 1024 and sent["temperature"] == 0.2
    user = sent["messages"][-1]["content"]
    assert user[0] == {"type": "text", "text": "what is this?"}
    assert user[1]["type"] == "image" and user[1]["source"]["media_type"] == "image/png"


@pytest.mark.parametrize("model", ["anthropic/claude-agent", "gemini/gemini-3-pro"])
@pytest.mark.parametrize("stream", [False, True])
def test_tools_then_the_function_output_turn(
    pclient: openai.OpenAI, model: str, stream: bool
) -> None:
    if stream:
        with pclient.responses.stream(model=model, input="weather?", tools=[WEATHER]) as events:
            first = events.get_final_response()
    else:
        first = pclient.responses.create(model=model, input="weather?", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"} and calls[0].id.startswith("fc_")
    second = pclient.responses.create(
        model=model, previous_response_id=first.id, tools=[WEATHER],
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}],
    )  # fmt: skip
    assert second.previous_response_id == first.id
    assert second.output_text.startswith("results:") and "sunny" in second.output_text


def test_parallel_tool_calls(pclient: openai.OpenAI) -> None:
    for model in ("anthropic/claude-tools", "gemini/gemini-tools"):
        response = pclient.responses.create(model=model, input="weather and time?", tools=[WEATHER])
        calls = [item for item in response.output if item.type == "function_call"]
        assert [c.name for c in calls] == ["get_weather", "get_time"], model
        assert len({c.call_id for c in calls}) == 2
        with pclient.responses.stream(model=model, input="weather?", tools=[WEATHER]) as events:
            final = events.get_final_response()
        streamed = [item for item in final.output if item.type == "function_call"]
        assert [(c.name, json.loads(c.arguments)) for c in streamed] == [
            (c.name, json.loads(c.arguments)) for c in calls
        ]


class Weather(BaseModel):
    city: str
    temp_c: int


def test_structured_output_with_parse(pclient: openai.OpenAI, anthropic_mock: MockAnthropic) -> None:
    parsed = pclient.responses.parse(model="anthropic/claude-ok", input="weather?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", temp_c=21)
    sent = anthropic_mock.state.last().body
    assert sent["tool_choice"] == {"type": "tool", "name": "json_response"}


def test_reasoning_comes_back_as_reasoning_items(pclient: openai.OpenAI) -> None:
    response = pclient.responses.create(model="anthropic/claude-think", input="hi")
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Let me think."
    with pclient.responses.stream(model="gemini/gemini-think", input="hi") as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert "response.reasoning_summary_text.delta" in kinds
    assert final.output[0].type == "reasoning" and final.output_text == "echo: hi"


def test_incomplete_at_max_output_tokens(pclient: openai.OpenAI) -> None:
    response = pclient.responses.create(model="anthropic/claude-max", input="hi")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


# --- conversation state ------------------------------------------------------------------------


def test_a_chain_moves_across_providers(
    pclient: openai.OpenAI, mock: MockOpenAI, anthropic_mock: MockAnthropic, gemini_mock: MockGemini
) -> None:
    one = pclient.responses.create(model="gemini/gemini-ok", input="first")
    two = pclient.responses.create(model="anthropic/claude-ok", input="second",
                                   previous_response_id=one.id)  # fmt: skip
    sent = anthropic_mock.state.last().body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert "echo: first" in json.dumps(sent[1]) and two.output_text == "echo: second"
    # To OpenAI, a conversation it never saw is sent whole, not by an id it does not know.
    three = pclient.responses.create(model="gpt", input="third", previous_response_id=two.id)
    native = _last(mock, "/v1/responses")
    assert "previous_response_id" not in native
    assert [i.get("role") for i in native["input"]] == ["user", "assistant", "user", "assistant", "user"]
    # And OpenAI's own response continues on Anthropic from what the gateway kept of it.
    pclient.responses.create(model="anthropic/claude-ok", input="fourth",
                             previous_response_id=three.id)  # fmt: skip
    assert len(anthropic_mock.state.last().body["messages"]) == 7


def _cannot_continue(client: openai.OpenAI, response_id: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="anthropic/claude-ok", input="x", previous_response_id=response_id)
    assert caught.value.code == "previous_response_not_found"


def test_retrieve_input_items_and_delete(pclient: openai.OpenAI) -> None:
    made = pclient.responses.create(
        model="anthropic/claude-ok", input=[{"role": "user", "content": "a"},
                                            {"role": "user", "content": "b"}],
    )  # fmt: skip
    got = pclient.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    items = pclient.responses.input_items.list(made.id, order="asc")
    assert [item.content[0].text for item in items.data] == ["a", "b"]  # type: ignore[union-attr]
    deleted = pclient.responses.delete(made.id)
    assert deleted is None
    with pytest.raises(openai.NotFoundError):
        pclient.responses.retrieve(made.id)
    _cannot_continue(pclient, made.id)


def test_deleting_a_native_response_deletes_it_at_openai_too(
    pclient: openai.OpenAI, mock: MockOpenAI
) -> None:
    """The id of a response OpenAI answered is OpenAI's, and so is its stored copy: a DELETE
    through the gateway reaches OpenAI (with the provider's key), then forgets the gateway's
    copy. If OpenAI refuses, nothing is forgotten and the client gets the error to retry."""
    made = pclient.responses.create(model="gpt", input="hi")
    assert made.id in mock.responses_api.stored
    assert pclient.responses.delete(made.id) is None
    assert made.id not in mock.responses_api.stored
    with mock.state.lock:
        sent = next(r for r in reversed(mock.state.requests) if r.path.endswith(f"/v1/responses/{made.id}"))
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    with pytest.raises(openai.NotFoundError):
        pclient.responses.retrieve(made.id)
    kept = pclient.responses.create(model="gpt", input="again")
    mock.responses_api.refuse_deletes = True
    try:
        with pytest.raises(openai.APIStatusError) as refused:
            pclient.responses.delete(kept.id)
        assert refused.value.status_code >= 500
        assert UPSTREAM_KEY not in refused.value.response.text
    finally:
        mock.responses_api.refuse_deletes = False
    assert pclient.responses.retrieve(kept.id).id == kept.id
    assert kept.id in mock.responses_api.stored
    # One OpenAI no longer has (deleted there directly) is still deleted here.
    mock.responses_api.stored.pop(kept.id)
    assert pclient.responses.delete(kept.id) is None
    with pytest.raises(openai.NotFoundError):
        pclient.responses.retrieve(kept.id)


def test_a_refusal_comes_back_as_a_refusal_part(client: openai.OpenAI) -> None:
    """A chat provider's `refusal` (no content) is a message whose part is a refusal, whole and
    streamed (response.refusal.delta / .done), as OpenAI's own Responses API gives it."""
    made = client.responses.create(model="local/refuse", input="How do I pick a lock?")
    (message,) = made.output
    assert message.type == "message"
    assert [(p.type, getattr(p, "refusal", None)) for p in message.content] == [
        ("refusal", "I can't help with that.")
    ]
    assert made.output_text == ""
    kinds = []
    with client.responses.stream(model="local/refuse", input="How do I pick a lock?") as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    assert [p.type for p in final.output[0].content] == ["refusal"]  # type: ignore[union-attr]
    assert final.output[0].content[0].refusal == "I can't help with that."  # type: ignore[union-attr]
    assert kinds.count("response.refusal.delta") == 3
    assert kinds[-4:] == ["response.refusal.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip


def test_store_false_keeps_nothing(pclient: openai.OpenAI) -> None:
    made = pclient.responses.create(model="anthropic/claude-ok", input="secret", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        pclient.responses.retrieve(made.id)


def test_a_key_cannot_continue_or_read_another_keys_response(providers_gateway: Gateway) -> None:
    admin = {"authorization": f"Bearer {MASTER_KEY}"}

    def key() -> str:
        made = httpx.post(f"{providers_gateway.url}/admin/keys", json={}, headers=admin, timeout=10)
        assert made.status_code == 200, made.text
        return str(made.json()["key"])

    a, b = (openai.OpenAI(base_url=providers_gateway.v1, api_key=k, max_retries=0)
            for k in (key(), key()))  # fmt: skip
    made = a.responses.create(model="anthropic/claude-ok", input="mine")
    assert a.responses.retrieve(made.id).id == made.id
    with pytest.raises(openai.NotFoundError):
        b.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        b.responses.delete(made.id)
    _cannot_continue(b, made.id)


# --- input tokens, errors --------------------------------------------------------------------


def test_input_tokens_are_asked_of_openai_else_counted(pclient: openai.OpenAI, mock: MockOpenAI) -> None:
    """OpenAI has the endpoint: its own count comes back (the mock says 42), the model patched
    to the target's. A provider that fails to answer, or one without it, is counted here:
    exactly for OpenAI's models, as an estimate for others."""
    raw = pclient.responses.input_tokens.with_raw_response.count(model="gpt", input="hello there")
    assert raw.parse().input_tokens == 42 and raw.headers["x-gateway-token-count"] == "provider"
    sent = _last(mock, "/v1/responses/input_tokens")
    assert sent["model"] == "gpt-ok" and sent["input"] == "hello there"
    down = pclient.responses.input_tokens.with_raw_response.count(model="openai/fail-500", input="hello there")
    assert 0 < down.parse().input_tokens != 42  # counted here ("fail-500" is no model it knows)
    assert down.headers["x-gateway-token-count"] == "estimate"
    other = pclient.responses.input_tokens.with_raw_response.count(
        model="anthropic/claude-ok", input="hello there"
    )
    assert other.headers["x-gateway-token-count"] == "estimate"


def test_bad_input_is_a_400_naming_the_path(pclient: openai.OpenAI) -> None:
    cases = [
        ([{"role": "user", "content": "ok"}, {"type": "bogus"}], "input[1].type"),
        ([{"role": "user", "content": [{"type": "input_txt", "text": "x"}]}], "input[0].content[0].type"),
        ([{"role": "user", "content": "x", "colour": "red"}], "input[0].colour"),
        ([{"type": "function_call_output", "output": "x"}], "input[0].call_id"),
    ]
    for items, path in cases:
        with pytest.raises(openai.BadRequestError) as caught:
            pclient.responses.create(model="anthropic/claude-ok", input=items)  # type: ignore[arg-type]
        assert caught.value.param == path, caught.value.body
    with pytest.raises(openai.BadRequestError) as caught:
        pclient.responses.create(model="anthropic/claude-ok", input="x", extra_body={"colour": 1})
    assert caught.value.param == "colour" and caught.value.code == "unknown_parameter"


def test_a_hosted_tool_is_refused_where_it_cannot_run(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        pclient.responses.create(model="anthropic/claude-ok", input="x", tools=[{"type": "web_search"}])
    assert caught.value.code == "unsupported_tool" and "web_search" in caught.value.message


def test_provider_errors_keep_openais_shape(pclient: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError):
        pclient.responses.create(model="anthropic/fail-429", input="x")
    with pytest.raises(openai.RateLimitError):
        pclient.responses.create(model="openai/fail-429", input="x")


def test_a_keys_limits_apply(providers_gateway: Gateway) -> None:
    admin = {"authorization": f"Bearer {MASTER_KEY}"}
    made = httpx.post(f"{providers_gateway.url}/admin/keys", json={"rpm_limit": 1}, headers=admin,
                      timeout=10)  # fmt: skip
    with openai.OpenAI(base_url=providers_gateway.v1, api_key=made.json()["key"], max_retries=0) as c:
        c.responses.create(model="anthropic/claude-ok", input="one")
        with pytest.raises(openai.RateLimitError) as caught:
            c.responses.create(model="gpt", input="two")
    assert caught.value.code == "rate_limit_exceeded"
