"""A stream's usage chunk, with the request's cost in it: `usage.cost` in US dollars, an extra
field the OpenAI SDKs keep (their models allow extra fields), added only for clients that
asked for usage (`stream_options.include_usage`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

import msgspec

from gateway.metering.prices import usd
from gateway.metering.record import Metering
from gateway.pipeline.call import Call

_USAGE = b'"usage":{'
_USAGE_SPACED = b'"usage": {'


_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER = msgspec.json.Encoder()


async def with_cost(
    call: Call, metering: Metering, events: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    patched = False
    async with aclosing(events):  # type: ignore[type-var]
        async for batch in events:
            if (
                not patched
                and call.usage is not None
                and (batch.find(_USAGE) >= 0 or batch.find(_USAGE_SPACED) >= 0)
            ):
                patched = True
                batch = _patched(batch, metering.cost(call))
            yield batch


def _patched(batch: bytes, cost: int | None) -> bytes:
    """The batch with `cost` added to the frame that carries usage (left as it is if the
    frame cannot be read, or the model has no price)."""
    if cost is None:
        return batch
    frames = batch.split(b"\n\n")
    for i, frame in enumerate(frames):
        if frame.startswith(b"data: {") and (_USAGE in frame or _USAGE_SPACED in frame):
            try:
                top = _TOP.decode(frame[6:])
                usage = msgspec.json.decode(top["usage"], type=dict[str, msgspec.Raw])
            except (msgspec.MsgspecError, KeyError):
                return batch
            usage["cost"] = msgspec.Raw(usd(cost).encode())
            top["usage"] = msgspec.Raw(_ENCODER.encode(usage))
            frames[i] = b"data: " + _ENCODER.encode(top)
            return b"\n\n".join(frames)
    return batch
