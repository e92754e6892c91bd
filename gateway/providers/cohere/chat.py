"""OpenAI chat requests as Cohere v2 chat, and Cohere's answers and streams back.

Parameter rule: `n` > 1 and `logprobs` are rejected with a 400; `logit_bias`, `user` and
`parallel_tool_calls` are dropped; a named `tool_choice` becomes REQUIRED with only that tool.
"""

from __future__ import annotations

import time

import msgspec

from gateway.api.chat import (
    ChatCompletion,
    ChatMessage,
    ChatRequest,
    Choice,
    ChunkChoice,
    Delta,
    DeltaFunction,
    DeltaToolCall,
    FunctionCall,
    NamedToolChoice,
    OutMessage,
    TextPart,
    ToolCall,
    text_of,
)
from gateway.api.usage import PromptTokensDetails, Usage
from gateway.errors import InvalidRequest, UpstreamError
from gateway.providers import finish
from gateway.providers.cohere import wire
from gateway.providers.sse import SSEStream, chunk_frame

_ENCODER = msgspec.json.Encoder()


def to_cohere(request: ChatRequest, model: str) -> wire.ChatRequest:
    if (request.n or 1) > 1 or request.logprobs:
        param = "n" if (request.n or 1) > 1 else "logprobs"
        raise InvalidRequest(
            f"This model does not support `{param}`.", param=param, code="unsupported_parameter"
        )
    messages = [_message(m) for m in request.messages]
    tools = [
        wire.Tool(
            function=wire.Function(
                name=t.function.name,
                description=t.function.description,
                parameters=t.function.parameters,
            )
        )
        for t in request.tools or ()
    ]
    strict = any(t.function.strict for t in request.tools or ()) or None
    choice: str | None = None
    requested = request.tool_choice
    if isinstance(requested, NamedToolChoice):
        tools = [t for t in tools if t.function.name == requested.function.name]
        choice = "REQUIRED"
    elif requested == "required":
        choice = "REQUIRED"
    elif requested == "none" and tools:
        choice = "NONE"
    form = request.response_format
    response_format = None
    if form is not None and form.type != "text":
        schema = form.json_schema.schema if form.json_schema else None
        response_format = wire.ResponseFormat(type="json_object", json_schema=schema)
    return wire.ChatRequest(
        model=model,
        messages=messages,
        stream=True if request.stream else None,
        tools=tools or None,
        tool_choice=choice,  # type: ignore[arg-type]
        strict_tools=strict if tools else None,
        max_tokens=request.output_limit,
        stop_sequences=request.stop_sequences,
        temperature=request.temperature,
        p=request.top_p,
        k=request.top_k,
        seed=request.seed,
        frequency_penalty=request.frequency_penalty,
        presence_penalty=request.presence_penalty,
        response_format=response_format,
    )


def _message(message: ChatMessage) -> wire.Message:
    if message.role in ("system", "developer"):
        return wire.Message(role="system", content=text_of(message.content))
    if message.role in ("tool", "function"):
        return wire.Message(
            role="tool", tool_call_id=message.tool_call_id, content=text_of(message.content)
        )
    if message.role == "assistant":
        return wire.Message(
            role="assistant",
            content=text_of(message.content) or None,
            tool_calls=message.tool_calls or None,
        )
    content = message.content
    if isinstance(content, list):
        parts: list[wire.TextContent | wire.ImageContent] = [
            wire.TextContent(text=p.text)
            if isinstance(p, TextPart)
            else wire.ImageContent(image_url=wire.ImageURL(url=p.image_url.url))
            for p in content
        ]
        return wire.Message(role="user", content=parts)
    return wire.Message(role="user", content=content or "")


def to_usage(usage: wire.Usage | None) -> Usage | None:
    if usage is None:
        return None
    counts = usage.tokens or usage.billed_units
    if counts is None:
        return None
    prompt, completion = int(counts.input_tokens), int(counts.output_tokens)
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=int(usage.cached_tokens)),
    )


