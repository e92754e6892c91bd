"""TLS on both hops: upstream, as every hosted provider needs (verified against a private CA),
and the gateway's own HTTPS when it terminates TLS itself."""

from __future__ import annotations

import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, start_gateway, write_config
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


def test_gateway_serves_https(
    impl: str, mock: MockOpenAI, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    config = write_config(
        f"server: {{master_key: {MASTER_KEY}, tls_cert_file: {cert}, tls_key_file: {key}}}\n"
        f"providers:\n  openai: {{type: openai-compatible, base_url: \"{mock.url}/v1\"}}\n"
        "models:\n  - name: chat\n    targets: [{provider: openai, model: gpt-ok}]\n"
    )
    gw = start_gateway(impl, ["--config", str(config)], wait=False)
    base = f"https://localhost:{gw.port}"
    try:
        trusted = httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                if trusted.get(f"{base}/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or gw.process.poll() is not None:
                    raise AssertionError(gw.output()) from None
                time.sleep(0.1)
        with openai.OpenAI(
            base_url=f"{base}/v1", api_key=MASTER_KEY, max_retries=0, http_client=trusted
        ) as c:
            done = c.chat.completions.create(model="chat", messages=MESSAGES)  # type: ignore[arg-type]
            assert done.choices[0].message.content == "echo: over tls"
            chunks = list(c.chat.completions.create(model="chat", messages=MESSAGES, stream=True))  # type: ignore[arg-type]
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "echo: over tls "
        # Plain HTTP to the TLS port is not answered as if it were fine.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{gw.port}/health/live", timeout=3).raise_for_status()
    finally:
        gw.stop()
    assert "https://" in gw.output()


def test_half_a_tls_pair_is_a_config_error(impl: str, certificate: tuple[Path, Path]) -> None:
    config = write_config(f"server: {{tls_cert_file: {certificate[0]}}}\n")
    gw = start_gateway(impl, ["--config", str(config)], wait=False)
    assert gw.process.wait(30) == 2
    assert "tls_cert_file and tls_key_file go together" in gw.output()
