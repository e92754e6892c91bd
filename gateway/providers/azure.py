"""Azure OpenAI: OpenAI's protocol at deployment URLs (or Azure's v1 API), with Azure's quirks.

With an api_version, requests go to `{endpoint}/openai/deployments/{model}/...?api-version=…`
(the target's model is the deployment name); without one, to the v1 API at
`{endpoint}/openai/v1/...`. The key travels as `api-key`, as Azure's own clients send it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

import msgspec

from gateway.providers.base import Endpoint, Timeouts, UpstreamRequest
from gateway.providers.openai import OpenAICompatible, PassThroughStream
from gateway.providers.presets import Preset

PRESET = Preset(
    base_url="", embeddings_base64=True, stream_usage=True, completions=True, responses=True
)


class _ChoiceShape(msgspec.Struct):
    delta: msgspec.Raw | None = None


class _ChunkShape(msgspec.Struct):
    choices: list[_ChoiceShape] = []
    usage: msgspec.Raw | None = None


_SHAPE = msgspec.json.Decoder(_ChunkShape)
_FILTER_MARKS = (b"prompt_filter_results", b"prompt_annotations", b"content_filter")


class AzureStream(PassThroughStream):
    """Azure's content filter adds chunks no OpenAI client expects: the opening one with the
    prompt's filter results (empty `id`, `object` and `model`, no choices), and, with the
    asynchronous filter, annotation-only chunks whose choices carry no `delta`. A chunk that
    names a filter is decoded, and dropped unless it has a delta or usage for the client."""

    __slots__ = ()

    def feed(self, event: str | None, data: bytes) -> list[bytes]:
        if any(mark in data for mark in _FILTER_MARKS):
            try:
                shape = _SHAPE.decode(data)
            except msgspec.MsgspecError:
                shape = None  # the base class decides what a broken chunk is
            if (
                shape is not None
                and shape.usage is None
                and not any(choice.delta is not None for choice in shape.choices)
            ):
                return []
        return super().feed(event, data)


class AzureOpenAI(OpenAICompatible):
    kind = "azure"
    vendor = "azure"
    stream_class = AzureStream

    def __init__(  # noqa: PLR0913 - one value per ProviderCfg field
        self,
        name: str,
        *,
        endpoint: str,
        api_key: str | None,
        api_version: str | None,
        timeouts: Timeouts,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        base = endpoint.rstrip("/")
        for suffix in ("/openai/v1", "/openai"):
            base = base.removesuffix(suffix)
        super().__init__(
            name, base_url=base, api_key=None, preset=PRESET, timeouts=timeouts, headers=headers
        )
        self._api_version = api_version
        if api_key:
            self._headers["api-key"] = api_key

    def stored_response(self, method: str, response_id: str) -> UpstreamRequest:
        """Stored responses are the resource's, not a deployment's."""
        rid = quote(response_id, safe="")
        if self._api_version is None:
            url = f"{self._base_url}/openai/v1/responses/{rid}"
        else:
            version = quote(self._api_version, safe="")
            url = f"{self._base_url}/openai/responses/{rid}?api-version={version}"
        return UpstreamRequest(method=method, url=url, headers=self._headers, body=b"")

    def url(self, endpoint: Endpoint, model: str) -> str:
        if self._api_version is None:
            return f"{self._base_url}/openai/v1/{endpoint.value}"
        deployment = quote(model, safe="")
        return (
            f"{self._base_url}/openai/deployments/{deployment}/{endpoint.value}"
            f"?api-version={quote(self._api_version, safe='')}"
        )
