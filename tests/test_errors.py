"""Every error a client can see is OpenAI-shaped, with the right status, and leaks no secret."""

from __future__ import annotations

import httpx2 as httpx
import openai
import pytest

from tests.harness import MASTER_KEY, UPSTREAM_KEY, Gateway

MESSAGES = [{"role": "user", "content": "hi"}]


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-request-id"]
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "Traceback" not in response.text
    return dict(error)


def test_malformed_json_says_where(http: httpx.Client) -> None:
    error = _error(http.post("/v1/chat/completions", content=b'{"model": "x", "messages": [}'), 400)
    assert error["code"] == "invalid_json"
    assert "byte" in str(error["message"])


def test_empty_body(http: httpx.Client) -> None:
    error = _error(http.post("/v1/chat/completions", content=b""), 400)
    assert "empty" in str(error["message"])


def test_missing_field_is_named(http: httpx.Client) -> None:
    error = _error(http.post("/v1/chat/completions", json={"model": "chat-default"}), 400)
    assert error["param"] == "messages" and error["code"] == "missing_required_parameter"


def test_wrong_type_is_named(http: httpx.Client) -> None:
    body = {"model": "chat-default", "messages": [{"role": "user", "content": 5}]}
    error = _error(http.post("/v1/chat/completions", json=body), 400)
    assert error["param"] == "messages[0].content" and error["code"] == "invalid_type"
    body = {"model": "chat-default", "messages": MESSAGES, "stream": "yes"}
    assert _error(http.post("/v1/chat/completions", json=body), 400)["param"] == "stream"


def test_bad_role_and_empty_messages(http: httpx.Client) -> None:
    body = {"model": "chat-default", "messages": [{"role": "wizard", "content": "x"}]}
    assert _error(http.post("/v1/chat/completions", json=body), 400)["param"] == "messages[0].role"
    body = {"model": "chat-default", "messages": []}
    assert _error(http.post("/v1/chat/completions", json=body), 400)["param"] == "messages"


def test_unknown_model(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_unknown_route_and_method(http: httpx.Client) -> None:
    error = _error(http.post("/v1/nothing-here", json={}), 404)
    assert "POST /v1/nothing-here" in str(error["message"])
    _error(http.get("/v1/chat/completions"), 405)


def test_oversized_body(http: httpx.Client) -> None:
    body = {"model": "chat-default", "messages": [{"role": "user", "content": "x" * 70000}]}
    error = _error(http.post("/v1/chat/completions", json=body), 413)
    assert error["code"] == "request_too_large"


def test_auth_missing_and_wrong(gateway: Gateway) -> None:
    for headers in ({}, {"authorization": "Bearer wrong-key-123"}, {"authorization": "Basic abc"}):
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json={}, headers=headers)
        _error(response, 401)
        assert "wrong-key-123" not in response.text
    with (
        openai.OpenAI(base_url=gateway.v1, api_key="nope", max_retries=0) as c,
        pytest.raises(openai.AuthenticationError),
    ):
        c.models.list()


def test_health_and_metrics_need_no_key(gateway: Gateway) -> None:
    assert httpx.get(f"{gateway.url}/health/live").status_code == 200
    assert httpx.get(f"{gateway.url}/metrics").status_code == 200


@pytest.mark.parametrize(
    ("model", "exc", "status", "code"),
    [
        ("openai/fail-429", openai.RateLimitError, 429, "rate_limit_exceeded"),
        ("openai/fail-500", openai.InternalServerError, 500, None),
        ("openai/fail-400", openai.BadRequestError, 400, "invalid_value"),
        ("openai/fail-html", openai.InternalServerError, 503, None),
        ("unreachable", openai.APIStatusError, 502, "upstream_unavailable"),
    ],
)
def test_upstream_errors_keep_status(
    client: openai.OpenAI, model: str, exc: type[Exception], status: int, code: str | None
) -> None:
    with pytest.raises(exc) as caught:
        client.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    err = caught.value
    assert isinstance(err, openai.APIStatusError)
    assert err.status_code == status and err.code == code
    assert isinstance(err.body, dict) and set(err.body) == {"message", "type", "param", "code"}


def test_rate_limit_headers_pass_through(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "openai/fail-429", "messages": MESSAGES})
    _error(response, 429)
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_upstream_error_never_echoes_the_provider_key(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={"model": "openai/fail-401-echo", "messages": MESSAGES})
    _error(response, 401)
    assert UPSTREAM_KEY not in response.text and UPSTREAM_KEY[:12] not in response.text


def test_upstream_non_json_success_is_a_502(http: httpx.Client) -> None:
    error = _error(http.post("/v1/chat/completions", json={"model": "openai/not-json", "messages": MESSAGES}), 502)
    assert "not JSON" in str(error["message"])


def test_timeout_per_request_is_a_504(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions",
        json={"model": "openai/slow-3", "messages": MESSAGES},
        headers={"x-gateway-timeout": "0.3"},
    )
    assert _error(response, 504)["code"] == "upstream_timeout"
    bad = http.post("/v1/chat/completions", json={}, headers={"x-gateway-timeout": "soon"})
    assert _error(bad, 400)["param"] == "x-gateway-timeout"


def test_no_secret_in_logs(gateway: Gateway) -> None:
    assert UPSTREAM_KEY not in gateway.output()
    assert MASTER_KEY not in gateway.output()
