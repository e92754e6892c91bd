from __future__ import annotations

import tempfile
from collections.abc import Iterator

import anthropic
import httpx2 as httpx
import openai
import pytest

from tests.harness import IMPLS, MASTER_KEY, UPSTREAM_KEY, Gateway, start_gateway, write_config
from tests.mock_anthropic import ANTHROPIC_KEY, MockAnthropic
from tests.mock_bedrock import ACCESS_KEY as BEDROCK_ACCESS_KEY
from tests.mock_bedrock import BEDROCK_TOKEN, MockBedrock
from tests.mock_bedrock import SECRET_KEY as BEDROCK_SECRET_KEY
from tests.mock_cohere import COHERE_KEY, MockCohere
from tests.mock_gemini import GEMINI_KEY, MockGemini
from tests.mock_openai import AZURE_KEY, MockOpenAI
from tests.postgres import PG, drop_database, postgres_database

CONFIG = """
server:
  master_key: env:TEST_MASTER_KEY
  max_body_bytes: 65536
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{mock}/v1"}}
  groq: {{api_key: gsk-groq-test-key-000000, base_url: "{mock}/groq/v1"}}
  local: {{type: openai-compatible, base_url: "{mock}/nob64/v1"}}
  dead: {{type: openai-compatible, base_url: "http://127.0.0.1:9/v1", timeouts: {{connect: 2}}}}
models:
  - name: chat-default
    targets: [{{provider: openai, model: gpt-ok}}]
  - name: balanced
    strategy: {{mode: loadbalance}}
    targets:
      - {{provider: openai, model: gpt-a, weight: 3}}
      - {{provider: openai, model: gpt-b, weight: 1}}
  - name: unreachable
    targets: [{{provider: dead, model: anything}}]
  - name: local-embed
    targets: [{{provider: local, model: embed-small}}]
"""


@pytest.fixture(scope="session")
def mock() -> Iterator[MockOpenAI]:
    server = MockOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=IMPLS)
def impl(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def gateway(impl: str, mock: MockOpenAI) -> Iterator[Gateway]:
    config = write_config(CONFIG.format(mock=mock.url))
    env = {"TEST_MASTER_KEY": MASTER_KEY, "TEST_UPSTREAM_KEY": UPSTREAM_KEY}
    gw = start_gateway(impl, ["--config", str(config)], env)
    yield gw
    gw.stop()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=gateway.v1, api_key=MASTER_KEY, max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


@pytest.fixture
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as c:
        yield c


# --- native provider adapters: one gateway in front of every provider's mock ---------------

PROVIDERS_CONFIG = """
server:
  master_key: env:TEST_MASTER_KEY
providers:
  openai: {{api_key: env:TEST_UPSTREAM_KEY, base_url: "{openai}/v1"}}
  anthropic: {{api_key: {anthropic_key}, base_url: "{anthropic}"}}
  anthropic-badkey: {{type: anthropic, api_key: sk-ant-wrong-key-000000000, base_url: "{anthropic}"}}
  gemini: {{api_key: {gemini_key}, base_url: "{gemini}"}}
  cohere: {{api_key: {cohere_key}, base_url: "{cohere}"}}
  bedrock: {{api_key: {bedrock_token}, base_url: "{bedrock}", region: us-east-1}}
  bedrock-sigv4: {{type: bedrock, base_url: "{bedrock}", region: eu-west-1}}
  azure: {{api_key: {azure_key}, base_url: "{openai}", api_version: "2024-10-21"}}
  azure-v1: {{type: azure, api_key: {azure_key}, base_url: "{openai}/openai/v1"}}
  gemini-badkey: {{type: gemini, api_key: AIzaWrongKey000000000000000000000000000, base_url: "{gemini}"}}
models:
  - name: claude
    targets: [{{provider: anthropic, model: claude-ok}}]
  - name: gpt
    targets: [{{provider: openai, model: gpt-ok}}]
"""


@pytest.fixture(scope="session")
def anthropic_mock() -> Iterator[MockAnthropic]:
    server = MockAnthropic().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bedrock_mock() -> Iterator[MockBedrock]:
    server = MockBedrock().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cohere_mock() -> Iterator[MockCohere]:
    server = MockCohere().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gemini_mock() -> Iterator[MockGemini]:
    server = MockGemini().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def providers_gateway(
    impl: str,
    mock: MockOpenAI,
    anthropic_mock: MockAnthropic,
    gemini_mock: MockGemini,
    cohere_mock: MockCohere,
    bedrock_mock: MockBedrock,
) -> Iterator[Gateway]:
    config = write_config(
        PROVIDERS_CONFIG.format(
            openai=mock.url,
            anthropic=anthropic_mock.url,
            anthropic_key=ANTHROPIC_KEY,
            gemini=gemini_mock.url,
            gemini_key=GEMINI_KEY,
            azure_key=AZURE_KEY,
            cohere=cohere_mock.url,
            cohere_key=COHERE_KEY,
            bedrock=bedrock_mock.url,
            bedrock_token=BEDROCK_TOKEN,
        )
    )
    env = {
        "TEST_MASTER_KEY": MASTER_KEY,
        "TEST_UPSTREAM_KEY": UPSTREAM_KEY,
        "AWS_ACCESS_KEY_ID": BEDROCK_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": BEDROCK_SECRET_KEY,
    }
    gw = start_gateway(impl, ["--config", str(config)], env)
    yield gw
    gw.stop()


@pytest.fixture
def pclient(providers_gateway: Gateway) -> Iterator[openai.OpenAI]:
    """A strict openai client in front of the native provider adapters."""
    with openai.OpenAI(
        base_url=providers_gateway.v1,
        api_key=MASTER_KEY,
        max_retries=0,
        _strict_response_validation=True,
    ) as c:
        yield c


@pytest.fixture
def aclient(providers_gateway: Gateway) -> Iterator[anthropic.Anthropic]:
    """The official anthropic client, pointed at the gateway's /v1/messages front door."""
    with anthropic.Anthropic(
        base_url=providers_gateway.url, api_key=MASTER_KEY, max_retries=0
    ) as c:
        yield c


# --- the usage ledger's stores: a fresh SQLite file, or a fresh PostgreSQL database ----------


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tempfile.mkdtemp(prefix='gateway-usage-')}/usage.db"
        return
    name = postgres_database()
    yield PG.format(db=name)
    drop_database(name)
