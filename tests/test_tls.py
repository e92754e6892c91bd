"""The upstream hop over TLS, as every hosted provider needs: verified against a private CA."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.harness import start_gateway
from tests.mock_openai import MockOpenAI

MESSAGES = [{"role": "user", "content": "over tls"}]


@pytest.fixture(scope="module")
def certificate() -> tuple[Path, Path]:
    folder = Path(tempfile.mkdtemp(prefix="gateway-tls-"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def tls_mock(certificate: tuple[Path, Path]) -> Iterator[MockOpenAI]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    server = MockOpenAI(context).start()
    yield server
    server.stop()


def test_https_upstream_verified(impl: str, tls_mock: MockOpenAI, certificate: tuple[Path, Path]) -> None:
    env = {"OPENAI_API_KEY": "sk-tls-0000000000", "OPENAI_BASE_URL": f"{tls_mock.url}/v1",
           "SSL_CERT_FILE": str(certificate[0])}  # fmt: skip
    gw = start_gateway(impl, [], env)
    try:
        with openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0, _strict_response_validation=True) as c:
            done = c.chat.completions.create(model="gpt-tls", messages=MESSAGES)  # type: ignore[arg-type]
            assert done.choices[0].message.content == "echo: over tls"
            chunks = list(c.chat.completions.create(model="gpt-tls", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "echo: over tls "
    finally:
        gw.stop()


def test_untrusted_upstream_certificate_is_refused(impl: str, tls_mock: MockOpenAI) -> None:
    env = {"OPENAI_API_KEY": "sk-tls-0000000000", "OPENAI_BASE_URL": f"{tls_mock.url}/v1"}
    gw = start_gateway(impl, [], env)
    try:
        with openai.OpenAI(base_url=gw.v1, api_key="x", max_retries=0) as c:
            with pytest.raises(openai.APIStatusError) as caught:
                c.chat.completions.create(model="gpt-tls", messages=MESSAGES)  # type: ignore[arg-type]
            assert caught.value.status_code == 502
    finally:
        gw.stop()
