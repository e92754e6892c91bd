"""POST /v1/feedback and GET /v1/usage/feedback end to end: a key scores only its own
requests, the master key any; scores carry the request's model and routing decision; bad
bodies are 400s; the summary survives a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from tests.harness import Gateway
from tests.mock_openai import MockOpenAI
from tests.test_governance import ADMIN, chat, configure, make_key, start


def feedback(gateway: Gateway, key: str, **body: object) -> httpx.Response:
    return httpx.post(f"{gateway.v1}/feedback", json=body, timeout=10,
                      headers={"authorization": f"Bearer {key}"})  # fmt: skip


def summary(gateway: Gateway, group_by: str) -> list[dict]:
    reply = httpx.get(f"{gateway.v1}/usage/feedback?group_by={group_by}", headers=ADMIN, timeout=10)
    assert reply.status_code == 200, reply.text
    return reply.json(parse_float=float)["data"]


def test_keys_score_their_own_requests_and_the_summary_groups_them(
    impl: str, mock: MockOpenAI, store: str
) -> None:
    config = configure(mock, None, store)
    gateway = start(impl, config)
    try:
        alice, bob = make_key(gateway, name="alice")["key"], make_key(gateway, name="bob")["key"]
        first = chat(gateway, alice)
        second = chat(gateway, alice, model="other")
        theirs = chat(gateway, bob)
        ids = [r.headers["x-request-id"] for r in (first, second, theirs)]
        good = feedback(gateway, alice, request_id=ids[0], score=1, label="good", comment="spot on")
        assert good.status_code == 200, good.text
        assert good.json()["model"] == "chat" and good.json()["route"] == "openai/gpt-4o-mini"
        assert feedback(gateway, alice, request_id=ids[1], score=0, label="wrong").status_code == 200
        again = feedback(gateway, alice, request_id=ids[1], score=0.5, label="meh")  # replaces
        assert again.status_code == 200
        stolen = feedback(gateway, alice, request_id=ids[2], score=0)
        assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "request_not_found"
        unknown = feedback(gateway, alice, request_id="no-such-request", score=1)
        assert unknown.status_code == 404
        assert feedback(gateway, ADMIN["authorization"].split()[1], request_id=ids[2], score=1).status_code == 200
        by_model = {g["model"]: g for g in summary(gateway, "model")}
        assert by_model["chat"]["feedback"] == 2 and by_model["chat"]["mean_score"] == 1.0
        assert by_model["other"]["feedback"] == 1 and by_model["other"]["mean_score"] == 0.5
        assert by_model["chat"]["cost"] > 0 and by_model["chat"]["priced"] == 2
        labels = {g["label"]: g["feedback"] for g in summary(gateway, "label")}
        assert labels == {"good": 1, "meh": 1, None: 1}
    finally:
        gateway.stop()
    gateway = start(impl, config)
    try:
        assert sum(g["feedback"] for g in summary(gateway, "model,route")) == 3
    finally:
        gateway.stop()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"request_id": "x", "score": 1, "stars": 5}', 400, "invalid_value"),
        (b'{"request_id": "x"}', 400, None),
        (b'{"request_id": "", "score": 1}', 400, "invalid_value"),
        (b'{"request_id": "x", "score": "high"}', 400, "invalid_value"),
        (b'{"request_id": "x", "score": 1e300}', 400, None),
    ],
)  # fmt: skip
def test_bad_feedback_is_a_400(mock: MockOpenAI, body: bytes, status: int, code: str | None) -> None:
    gateway = _shared(mock)
    reply = httpx.post(f"{gateway.v1}/feedback", content=body, headers=ADMIN, timeout=10)
    assert reply.status_code == status, reply.text
    if code is not None:
        assert reply.json()["error"]["code"] == code
    bad_group = httpx.get(f"{gateway.v1}/usage/feedback?group_by=user", headers=ADMIN, timeout=10)
    assert bad_group.status_code == 400 and bad_group.json()["error"]["param"] == "group_by"
    assert httpx.get(f"{gateway.v1}/usage/feedback", timeout=10).status_code == 401


_GATEWAY: list[Gateway] = []


def _shared(mock: MockOpenAI) -> Gateway:
    if not _GATEWAY:
        _GATEWAY.append(start("compiled", configure(mock, None)))
    return _GATEWAY[0]


def teardown_module() -> None:
    for gateway in _GATEWAY:
        gateway.stop()
