"""A remote judge for a guardrail's input or its whole answers: OpenAI's moderation endpoint,
a webhook, or a model the gateway serves.

On input it is called once per request the guardrail applies to, after the local scan (a
request the scan blocked never reaches it), with every text the provider would see; a judge
in block mode fails closed (503 `guardrail_unavailable`), in flag mode open. On output it reads
a whole answer (after the local scan's masking): a block judge withholds what it flags, and
what it could not judge (fail closed). Either way the outcome is counted.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from gateway.api.requests import CHAT_DECODER
from gateway.config.guardrails import JudgeCfg
from gateway.errors import ContentBlocked, GatewayError, ServiceUnavailable
from gateway.guardrails.report import Report
from gateway.providers.base import Endpoint, Timeouts, UpstreamRequest
from gateway.providers.transport import Transport
from gateway.routing.catalog import Catalog

LOG = logging.getLogger("gateway.guardrails")
_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder()
MAX_BODY = 1 << 20
JUDGE_PROMPT = (
    "You are a content-safety classifier for requests to an AI assistant. Read the user's"
    " message and answer with one line only: SAFE, or UNSAFE: <category> (violence, illegal,"
    " self_harm, sexual_minors, hate, weapons, harassment or other)."
)


class _Message(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    message: _Message


class _Completion(msgspec.Struct):
    choices: list[_Choice]


_ANSWER = msgspec.json.Decoder(_Completion)


class JudgeUnavailable(ServiceUnavailable):
    code = "guardrail_unavailable"


class Judge:
    __slots__ = ("_catalog", "_cfg", "_headers", "_timeouts", "_transport")

    def __init__(self, cfg: JudgeCfg, transport: Transport, catalog: Catalog | None = None) -> None:
        self._cfg = cfg
        self._transport = transport
        self._catalog = catalog
        headers = {"content-type": "application/json", **cfg.headers}
        if cfg.api_key:
            headers["authorization"] = f"Bearer {cfg.api_key}"
        self._headers = headers
        seconds = cfg.timeout_ms / 1000
        self._timeouts = Timeouts(connect=seconds, first_byte=seconds, idle=None, total=seconds)

    async def check_answer(self, guardrail: Any, texts: list[str], report: Report) -> bool:
        """Judges a whole answer: True when it is to be withheld (flagged by a block judge
        in enforce mode, or not judged at all by one)."""
        text = "\n\n".join(texts)
        if not text:
            return False
        reached, flagged = await self._verdict(guardrail, text, report, "output")
        blocks = self._cfg.action == "block" and guardrail.mode == "enforce"
        return blocks and (not reached or flagged is not None)

    async def check(self, guardrail: Any, texts: list[str], report: Report) -> None:
        reached, flagged = await self._verdict(guardrail, "\n\n".join(texts), report, "input")
        if self._cfg.action != "block" or guardrail.mode != "enforce":
            return
        if not reached:
            raise JudgeUnavailable(
                f"Guardrail '{guardrail.name}' could not reach its judge; the request was"
                " not sent.",
                headers={"retry-after": "1"},
            )
        if flagged is not None:
            refusal = ContentBlocked(
                f"Blocked by guardrail '{guardrail.name}': its judge flagged {flagged}",
                param="messages",
            )
            refusal.status = guardrail.block_status
            raise refusal

    async def _verdict(
        self, guardrail: Any, text: str, report: Report, direction: str
    ) -> tuple[bool, str | None]:
        """(whether the judge answered, what it flagged or None), counted in the report."""
        cfg = self._cfg
        try:
            flagged = await (self._ask_model(text) if cfg.route else self._ask(self._request(text)))
        except (GatewayError, OSError, msgspec.MsgspecError, ValueError) as err:
            report.add(guardrail, "judge", "flag" if cfg.action == "flag" else "block", direction)
            LOG.warning(
                "guardrail %s: the judge is unreachable (%s)", guardrail.name, type(err).__name__
            )
            return False, None
        if flagged is not None:
            report.add(guardrail, "judge", cfg.action, direction, "judge", flagged)
        return True, flagged

    def _request(self, text: str) -> UpstreamRequest:
        cfg = self._cfg
        assert cfg.url is not None
        body: dict[str, Any] = {"input": text}
        if cfg.model:
            body["model"] = cfg.model
        encoded = _ENCODE.encode(body)
        return UpstreamRequest(
            method="POST", url=cfg.url, headers=dict(self._headers), body=encoded
        )

    async def _ask_model(self, text: str) -> str | None:
        """A chat model this gateway serves (its first target), as a classifier."""
        assert self._catalog is not None and self._cfg.route is not None
        leaf = self._catalog.resolve(self._cfg.route).first_leaf()
        adapter, model = leaf.target.provider, leaf.target.model
        messages = [{"role": "system", "content": JUDGE_PROMPT}, {"role": "user", "content": text}]
        raw = _ENCODE.encode(
            {"model": model, "messages": messages, "max_tokens": 20, "temperature": 0}
        )
        view = CHAT_DECODER.decode(raw)
        request = adapter.build_request(Endpoint.CHAT, view, raw, model)
        status, _, body = await self._transport.fetch(request, self._timeouts, adapter.name)
        if status != 200:
            raise ValueError(f"judge answered {status}")
        parsed = adapter.parse_response(Endpoint.CHAT, view, body, model)
        answer = _ANSWER.decode(parsed.body).choices[0].message.content or ""
        verdict, _, category = answer.strip().partition(":")
        if verdict.strip().upper() != "UNSAFE":
            return None
        wanted = self._cfg.categories
        named = _safe(category.strip().lower().replace(" ", "_"))
        if wanted and named not in wanted:
            return None
        return named or "content"

    async def _ask(self, request: UpstreamRequest) -> str | None:
        """The flagged categories (comma-separated, "content" if none are named), or None."""
        status, _, raw = await self._transport.fetch(request, self._timeouts, "guardrail-judge")
        if status != 200 or len(raw) > MAX_BODY:
            raise ValueError(f"judge answered {status}")
        doc = _DECODE.decode(raw)
        if not isinstance(doc, dict):
            raise ValueError("judge answered no object")
        results = doc.get("results")
        verdicts = results if isinstance(results, list) else [doc]
        found: list[str] = []
        flagged_any = False
        for verdict in verdicts:
            if not isinstance(verdict, dict) or not verdict.get("flagged"):
                continue
            flagged_any = True
            categories = verdict.get("categories")
            if isinstance(categories, dict):
                found.extend(str(k) for k, v in categories.items() if v)
            elif isinstance(categories, list):
                found.extend(str(c) for c in categories)
        if not flagged_any:
            return None
        wanted = self._cfg.categories
        if wanted:
            found = [c for c in found if c in wanted]
            if not found:
                return None
        named = ",".join(sorted({_safe(c) for c in found} - {""}))
        return named[:120] or "content"


def _safe(category: str) -> str:
    """A judge's category name as it may appear in an error message: letters, digits, / _ -."""
    return "".join(ch for ch in category[:40] if ch.isascii() and (ch.isalnum() or ch in "/_-"))
