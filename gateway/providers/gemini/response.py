"""Gemini answers in OpenAI's format: whole responses, and SSE streams as chunks."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping

import msgspec

from gateway.api.chat import (
    ChatCompletion,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCall,
    OutMessage,
    ToolCall,
)
from gateway.api.usage import CompletionTokensDetails, PromptTokensDetails, Usage
from gateway.errors import UpstreamError
from gateway.providers import finish
from gateway.providers.gemini import wire
from gateway.providers.sse import SSEStream, chunk_frame

_ENCODER = msgspec.json.Encoder()
_CODE_FOR_STATUS = {
    401: "invalid_api_key",
    403: "permission_denied",
    404: "model_not_found",
    429: "rate_limit_exceeded",
    503: "overloaded",
}
_CONTEXT_PHRASES = (
    "exceeds the maximum number of tokens",
    "input token count",
    "payload size exceeds",
)


def call_id(response_id: str, candidate: int, k: int) -> str:
    """Gemini's function calls carry no ids: derive one that is the same every time the same
    response is read, so replays and caches agree."""
    digest = hashlib.blake2b(f"{response_id}:{candidate}:{k}".encode(), digest_size=12)
    return "call_" + digest.hexdigest()


def _tool_id(part: wire.Part, response_id: str, candidate: int, k: int) -> str:
    assert part.function_call is not None
    ident = part.function_call.id or call_id(response_id, candidate, k)
    if part.thought_signature:
        ident += wire.SIGNATURE_MARK + part.thought_signature
    return ident


def to_usage(meta: wire.UsageMetadata | None) -> Usage | None:
    if meta is None:
        return None
    completion = meta.candidates_token_count
    # Some models count thoughts inside candidatesTokenCount and some do not: trust the total.
    if meta.prompt_token_count + completion < meta.total_token_count:
        completion += meta.thoughts_token_count
    prompt = meta.prompt_token_count + meta.tool_use_prompt_token_count
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=meta.cached_content_token_count),
        completion_tokens_details=CompletionTokensDetails(
            reasoning_tokens=meta.thoughts_token_count
        ),
    )


def _decode(body: bytes, provider: str) -> wire.GenerateContentResponse:
    try:
        return wire.RESPONSE_DECODER.decode(body)
    except msgspec.MsgspecError:
        raise UpstreamError(
            f"provider {provider} returned a body that is not a Gemini response", status=502
        ) from None


def to_chat_completion(
    body: bytes, provider: str, model: str
) -> tuple[bytes, Usage | None, str | None]:
    response = _decode(body, provider)
    if response.error is not None:
        raise to_upstream_error(response.error.code or 502, response.error, provider, {})
    response_id = response.response_id or os.urandom(8).hex()
    choices: list[Choice] = []
    if (
        not response.candidates
        and response.prompt_feedback
        and response.prompt_feedback.block_reason
    ):
        choices.append(
            Choice(index=0, message=OutMessage(content=None), finish_reason="content_filter")
        )
    for candidate in response.candidates:
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[ToolCall] = []
        parts = candidate.content.parts if candidate.content else []
        for part in parts:
            if part.function_call is not None:
                arguments = _ENCODER.encode(part.function_call.args or {}).decode()
                ident = _tool_id(part, response_id, candidate.index, len(calls))
                function = FunctionCall(name=part.function_call.name, arguments=arguments)
                calls.append(ToolCall(id=ident, function=function))
            elif part.text is not None:
                (thoughts if part.thought else texts).append(part.text)
        reason = "tool_calls" if calls else finish.gemini(candidate.finish_reason)
        filtered = reason == "content_filter"
        choices.append(
            Choice(
                index=candidate.index,
                message=OutMessage(
                    content=None if filtered or not texts else "".join(texts),
                    tool_calls=calls or None,
                    reasoning_content="".join(thoughts) if thoughts else None,
                ),
                finish_reason=reason,
            )
        )
    usage = to_usage(response.usage_metadata)
    completion = ChatCompletion(
        id=f"chatcmpl-{response_id}",
        object="chat.completion",
        created=int(time.time()),
        model=response.model_version or model,
        choices=choices,
        usage=usage,
    )
    return _ENCODER.encode(completion), usage, response.model_version


class ChunkStream(SSEStream):
    """Gemini's SSE events as OpenAI chunks. Gemini sends no terminator: a candidate's
    finishReason is the normal end; a connection that closes before it is a cut stream."""

    __slots__ = (
        "_created",
        "_id",
        "_model",
        "_provider",
        "_role_sent",
        "_tool_counts",
        "_usage_sent",
        "_wants_usage",
        "served_model",
    )

    def __init__(self, provider: str, model: str, *, wants_usage: bool) -> None:
        super().__init__()
        self.served_model: str | None = None
        self._provider = provider
        self._model = model
        self._wants_usage = wants_usage
        self._created = int(time.time())
        self._id = ""
        self._role_sent: set[int] = set()
        self._tool_counts: dict[int, int] = {}  # candidate -> tool calls so far
        self._usage_sent = False

    def _chunk(self, choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
        return chunk_frame(f"chatcmpl-{self._id}", self._created, self._model, choices, usage)

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        response = _decode(data, self._provider)
        if response.error is not None:
            code = response.error.code or 502
            raise to_upstream_error(code, response.error, self._provider, {})
        if not self._id:
            self._id = response.response_id or os.urandom(8).hex()
        if response.model_version:
            self._model = self.served_model = response.model_version
        if response.usage_metadata is not None:
            self.usage = to_usage(response.usage_metadata)
        frames: list[bytes] = []
        if (
            not response.candidates
            and response.prompt_feedback
            and response.prompt_feedback.block_reason
        ):
            delta = Delta(role="assistant")
            frames.append(
                self._chunk([ChunkChoice(index=0, delta=delta, finish_reason="content_filter")])
            )
            self.finished = True
        for candidate in response.candidates:
            frames.extend(self._candidate(candidate))
        if self.finished and self._wants_usage and self.usage is not None and not self._usage_sent:
            self._usage_sent = True
            frames.append(self._chunk([], self.usage))
        return frames

    def _candidate(self, candidate: wire.Candidate) -> list[bytes]:
        index = candidate.index
        frames: list[bytes] = []
        role = None if index in self._role_sent else "assistant"
        self._role_sent.add(index)
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[DeltaToolCall] = []
        for part in candidate.content.parts if candidate.content else ():
            if part.function_call is not None:
                k = self._tool_counts.get(index, 0)
                self._tool_counts[index] = k + 1
                arguments = _ENCODER.encode(part.function_call.args or {}).decode()
                calls.append(
                    DeltaToolCall(
                        index=k,
                        id=_tool_id(part, self._id, index, k),
                        type="function",
                        function=DeltaFunction(name=part.function_call.name, arguments=arguments),
                    )
                )
            elif part.text:
                (thoughts if part.thought else texts).append(part.text)
        if role or texts or thoughts or calls:
            delta = Delta(
                role=role,
                content="".join(texts) if texts else ("" if role and not calls else None),
                tool_calls=calls or None,
                reasoning_content="".join(thoughts) if thoughts else None,
            )
            frames.append(self._chunk([ChunkChoice(index=index, delta=delta)]))
        if candidate.finish_reason and candidate.finish_reason != "FINISH_REASON_UNSPECIFIED":
            reason = (
                "tool_calls"
                if self._tool_counts.get(index)
                else finish.gemini(candidate.finish_reason)
            )
            frames.append(
                self._chunk([ChunkChoice(index=index, delta=Delta(), finish_reason=reason)])
            )
            self.finished = True
        return frames


def _retry_after(detail: wire.ErrorBody) -> str | None:
    for item in detail.details:
        delay = item.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return str(max(1, round(float(delay[:-1]))))
            except ValueError:
                return None
    return None


def to_upstream_error(
    status: int,
    detail: wire.ErrorBody | None,
    provider: str,
    headers: Mapping[str, str],
) -> UpstreamError:
    message = detail.message if detail and detail.message else ""
    if not message:
        message = f"provider {provider} returned HTTP {status}"
    lowered = message.lower()
    if status == 400 and ("api key not valid" in lowered or "api_key_invalid" in lowered):
        status = 401  # Gemini reports a bad key as a 400; every OpenAI client expects a 401
    code = _CODE_FOR_STATUS.get(status)
    if status == 400 and any(p in lowered for p in _CONTEXT_PHRASES):
        code = "context_length_exceeded"
    passed: dict[str, str] = {}
    retry = headers.get("retry-after") or (_retry_after(detail) if detail else None)
    if retry and status in (429, 503):
        passed["retry-after"] = retry
    if not 400 <= status <= 599:
        status = 502
    return UpstreamError(message, status=status, code=code, headers=passed)


def map_error(status: int, headers: Mapping[str, str], body: bytes, provider: str) -> UpstreamError:
    try:
        detail = wire.ERROR_DECODER.decode(body).error
    except msgspec.MsgspecError:
        detail = None
    return to_upstream_error(status, detail, provider, headers)
