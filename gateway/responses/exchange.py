"""One /v1/responses call: the request in both forms (the Responses body a pass-through sends,
the chat body a translation sends), the conversation it continues, and its answer on the way
back, kept for the next turn when `store` allows."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import msgspec

from gateway.api.codec import REMOVE, patch_fields
from gateway.api.requests import CHAT_DECODER, ChatView
from gateway.errors import InvalidRequest
from gateway.responses import wire
from gateway.responses.from_chat import EventWriter, new_id, shell, to_response
from gateway.responses.state import Stored
from gateway.responses.to_chat import to_chat

_ENCODER = msgspec.json.Encoder()
_ANY = msgspec.json.Decoder(dict[str, Any])
_FINAL = (b"event: response.completed", b"event: response.incomplete", b"event: response.failed")


def _held_by_openai(request: wire.ResponsesRequest) -> tuple[str, str] | None:
    """The first field naming what only OpenAI holds (the field, what it names), if any."""
    if request.prompt is not None:
        return "prompt", "a stored prompt template"
    if request.conversation is not None:
        return "conversation", "a conversation"
    if request.background:
        return "background", "a background run (polled at OpenAI)"
    return None


class Exchange:
    __slots__ = (
        "_history", "_input", "_items", "chat_body", "chat_view", "held", "hosted", "native",
        "native_view", "partition", "previous", "raw", "request", "response_id", "store",
    )  # fmt: skip

    def __init__(  # noqa: PLR0913 - the request in its two forms, and whose it is
        self,
        request: wire.ResponsesRequest,
        raw: bytes,
        partition: str,
        previous: Stored | None,
        keep: bool,
    ) -> None:
        self.raw = raw
        self.request = request
        self.partition = partition
        self.previous = previous
        self.store = keep and request.store is not False
        items = self._items = wire.decode_items(request.input)
        self._input: list[dict[str, Any]] | None = None
        history = self._history = previous.conversation if previous is not None else []
        decoded = [wire.decode_item(_ENCODER.encode(d), "previous_response_id") for d in history]
        translated = to_chat(request, decoded, items)
        self.chat_body = translated.body
        self.chat_view: ChatView = CHAT_DECODER.decode(translated.body)
        self.hosted = translated.hosted
        self.held = _held_by_openai(request)
        self.native = False
        self.response_id = new_id("resp")
        self.native_view = wire.ResponsesView(model=request.model, stream=request.stream)

    @property
    def input(self) -> list[dict[str, Any]]:
        """This request's input items as JSON objects (made when needed: stored or replayed)."""
        if self._input is None:
            self._input = [
                i.raw if isinstance(i, wire.HostedItem)
                else {"type": i.type, **msgspec.to_builtins(i)}
                for i in self._items
            ]
        return self._input

    def unscanned_json(self) -> bytes:
        """What a pass-through would send that the chat form, which the guardrails scan,
        leaves out, as JSON (b"" when there is none): hosted tools' items, reasoning items'
        summaries and text (in the input and the conversation it continues), a stored
        prompt's variables."""
        items: list[Any] = [i.raw for i in self._items if isinstance(i, wire.HostedItem)]
        items += [d for d in self._history if d.get("type") in wire.HOSTED_ITEMS]
        items += [
            [t.text for t in (*i.summary, *(i.content or ()))]
            for i in self._items if isinstance(i, wire.ReasoningItem)
        ]  # fmt: skip
        items += [
            [d.get("summary"), d.get("content")]
            for d in self._history if d.get("type") == "reasoning"
        ]  # fmt: skip
        prompt = self.request.prompt
        if isinstance(prompt, dict) and prompt.get("variables"):
            items.append(prompt["variables"])  # filled into a template OpenAI holds
        return _ENCODER.encode(items) if items else b""

    @property
    def conversation(self) -> list[dict[str, Any]]:
        return [*self._history, *self.input]

    # --- the request, per attempt -----------------------------------------------------------

    def native_body(self, provider: str, override: dict[str, Any]) -> bytes:
        """The client's body for a provider's own Responses API, with the target's overrides:
        a conversation it does not hold (another provider's, or the gateway's) is sent whole
        instead of by id."""
        previous = self.previous
        changes: dict[str, Any] = dict(override)
        if previous is not None and not (previous.native and previous.provider == provider):
            changes.update(previous_response_id=REMOVE, input=self.conversation)
        return patch_fields(self.raw, changes) if changes else self.raw

    def refuse_hosted(self, provider: str, native: bool) -> None:
        """Raises when the request needs OpenAI itself (a hosted tool, a stored prompt, ...):
        a translation would drop it. `native`: the provider has a Responses API, but this
        attempt must go as chat (a guardrail reads it, or an override has no Responses form)."""
        if self.held:
            field, what = self.held
            why = (
                "this model's guardrails or overrides need the request as chat, which cannot"
                " carry it" if native else f"provider {provider} cannot serve it"
            )
            raise InvalidRequest(
                f"`{field}` names {what}, which only OpenAI holds; {why}. Send the request in"
                " full, or route this model to OpenAI without them.",
                param=field,
                code="unsupported_parameter",
            )
        if self.hosted:
            why = (
                "this model's guardrails or overrides need the request as chat" if native
                else f"provider {provider} cannot run it"
            )
            raise InvalidRequest(
                f"The tool '{self.hosted[0]}' is run by OpenAI itself; {why}. Use a function"
                " tool, or route this model to OpenAI.",
                param="tools",
                code="unsupported_tool",
            )

    # --- the answer -------------------------------------------------------------------------

    def _shell(self) -> dict[str, Any]:
        tools = [
            {"type": "function", "name": t.name, "description": t.description,
             "parameters": t.parameters, "strict": t.strict} if t.type == "function"
            else {"type": "namespace", "name": t.name, "description": t.description,
                  "tools": [{k: v for k, v in msgspec.to_builtins(f).items() if v is not None}
                            for f in t.tools or ()]}
            for t in self.request.tools or () if t.type in ("function", "namespace")
        ]  # fmt: skip
        return shell(self.request, self.response_id, tools)

    def body(self, body: bytes, provider: str, keep: Callable[[Stored], None]) -> bytes:
        if self.native:
            if self.store:
                self._kept(_ANY.decode(body), provider, keep)
            return body
        response = to_response(body, self._shell())
        self._kept(response, provider, keep)
        return _ENCODER.encode(response)

    def events(
        self, frames: AsyncIterator[bytes], provider: str, keep: Callable[[Stored], None]
    ) -> AsyncIterator[bytes]:
        if self.native:
            return self._tapped(frames, provider, keep) if self.store else frames
        writer = EventWriter(self._shell(), lambda response: self._kept(response, provider, keep))
        return writer.convert(frames)

    async def _tapped(
        self, frames: AsyncIterator[bytes], provider: str, keep: Callable[[Stored], None]
    ) -> AsyncIterator[bytes]:
        """A pass-through stream, relayed; its final event's response is kept."""
        async with aclosing(frames):  # type: ignore[type-var]
            async for batch in self._kept_from(frames, provider, keep):
                yield batch

    async def _kept_from(
        self, frames: AsyncIterator[bytes], provider: str, keep: Callable[[Stored], None]
    ) -> AsyncIterator[bytes]:
        async for batch in frames:
            if batch.find(b"event: response.") >= 0:
                for frame in batch.split(b"\n\n"):
                    if frame.startswith(_FINAL):
                        data = frame.partition(b"\ndata: ")[2]
                        try:
                            response = _ANY.decode(data).get("response")
                        except msgspec.MsgspecError:
                            response = None
                        if isinstance(response, dict):
                            self._kept(response, provider, keep)
            yield batch

    def _kept(
        self, response: dict[str, Any], provider: str, keep: Callable[[Stored], None]
    ) -> None:
        if not self.store or response.get("status") == "failed":
            return
        output = [item for item in response.get("output") or () if isinstance(item, dict)]
        keep(
            Stored(
                id=str(response.get("id") or self.response_id),
                partition=self.partition,
                created_at=time.time(),
                provider=provider,
                native=self.native,
                response=response,
                input=self.input,
                conversation=[*self.conversation, *(_replayable(i) for i in output)],
            )
        )


def _replayable(item: dict[str, Any]) -> dict[str, Any]:
    """An output item as an input item a later turn can send (what the SDKs send back)."""
    kind = item.get("type")
    if kind == "message":
        return {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": p.get("text", "")} if p.get("type") == "output_text"
            else {"type": "refusal", "refusal": p.get("refusal", "")}
            for p in item.get("content") or () if p.get("type") in ("output_text", "refusal")
        ]}  # fmt: skip
    if kind == "function_call":
        return {"type": "function_call", "call_id": item.get("call_id", ""),
                "name": item.get("name", ""), "arguments": item.get("arguments", "")}  # fmt: skip
    if kind == "reasoning":
        return {"type": "reasoning", "summary": item.get("summary") or []}
    # Hosted tools' items (web search calls, ...) are OpenAI's: kept as a note of what happened.
    return {"type": "message", "role": "assistant", "content": [
        {"type": "output_text", "text": f"[{kind}]"}
    ]}  # fmt: skip
