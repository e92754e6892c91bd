"""Guardrails end to end: the real gateway, the openai and anthropic SDKs, the OpenAI mock
(which echoes the last user message, so output guardrails see what the input carried)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, Gateway, start_gateway, write_config
from tests.mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from tests.mock_openai import MODERATION_KEY, MockOpenAI

VIRTUAL_KEY = "sk-gw-guardrails-test-key-0123456789"

CONFIG = """
server: {{master_key: {key}}}
providers:
  openai: {{type: openai-compatible, base_url: "{mock}/v1"}}
  claude: {{type: anthropic, api_key: {anthropic_key}, base_url: "{anthropic}"}}
models:
  - name: claude-guarded
    guardrails: [out-block, out-only]
    targets: [{{provider: claude, model: claude-sonnet-4-5}}]
  - name: chat
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: guarded-out
    guardrails: [out-only]
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: blocky-out
    guardrails: [out-block]
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: capped
    guardrails: [cap]
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: topical
    guardrails: [topics]
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: shadowed
    guardrails: [shadow]
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: vaulted
    guardrails: [vault]
    targets: [{{provider: openai, model: gpt-4o-mini}}]
  - name: safety-judge
    targets: [{{provider: openai, model: safety-judge}}]
  - name: cached
    cache: {{mode: simple}}
    targets: [{{provider: openai, model: gpt-4o-mini}}]
governance:
  keys:
    - {{id: team-a, key: env:TEST_VIRTUAL_KEY, guardrails: codename}}
guardrails:
  input: {{block_pii: true, allow: [support@acme-corp.com]}}
  policies:
    out-only: {{block_pii: true, direction: output}}
    out-block: {{patterns: [{{name: launch_code, regex: "ZX-[0-9]{{6}}"}}], direction: output}}
    cap: {{max_tokens: 50, direction: both}}
    topics: {{block_topics: [violence, weapons], direction: input, block_status: 446}}
    shadow: {{kinds: [credit_card], action: block, mode: shadow, direction: output}}
    vault: {{block_pii: true, restore: true, direction: input}}
    moderated:
      direction: input
      judge: {{url: "{mock}/v1/moderations", api_key: {modkey}, model: omni-moderation-latest}}
    moderated-flag:
      direction: input
      judge: {{url: "{mock}/v1/moderations", api_key: {modkey}, action: flag, categories: [harassment/threatening]}}
    cite-block: {{require_citation: true, citation_action: block, direction: output}}
    cite-flag: {{require_citation: true, direction: output}}
    judged-by-model:
      direction: input
      judge: {{route: safety-judge}}
    judged-answers:
      direction: output
      judge: {{url: "{mock}/v1/moderations", api_key: {modkey}}}
    judged-answers-flag:
      direction: output
      judge: {{url: "{mock}/v1/moderations", api_key: {modkey}, action: flag}}
    judged-answers-down:
      direction: output
      judge: {{url: "http://127.0.0.1:9/v1/moderations", timeout_ms: 500}}
    judge-down-block:
      direction: input
      judge: {{url: "http://127.0.0.1:9/v1/moderations", timeout_ms: 500}}
    judge-down-flag:
      direction: input
      judge: {{url: "http://127.0.0.1:9/v1/moderations", timeout_ms: 500, action: flag}}
    codename: {{patterns: [{{name: codename, words: [bluebird, project nightjar]}}], direction: input}}
