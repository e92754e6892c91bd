"""Zero-config names for every native adapter, with credentials read from the variables each
provider's own SDK reads (hosts without version paths, as those SDKs take them)."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.harness import Gateway, start_gateway
from tests.mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from tests.mock_bedrock import BEDROCK_TOKEN, MockBedrock
from tests.mock_cohere import COHERE_KEY, MockCohere
from tests.mock_gemini import GEMINI_KEY, MockGemini
from tests.mock_openai import AZURE_KEY, MockOpenAI
from tests.mock_vertex import MockVertex, service_account_file

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def zero_native(  # noqa: PLR0913 - one mock per provider
    impl: str,
    mock: MockOpenAI,
    anthropic_mock: MockAnthropic,
    gemini_mock: MockGemini,
    cohere_mock: MockCohere,
    bedrock_mock: MockBedrock,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gateway, MockVertex]]:
    vertex = MockVertex().start()
    key_file, vertex.public_key = service_account_file(
        tmp_path_factory.mktemp("sa"), f"{vertex.url}/token"
    )
    env = {
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "ANTHROPIC_BASE_URL": anthropic_mock.url,
        "GEMINI_API_KEY": GEMINI_KEY,
        "GEMINI_BASE_URL": gemini_mock.url,
        "CO_API_KEY": COHERE_KEY,
        "CO_API_URL": cohere_mock.url,
        "AZURE_OPENAI_API_KEY": AZURE_KEY,
        "AZURE_OPENAI_ENDPOINT": mock.url,
        "OPENAI_API_VERSION": "2024-10-21",
        "AWS_BEARER_TOKEN_BEDROCK": BEDROCK_TOKEN,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": bedrock_mock.url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key_file),
        "VERTEX_BASE_URL": vertex.url,
    }
    gw = start_gateway(impl, [], env)
    yield gw, vertex
    gw.stop()
    vertex.stop()


@pytest.mark.parametrize(
    ("model", "path"),
    [
        ("anthropic/claude-ok", "/v1/messages"),
        ("gemini/gemini-ok", "/v1beta/models/gemini-ok:generateContent"),
        ("cohere/command-r", "/v2/chat"),
        ("azure/dep-1", "/openai/deployments/dep-1/chat/completions"),
        ("bedrock/m-1", "/model/m-1/converse"),
        ("vertex/gemini-2.0-flash", "/publishers/google/models/gemini-2.0-flash:generateContent"),
    ],
)
def test_zero_config_prefixes(  # noqa: PLR0913 - one mock per provider
    zero_native: tuple[Gateway, MockVertex],
    mock: MockOpenAI,
    anthropic_mock: MockAnthropic,
    gemini_mock: MockGemini,
    cohere_mock: MockCohere,
    bedrock_mock: MockBedrock,
    model: str,
    path: str,
) -> None:
    gw, vertex = zero_native
    with openai.OpenAI(
        base_url=gw.v1, api_key="any", max_retries=0, _strict_response_validation=True
    ) as c:
        completion = c.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "echo: hi"
    mocks = {"anthropic": anthropic_mock, "gemini": gemini_mock, "cohere": cohere_mock,
             "azure": mock, "bedrock": bedrock_mock, "vertex": vertex}  # fmt: skip
    assert mocks[model.split("/")[0]].state.last().path.endswith(path)


def test_unset_native_provider_says_what_to_set(impl: str) -> None:
    gw = start_gateway(impl)
    try:
        with openai.OpenAI(base_url=gw.v1, api_key="any", max_retries=0) as c:
            with pytest.raises(openai.NotFoundError, match="ANTHROPIC_API_KEY"):
                c.chat.completions.create(model="anthropic/claude-x", messages=MESSAGES)  # type: ignore[arg-type]
            with pytest.raises(openai.NotFoundError, match="AWS_BEARER_TOKEN_BEDROCK"):
                c.chat.completions.create(model="bedrock/x", messages=MESSAGES)  # type: ignore[arg-type]
    finally:
        gw.stop()
