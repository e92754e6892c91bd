"""OpenAI embedding requests as Cohere v2 embed, and the vectors back in OpenAI's shape.

Cohere needs an `input_type` for v3+ models; OpenAI has none, so the gateway sends
`search_document` unless the client passes Cohere's own `input_type` in the body.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from gateway.api.usage import Usage
from gateway.errors import InvalidRequest, UpstreamError
from gateway.providers.cohere import wire

_ENCODER = msgspec.json.Encoder()


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[str]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    input_type: str = "search_document"
    truncate: str | None = None


class _Item(msgspec.Struct, kw_only=True):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class _EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    total_tokens: int


class _EmbeddingList(msgspec.Struct, kw_only=True):
    object: Literal["list"] = "list"
    data: list[_Item]
    model: str
    usage: _EmbeddingUsage


REQUEST_DECODER = msgspec.json.Decoder(EmbeddingRequest)


def to_cohere(request: EmbeddingRequest, model: str) -> wire.EmbedRequest:
    texts = [request.input] if isinstance(request.input, str) else request.input
    if not texts:
        raise InvalidRequest("input: must not be empty.", param="input", code="invalid_value")
    kind = "base64" if request.encoding_format == "base64" else "float"
    return wire.EmbedRequest(
        model=model,
        texts=texts,
        input_type=request.input_type,
        embedding_types=[kind],
        output_dimension=request.dimensions,
        truncate=request.truncate,
    )


def to_openai(body: bytes, provider: str, model: str) -> tuple[bytes, Usage]:
    try:
        response = wire.EMBED_RESPONSE.decode(body)
    except msgspec.MsgspecError:
        raise UpstreamError(
            f"provider {provider} returned a body that is not a Cohere embed response", status=502
        ) from None
    vectors: list[list[float] | str] = [
        *(response.embeddings.base64 or response.embeddings.float_ or [])
    ]
    billed = response.meta.billed_units if response.meta else None
    tokens = int(billed.input_tokens) if billed else 0
    document = _EmbeddingList(
        data=[_Item(index=i, embedding=v) for i, v in enumerate(vectors)],
        model=model,
        usage=_EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
    return _ENCODER.encode(document), Usage(prompt_tokens=tokens, total_tokens=tokens)