def to_chat_completion(body: bytes, provider: str, model: str) -> tuple[bytes, Usage | None]:
    try:
        response = wire.CHAT_RESPONSE.decode(body)
    except msgspec.MsgspecError:
        raise UpstreamError(
            f"provider {provider} returned a body that is not a Cohere chat response", status=502
        ) from None
    text = "".join(part.text for part in response.message.content if part.type == "text")
    calls = [
        ToolCall(
            id=c.id, function=FunctionCall(name=c.function.name, arguments=c.function.arguments)
        )
        for c in response.message.tool_calls
        if c.function is not None
    ]
    usage = to_usage(response.usage)
    completion = ChatCompletion(
        id=response.id,
        object="chat.completion",
        created=int(time.time()),
        model=model,
        choices=[
            Choice(
                index=0,
                message=OutMessage(content=text or None, tool_calls=calls or None),
                finish_reason=finish.COHERE.get(response.finish_reason or "", "stop"),
            )
        ],
        usage=usage,
    )
    return _ENCODER.encode(completion), usage


class ChunkStream(SSEStream):
    """Cohere's typed events as OpenAI chunks; tool calls numbered densely from 0."""

    __slots__ = ("_created", "_id", "_model", "_provider", "_tools", "_wants_usage")

    def __init__(self, provider: str, model: str, *, wants_usage: bool) -> None:
        super().__init__()
        self._provider = provider
        self._model = model
        self._wants_usage = wants_usage
        self._created = int(time.time())
        self._id = "cohere"
        self._tools = 0

    def _chunk(
        self, delta: Delta | None, reason: str | None = None, usage: Usage | None = None
    ) -> bytes:
        choices = [] if delta is None else [ChunkChoice(index=0, delta=delta, finish_reason=reason)]
        return chunk_frame(self._id, self._created, self._model, choices, usage)

    def feed(self, event: str | None, data: bytes) -> list[bytes]:  # noqa: C901 - one branch per event type
        try:
            item = wire.STREAM_EVENT.decode(data)
        except msgspec.MsgspecError:
            raise UpstreamError(
                f"provider {self._provider} sent a stream event that could not be read",
                status=502,
            ) from None
        delta = item.delta
        message = delta.message if delta else None
        if item.type == "message-start":
            self._id = item.id or self._id
            return [self._chunk(Delta(role="assistant", content=""))]
        content = message.content if message else None
        call = message.tool_calls if message else None
        if item.type == "content-delta" and isinstance(content, wire.DeltaContent) and content.text:
            return [self._chunk(Delta(content=content.text))]
        if item.type == "tool-call-start" and isinstance(call, wire.ToolCallOut):
            index, self._tools = self._tools, self._tools + 1
            function = call.function or wire.FunctionOut()
            head = DeltaToolCall(
                index=index,
                id=call.id,
                type="function",
                function=DeltaFunction(name=function.name, arguments=function.arguments),
            )
            return [self._chunk(Delta(tool_calls=[head]))]
        if item.type == "tool-call-delta" and isinstance(call, wire.ToolCallOut):
            fragment = call.function
            if fragment is None or not fragment.arguments:
                return []
            part = DeltaToolCall(
                index=self._tools - 1, function=DeltaFunction(arguments=fragment.arguments)
            )
            return [self._chunk(Delta(tool_calls=[part]))]
        if item.type == "message-end":
            return self._end(delta)
        return []

    def _end(self, delta: wire.EventDelta | None) -> list[bytes]:
        if delta is not None and delta.error:
            raise UpstreamError(delta.error, status=502, code="upstream_error")
        self.finished = True
        self.usage = to_usage(delta.usage if delta else None)
        reason = finish.COHERE.get((delta.finish_reason if delta else None) or "", "stop")
        frames = [self._chunk(Delta(), reason)]
        if self._wants_usage and self.usage is not None:
            frames.append(self._chunk(None, usage=self.usage))
        return frames
