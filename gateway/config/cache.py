"""Response caching: the store (shared by every model) and the policy (per model or request)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta, Struct


class CachePolicyCfg(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Whether and how one model's answers are cached; a model's own replaces the default."""

    mode: Literal["off", "simple", "semantic"] = "off"
    max_age: Annotated[float, Meta(gt=0)] = 3600.0  # seconds
    # A shared partition for every caller; without it, each caller key has its own.
    namespace: str | None = None
    # None: the embedder's own default, each measured on tests/data/semantic_pairs.json.
    similarity_threshold: Annotated[float, Meta(gt=0, le=1)] | None = None
    # Semantic lookups are made and measured (metrics) but never served.
    shadow: bool = False
    # Only conversations with at most this many user turns (and no assistant turns) are
    # matched by meaning; longer ones use the exact cache only.
    max_turns: Annotated[int, Meta(ge=1)] = 3


class CacheCfg(CachePolicyCfg, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # What embeds questions for the semantic cache: "auto" (minilm where its weights are
    # installed, else local), "local" (compiled, no model), "minilm" (a neural model shipped as
    # a package, int8 on onnxruntime; see gateway/cache/minilm_onnx.py), or any embedding
    # model the gateway serves, as `provider/model` or an alias.
    embedder: str = "auto"
    max_entries: Annotated[int, Meta(ge=1)] = 100_000
    max_bytes: Annotated[int, Meta(ge=1024)] = 256 * 1024 * 1024
    # Entries live in Redis too (shared by instances, kept across restarts); else routing's
    # redis_url or REDIS_URL.
    redis_url: str | None = None
    # A Redis lookup slower than this counts as a miss.
    redis_timeout_ms: Annotated[int, Meta(ge=1)] = 50
    # Writes waiting for Redis; past this many they are dropped (and counted).
    write_queue: Annotated[int, Meta(ge=1)] = 1000
    # Without Redis, keeps the cache across restarts: written on shutdown, read on start.
    snapshot_path: str | None = None
    # At start, readiness waits (up to this many seconds) until the semantic index is rebuilt
    # from Redis; an unreadable Redis does not wait.
    warm_timeout: Annotated[float, Meta(ge=0)] = 300.0
