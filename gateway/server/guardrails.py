"""`POST /admin/guardrails/check` (master key): a guardrail tried on a text, no provider called."""

from __future__ import annotations

import msgspec

from gateway.errors import InvalidRequest, MalformedJSON, NotFound
from gateway.guardrails.check import check_text, pick
from gateway.guardrails.policy import Guardrails
from gateway.pipeline import Reply
from gateway.pipeline.authenticate import Authenticate
from gateway.server.handlers import json_reply
from gateway.server.http import Request

MAX_TEXT = 1 << 20


class CheckBody(msgspec.Struct, forbid_unknown_fields=True):
    text: str
    guardrail: str | None = None


class GuardrailAdmin:
    def __init__(self, guardrails: Guardrails, auth: Authenticate) -> None:
        self._guardrails = guardrails
        self._auth = auth

    async def check(self, request: Request, rid: str) -> Reply:
        self._auth.check(request.headers)
        try:
            body = msgspec.json.decode(request.body or b"{}", type=CheckBody)
        except msgspec.ValidationError as err:
            raise InvalidRequest(f"Invalid body: {err}", param="text") from None
        except msgspec.DecodeError as err:
            raise MalformedJSON(f"The body is not valid JSON: {err}") from None
        if len(body.text) > MAX_TEXT:
            raise InvalidRequest(f"'text' is longer than {MAX_TEXT} characters.", param="text")
        try:
            guardrail = pick(self._guardrails, body.guardrail)
        except LookupError:
            raise NotFound(
                "No guardrail of that name.", param="guardrail", code="unknown_guardrail"
            ) from None
        return json_reply(check_text(guardrail, body.text))