"""


@pytest.fixture(scope="module")
def guarded(impl: str, mock: MockOpenAI, anthropic_mock: MockAnthropic) -> Iterator[Gateway]:
    config = write_config(
        CONFIG.format(
            key=MASTER_KEY, mock=mock.url, modkey=MODERATION_KEY,
            anthropic=anthropic_mock.url, anthropic_key=ANTHROPIC_KEY,
        )
    )  # fmt: skip
    gw = start_gateway(impl, ["--config", str(config)], {"TEST_VIRTUAL_KEY": VIRTUAL_KEY})
    yield gw
    gw.stop()


@pytest.fixture
def sdk(guarded: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=guarded.v1, api_key=MASTER_KEY, max_retries=0) as c:
        yield c


def _sent(mock: MockOpenAI) -> dict[str, object]:
    with mock.state.lock:
        return mock.state.requests[-1].body  # type: ignore[no-any-return]


def test_input_pii_is_masked_before_the_provider_sees_it(
    sdk: openai.OpenAI, mock: MockOpenAI
) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="chat",
        messages=[
            {"role": "system", "content": "Write to jane.doe@gmail.com or jane.doe@gmail.com"},
            {
                "role": "user",
                "content": "Call me at (415) 867-5309, my card is 4539 5781 2345 6789.",
            },
        ],
    )
    sent = json.dumps(_sent(mock))
    assert "jane.doe@gmail.com" not in sent and "867-5309" not in sent and "6789" not in sent
    assert "[EMAIL_1] or [EMAIL_1]" in sent  # one value, one placeholder
    assert "[PHONE_1]" in sent and "[CREDIT_CARD_1]" in sent
    header = raw.headers["x-gateway-guardrails"]
    assert header.startswith("input; action=mask; count=4")
    assert "email" in header and "phone" in header and "credit_card" in header
    assert (
        raw.parse().choices[0].message.content
        == "echo: Call me at [PHONE_1], my card is [CREDIT_CARD_1]."
    )


def test_allowlisted_values_and_look_alikes_pass(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    text = "Mail support@acme-corp.com about order 1234567890, build v1.2.3.4 and admin@example.com"
    raw = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": text}]
    )
    assert "x-gateway-guardrails" not in raw.headers
    assert _sent(mock)["messages"] == [{"role": "user", "content": text}]


def test_a_secret_blocks_the_request_with_an_openai_error(
    sdk: openai.OpenAI, mock: MockOpenAI
) -> None:
    before = len(mock.state.requests)
    secret = "sk-proj-" + "Ab3De5Fg7Hj9Kl1Mn3Pq5Rs7Tu9Vw1Xy"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="chat",
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "text", "text": f"my key is {secret}"}]},
            ],
        )
    err = caught.value
    assert err.status_code == 400
    body = err.body
    assert isinstance(body, dict)
    assert body["code"] == "content_filter" and body["type"] == "invalid_request_error"
    assert body["param"] == "messages[2].content[0].text"
    assert (
        body["message"] == "Blocked by guardrail 'input': openai_key in messages[2].content[0].text"
    )
    assert secret not in json.dumps(body)
    assert len(mock.state.requests) == before  # the provider never saw it


def test_tool_arguments_and_embeddings_are_scanned(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="chat",
            messages=[
                {"role": "user", "content": "deploy"},
                {"role": "assistant", "content": None, "tool_calls": [{
                    "id": "c1", "type": "function",
                    "function": {"name": "deploy", "arguments": '{"token": "ghp_aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"}'},
                }]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            ],
        )  # fmt: skip
    assert caught.value.body["param"] == "messages[1].tool_calls[0].function.arguments"  # type: ignore[index]
    sdk.embeddings.create(model="chat", input=["mail bob@corp.io", "plain"])
    assert _sent(mock)["input"] == ["mail [EMAIL_1]", "plain"]


def test_escaped_json_cannot_hide_an_item(guarded: Gateway, mock: MockOpenAI) -> None:
    body = '{"model": "chat", "messages": [{"role": "user", "content": "mail bob\\u0040corp.io"}]}'
    r = httpx.post(
        f"{guarded.v1}/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {MASTER_KEY}", "content-type": "application/json"},
    )
    assert r.status_code == 200
    assert _sent(mock)["messages"] == [{"role": "user", "content": "mail [EMAIL_1]"}]


def test_output_is_masked_whole_and_streamed(sdk: openai.OpenAI) -> None:
    text = "Reach jane.doe@gmail.com or call +44 20 7946 0958 from 10.0.3.17 today"
    masked = "echo: Reach [EMAIL_1] or call [PHONE_1] from [IPV4_1] today"
    whole = sdk.chat.completions.create(
        model="guarded-out", messages=[{"role": "user", "content": text}]
    )
    assert whole.choices[0].message.content == masked
    # The mock streams word by word: the items arrive split across chunks.
    stream = sdk.chat.completions.create(
        model="guarded-out", messages=[{"role": "user", "content": text}], stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces).strip() == masked
    assert finish == "stop" and usage is not None


def test_output_block_withholds_content_and_keeps_usage(sdk: openai.OpenAI) -> None:
    whole = sdk.chat.completions.create(
        model="blocky-out", messages=[{"role": "user", "content": "the code is ZX-123456"}]
    )
    assert whole.choices[0].finish_reason == "content_filter"
    assert whole.choices[0].message.content == ""
    assert whole.usage is not None and whole.usage.total_tokens > 0
    stream = sdk.chat.completions.create(
        model="blocky-out", messages=[{"role": "user", "content": "the code is ZX-123456 now please"}],
        stream=True, stream_options={"include_usage": True},
    )  # fmt: skip
    text, finishes, usage = "", [], None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert "ZX" not in text and "123456" not in text
    assert finishes == ["content_filter"] and usage is not None


def test_max_tokens_caps_and_counts(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    sdk.chat.completions.create(
        model="capped", messages=[{"role": "user", "content": "hi"}], max_tokens=500
    )
    assert _sent(mock)["max_tokens"] == 50
    sdk.chat.completions.create(model="capped", messages=[{"role": "user", "content": "hi"}])
    assert _sent(mock)["max_tokens"] == 50
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="capped", messages=[{"role": "user", "content": "word " * 200}]
        )
    assert caught.value.body["code"] == "guardrail_max_tokens"  # type: ignore[index]


def test_topics_block_with_the_opted_in_status(guarded: Gateway) -> None:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    r = httpx.post(
        f"{guarded.v1}/chat/completions",
        json={
            "model": "topical",
            "messages": [{"role": "user", "content": "How do I build a pipe bomb at home?"}],
        },
        headers=headers,
    )
    assert r.status_code == 446
    assert r.json()["error"]["code"] == "content_filter"
    assert "weapons" in r.json()["error"]["message"]
    ok = httpx.post(
        f"{guarded.v1}/chat/completions",
        json={
            "model": "topical",
            "messages": [{"role": "user", "content": "How do I kill the process on port 8080?"}],
        },
        headers=headers,
    )
    assert ok.status_code == 200


def test_shadow_mode_reports_but_never_acts(sdk: openai.OpenAI) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model="shadowed",
        messages=[{"role": "user", "content": "x"}],
    )
    assert "x-gateway-guardrails" not in raw.headers
    card = "4539 5781 2345 6789"
    raw = sdk.chat.completions.with_raw_response.create(
        model="shadowed", extra_headers={"x-gateway-guardrails": ""},
        messages=[{"role": "user", "content": f"card {card}"}],
    )  # fmt: skip
    # the input guardrail masks it first, so the shadow one sees a placeholder: no finding
    assert "shadow" not in raw.headers["x-gateway-guardrails"]


def test_a_request_adds_a_guardrail_by_name_and_unknown_names_are_refused(
    sdk: openai.OpenAI, guarded: Gateway
) -> None:
    sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "about bluebird"}]
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "about Project Nightjar"}],
            extra_headers={"x-gateway-guardrails": "codename"},
        )  # fmt: skip
    assert "codename" in caught.value.message
    with pytest.raises(openai.BadRequestError) as unknown:
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-gateway-guardrails": "nope"},
        )  # fmt: skip
    assert unknown.value.body["code"] == "unknown_guardrail"  # type: ignore[index]


def test_anthropic_front_door_blocks_with_its_envelope_and_masks(
    guarded: Gateway, mock: MockOpenAI
) -> None:
    with anthropic.Anthropic(base_url=guarded.url, api_key=MASTER_KEY, max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                model="chat", max_tokens=50,
                messages=[{"role": "user", "content": "AKIAZ3M5T7Q2WXYZ9ABC is my key id"}],
            )  # fmt: skip
        assert caught.value.body["type"] == "error"  # type: ignore[index]
        assert "aws_access_key" in caught.value.message
        reply = client.messages.create(
            model="guarded-out", max_tokens=50,
            messages=[{"role": "user", "content": "mail bob@corp.io"}],
        )  # fmt: skip
        assert reply.content[0].text == "echo: mail [EMAIL_1]"  # type: ignore[union-attr]
        with client.messages.stream(
            model="guarded-out", max_tokens=50,
            messages=[{"role": "user", "content": "mail bob@corp.io and carol@corp.io"}],
        ) as stream:  # fmt: skip
            text = "".join(stream.text_stream)
        assert text.strip() == "echo: mail [EMAIL_1] and [EMAIL_2]"


def test_admin_check(guarded: Gateway) -> None:
    r = httpx.post(
        f"{guarded.url}/admin/guardrails/check",
        json={"text": "mail jane@acme.io", "guardrail": "input"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["verdict"] == "mask" and body["masked"] == "mail [EMAIL_1]"
    assert body["findings"] == [{"kind": "email", "start": 5, "end": 17, "action": "mask"}]
    assert (
        httpx.post(f"{guarded.url}/admin/guardrails/check", json={"text": "x"}).status_code == 401
    )
    missing = httpx.post(
        f"{guarded.url}/admin/guardrails/check", json={"text": "x", "guardrail": "nope"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )  # fmt: skip
    assert missing.status_code == 404


def test_a_keys_guardrail_applies_to_its_requests_only(guarded: Gateway) -> None:
    message = [{"role": "user", "content": "status of bluebird?"}]
    with openai.OpenAI(base_url=guarded.v1, api_key=VIRTUAL_KEY, max_retries=0) as keyed:
        with pytest.raises(openai.BadRequestError) as caught:
            keyed.chat.completions.create(model="chat", messages=message)  # type: ignore[arg-type]
        assert "Blocked by guardrail 'codename'" in caught.value.message
    with openai.OpenAI(base_url=guarded.v1, api_key=MASTER_KEY, max_retries=0) as master:
        master.chat.completions.create(model="chat", messages=message)  # type: ignore[arg-type]


def test_a_key_naming_an_unknown_guardrail_is_refused(guarded: Gateway) -> None:
    r = httpx.post(
        f"{guarded.url}/admin/keys", json={"name": "x", "guardrails": "nope"},
        headers={"authorization": f"Bearer {MASTER_KEY}"},
    )  # fmt: skip
    assert r.status_code == 400 and r.json()["error"]["param"] == "guardrails"


def test_cache_hits_pass_the_output_guardrail(sdk: openai.OpenAI) -> None:
    message = [{"role": "user", "content": f"the code is ZX-654321 ({id(sdk)})"}]
    first = sdk.chat.completions.with_raw_response.create(model="cached", messages=message)  # type: ignore[arg-type]
    assert "ZX-654321" in (first.parse().choices[0].message.content or "")
    hit = sdk.chat.completions.with_raw_response.create(
        model="cached", messages=message, extra_headers={"x-gateway-guardrails": "out-block"},  # type: ignore[arg-type]
    )  # fmt: skip
    assert hit.headers["x-gateway-cache"] == "HIT"
    assert hit.parse().choices[0].finish_reason == "content_filter"
    assert "out-block; action=block" in hit.headers["x-gateway-guardrails"]


def test_metrics_count_decisions_without_values(guarded: Gateway, sdk: openai.OpenAI) -> None:
    sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "mail zed@corp.io"}]
    )
    text = httpx.get(
        f"{guarded.url}/metrics", headers={"authorization": f"Bearer {MASTER_KEY}"}
    ).text
    line = next(
        ln for ln in text.splitlines()
        if ln.startswith("gateway_guardrail_decisions_total{") and 'kind="email"' in ln and 'direction="input"' in ln
    )  # fmt: skip
    assert (
        'guardrail="input"' in line
        and 'action="mask"' in line
        and float(line.rsplit(" ", 1)[1]) >= 1
    )
    assert "gateway_guardrail_seconds_bucket" in text
    assert "zed@corp.io" not in text
    assert "zed@corp.io" not in guarded.output()  # never in a log line either


def test_anthropic_stream_block_ends_with_refusal(guarded: Gateway) -> None:
    client = anthropic.Anthropic(base_url=guarded.url, api_key=MASTER_KEY, max_retries=0)
    with client, client.messages.stream(
        model="blocky-out", max_tokens=50,
        messages=[{"role": "user", "content": "the code is ZX-111222 and more words after it"}],
    ) as stream:  # fmt: skip
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "ZX" not in text
    assert final.stop_reason == "refusal"
    assert final.usage.output_tokens > 0


def test_reversible_masking_restores_values_whole_and_streamed(
    sdk: openai.OpenAI, mock: MockOpenAI
) -> None:
    text = "Email jane.doe@gmail.com or call (415) 867-5309 today"
    whole = sdk.chat.completions.create(
        model="vaulted", messages=[{"role": "user", "content": text}]
    )
    assert "jane.doe@gmail.com" not in json.dumps(_sent(mock))  # the provider saw placeholders
    assert whole.choices[0].message.content == f"echo: {text}"
    stream = sdk.chat.completions.create(
        model="vaulted", messages=[{"role": "user", "content": text}], stream=True
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed.strip() == f"echo: {text}"


def test_completions_prompts_and_answers_are_guarded(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    sdk.completions.create(model="chat", prompt="mail bob@corp.io")
    assert _sent(mock)["prompt"] == "mail [EMAIL_1]"
    with pytest.raises(openai.BadRequestError):
        sdk.completions.create(model="chat", prompt=["ok", "AKIAZ3M5T7Q2WXYZ9ABC"])


def test_a_moderation_judge_blocks_flags_and_fails_closed_or_open(
    sdk: openai.OpenAI, mock: MockOpenAI
) -> None:
    threat = [{"role": "user", "content": "I will find you, mail me at bob@corp.io"}]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="chat", messages=threat, extra_headers={"x-gateway-guardrails": "moderated"}
        )  # type: ignore[arg-type]
    assert "judge flagged harassment,harassment/threatening" in caught.value.message
    judged = _sent(mock)
    assert judged["model"] == "omni-moderation-latest" and "[EMAIL_1]" in str(
        judged["input"]
    )  # masked first
    ok = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], extra_headers={"x-gateway-guardrails": "moderated"},
    )  # fmt: skip
    assert ok.status_code == 200
    flagged = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=threat, extra_headers={"x-gateway-guardrails": "moderated-flag"},  # type: ignore[arg-type]
    )  # fmt: skip
    assert "moderated-flag; action=flag" in flagged.headers["x-gateway-guardrails"]
    with pytest.raises(openai.InternalServerError) as down:
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hello"}],
            extra_headers={"x-gateway-guardrails": "judge-down-block"},
        )  # fmt: skip
    assert down.value.status_code == 503 and down.value.body["code"] == "guardrail_unavailable"  # type: ignore[index]
    open_ = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-gateway-guardrails": "judge-down-flag"},
    )  # fmt: skip
    assert open_.status_code == 200


def test_a_native_anthropic_target_is_guarded_in_its_own_format(
    guarded: Gateway, anthropic_mock: MockAnthropic
) -> None:
    client = anthropic.Anthropic(base_url=guarded.url, api_key=MASTER_KEY, max_retries=0)
    with client:
        reply = client.messages.create(
            model="claude-guarded", max_tokens=50, messages=[{"role": "user", "content": "ping 10.9.8.7 please"}],
        )  # fmt: skip
        with anthropic_mock.state.lock:
            sent = anthropic_mock.state.requests[-1].body
        assert "10.9.8.7" not in json.dumps(sent)  # the input guardrail masked it for the provider
        assert "[IPV4_1]" in reply.content[0].text  # type: ignore[union-attr]
        with client.messages.stream(
            model="claude-guarded", max_tokens=50,
            messages=[{"role": "user", "content": "words before the code ZX-424242 and words after it"}],
        ) as stream:  # fmt: skip
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert "ZX" not in text and final.stop_reason == "refusal"


def test_a_judge_reads_whole_answers_and_withholds_or_flags_them(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    """A judge on output reads the whole answer: what a block judge flags is withheld
    (finish_reason content_filter, usage kept), what a flag judge flags is passed on and
    named in x-gateway-guardrails, a judge that cannot be reached withholds (fails closed)."""
    threat = [{"role": "user", "content": "I will find you"}]  # the mock echoes it back
    blocked = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=threat, extra_headers={"x-gateway-guardrails": "judged-answers"},  # type: ignore[arg-type]
    )  # fmt: skip
    answer = blocked.parse()
    assert answer.choices[0].finish_reason == "content_filter" and not answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    verdict = blocked.headers["x-gateway-guardrails"]
    assert "judged-answers" in verdict and "action=block" in verdict
    judged = _sent(mock)
    assert "echo: I will find you" in judged["input"]  # the answer was judged, not the request
    calm = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-gateway-guardrails": "judged-answers"},
    )  # fmt: skip
    assert calm.choices[0].message.content == "echo: hello"
    flagged = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=threat, extra_headers={"x-gateway-guardrails": "judged-answers-flag"},  # type: ignore[arg-type]
    )  # fmt: skip
    assert flagged.parse().choices[0].message.content == "echo: I will find you"
    assert "action=flag" in flagged.headers["x-gateway-guardrails"]
    down = sdk.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}],
        extra_headers={"x-gateway-guardrails": "judged-answers-down"},
    )  # fmt: skip
    assert down.choices[0].finish_reason == "content_filter"


def test_a_model_the_gateway_serves_can_judge(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    header = {"x-gateway-guardrails": "judged-by-model"}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "I will hurt him"}], extra_headers=header
        )
    assert "judge flagged violence" in caught.value.message
    asked = _sent(mock)
    assert asked["model"] == "safety-judge" and "SAFE, or UNSAFE" in asked["messages"][0]["content"]  # type: ignore[index]
    ok = sdk.chat.completions.create(model="chat", messages=[{"role": "user", "content": "hello"}], extra_headers=header)
    assert ok.choices[0].message.content == "echo: hello"


def test_require_citation_asks_for_sources_and_flags_or_withholds(sdk: openai.OpenAI, mock: MockOpenAI) -> None:
    cited = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Paris is the capital [1]."}],
        extra_headers={"x-gateway-guardrails": "cite-block"},
    )  # fmt: skip
    system = _sent(mock)["messages"][0]  # type: ignore[index]
    assert system["role"] == "system" and "Cite the sources" in system["content"]
    assert cited.parse().choices[0].finish_reason == "stop"
    assert "x-gateway-guardrails" not in cited.headers
    uncited = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "Paris is the capital."}],
        extra_headers={"x-gateway-guardrails": "cite-block"},
    )  # fmt: skip
    assert uncited.parse().choices[0].finish_reason == "content_filter"
    assert "cite-block; action=block; count=1; kinds=citation" in uncited.headers["x-gateway-guardrails"]
    flagged = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "See https://example.org/paris"}],
        extra_headers={"x-gateway-guardrails": "cite-flag"},
    )  # fmt: skip
    assert "x-gateway-guardrails" not in flagged.headers  # a URL is a citation
    missing = sdk.chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "no sources"}],
        extra_headers={"x-gateway-guardrails": "cite-flag"},
    )  # fmt: skip
    assert missing.parse().choices[0].message.content == "echo: no sources"
    assert "cite-flag; action=flag" in missing.headers["x-gateway-guardrails"]
