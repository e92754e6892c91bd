"""Token counts identical to tiktoken's, for o200k_base and cl100k_base, in both builds: a
multilingual corpus, every Unicode code point in several contexts, random strings, hostile
long pieces; and chat requests counted the way OpenAI's cookbook counts them."""

from __future__ import annotations

import base64
import json
import random
import struct
from pathlib import Path

import pytest

from gateway._native._bpe_py import Encoding as PureEncoding
from gateway.metering import tokens
from tests.tiktoken_ref import DATA, encoding

try:
    from gateway._native._bpe_c import Encoding as CompiledEncoding
except ImportError:  # pragma: no cover - the suite requires the compiled build
    CompiledEncoding = None

NAMES = ("o200k_base", "cl100k_base")
CORPUS = (Path(__file__).parent / "data" / "token_corpus.txt").read_text()
CLASSES = (DATA / "classes.bin").read_bytes()


def build(impl: str, name: str) -> object:
    if impl == "compiled":
        assert CompiledEncoding is not None, "the compiled extension is missing: run make install"
        cls = CompiledEncoding
    else:
        cls = PureEncoding
    return cls((DATA / f"{name}.bpe").read_bytes(), CLASSES, name)


@pytest.fixture(scope="module", params=[(i, n) for i in ("compiled", "pure") for n in NAMES],
                ids=lambda p: f"{p[0]}-{p[1]}")  # fmt: skip
def pair(request: pytest.FixtureRequest) -> tuple[object, object, str]:
    impl, name = request.param
    return build(impl, name), encoding(name), impl


def test_the_shipped_vocabularies_are_openais() -> None:
    # tiktoken checks each rebuilt .tiktoken file against the SHA-256 it pins: loading is the test.
    for name in NAMES:
        assert encoding(name).n_vocab > 100_000


def test_corpus_counts_and_ids_match_tiktoken(pair: tuple[object, object, str]) -> None:
    mine, ref, _ = pair
    for text in [CORPUS, *CORPUS.splitlines(keepends=True)]:
        expected = ref.encode_ordinary(text)
        assert mine.encode(text) == expected, text[:80]
        assert mine.count(text) == len(expected), text[:80]


def test_every_code_point_in_context_matches_tiktoken(pair: tuple[object, object, str]) -> None:
    mine, ref, impl = pair
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    templates = ["a{0}b\n", "{0}'S\n", " {0}{0}\t", "A{0}a ", "1{0}2 ", "\u0301{0}x "]
    if impl == "pure":
        templates = templates[:2]  # the twin is slow; the compiled sweep covers the rest
    for template in templates:
        for start in range(0, len(points), 1 << 16):
            text = "".join(template.format(c) for c in points[start : start + (1 << 16)])
            expected = ref.encode_ordinary(text)
            got = mine.encode(text)
            if got != expected:
                at = next((i for i, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y), 0)
                context = ref.decode(expected[max(0, at - 3) : at + 3])
                pytest.fail(f"{template!r}: differs near {context!r}")
            assert mine.count(text) == len(expected)


def test_random_and_hostile_strings_match_tiktoken(pair: tuple[object, object, str]) -> None:
    mine, ref, _ = pair
    rnd = random.Random(7)
    alphabet = list("aAzZ '\"sStTlLvVeErRdDmM\n\r\t  .,/\\!?-_0123456789éÉ\u0301\u0300ßſ日本語한국어مرحباπ😀👍🏽\u00a0\u2028\u3000\u1680\x85\x0b\x0c")
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 80))) for _ in range(1500)]
    texts += ["a" * 5000, "ab" * 2000, " " * 3000 + "x", "!" * 2000, "1" * 999, "\n" * 500,
              "é" * 700, "日" * 900, "\t \n" * 300, "abc\ud800def", "\udfff"]  # fmt: skip
    for text in texts:
        expected = ref.encode_ordinary(text)
        assert mine.encode(text) == expected, repr(text[:60])
        assert mine.count(text) == len(expected), repr(text[:60])


def test_models_map_to_their_encodings() -> None:
    assert tokens.counter_for("gpt-4o-mini") == tokens.Counter("o200k_base", True)
    assert tokens.counter_for("openai/o3-2025-04-16") == tokens.Counter("o200k_base", True)
    assert tokens.counter_for("gpt-4") == tokens.Counter("cl100k_base", True)
    assert tokens.counter_for("gpt-3.5-turbo") == tokens.Counter("cl100k_base", True)
    assert tokens.counter_for("text-embedding-3-small") == tokens.Counter("cl100k_base", True)
    assert tokens.counter_for("claude-sonnet-4") == tokens.Counter("o200k_base", False)


def cookbook_count(messages: list[dict[str, str]], name: str) -> int:
    """num_tokens_from_messages from OpenAI's cookbook, with tiktoken."""
    enc = encoding(name)
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(enc.encode_ordinary(value))
            if key == "name":
                total += 1
    return total


def cookbook_tools(functions: list[dict], name: str) -> int:
    enc = encoding(name)
    total = 0
    for f in functions:
        total += 7 if name == "o200k_base" else 10
        fn = f["function"]
        total += len(enc.encode_ordinary(fn["name"] + ":" + fn["description"].removesuffix(".")))
        props = fn["parameters"]["properties"]
        if props:
            total += 3
            for key, spec in props.items():
                total += 3
                if "enum" in spec:
                    total -= 3
                    for item in spec["enum"]:
                        total += 3 + len(enc.encode_ordinary(item))
                line = f"{key}:{spec['type']}:{spec['description'].removesuffix('.')}"
                total += len(enc.encode_ordinary(line))
    return total + 12


def test_chat_requests_are_counted_as_openai_bills_them() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful assistant. Answer in one line."},
        {"role": "user", "name": "alice", "content": "What's the capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "And of Japan? 日本の首都は？"},
    ]
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Get the weather for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city."},
            "unit": {"type": "string", "description": "Units", "enum": ["celsius", "fahrenheit"]},
        }}}}]  # fmt: skip
    for model, name in (("gpt-4o", "o200k_base"), ("gpt-4", "cl100k_base")):
        raw = json.dumps({"model": model, "messages": messages}).encode()
        assert tokens.count_request(raw, model) == (cookbook_count(messages, name), True)
        raw = json.dumps({"model": model, "messages": messages, "tools": tools}).encode()
        expected = cookbook_count(messages, name) + cookbook_tools(tools, name)
        assert tokens.count_request(raw, model) == (expected, True)
    raw = json.dumps({"model": "claude-x", "messages": messages}).encode()
    assert tokens.count_request(raw, "claude-x") == (cookbook_count(messages, "o200k_base"), False)


def png(width: int, height: int) -> str:
    header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height)
    return "data:image/png;base64," + base64.b64encode(header + b"\x08\x02\0\0\0").decode()


def test_images_follow_the_tile_rule() -> None:
    assert tokens.image_tokens(png(4096, 8192), "low") == 85
    assert tokens.image_tokens(png(1024, 1024), "high") == 765  # 768x768: 4 tiles
    assert tokens.image_tokens(png(2048, 4096), "auto") == 1105  # 768x1536: 6 tiles
    assert tokens.image_tokens(png(512, 512), None) == 255  # one tile
    assert tokens.image_tokens("https://example.com/cat.jpg", None) == 765  # unknown: 1024 x 1024


def test_embeddings_and_completions_inputs_are_counted() -> None:
    enc = encoding("cl100k_base")
    raw = json.dumps({"model": "text-embedding-3-small", "input": ["hello world", "bye"]}).encode()
    expected = len(enc.encode_ordinary("hello world")) + len(enc.encode_ordinary("bye"))
    assert tokens.count_request(raw, "text-embedding-3-small") == (expected, True)
    raw = json.dumps({"model": "text-embedding-3-small", "input": [[1, 2, 3], [4]]}).encode()
    assert tokens.count_request(raw, "text-embedding-3-small") == (4, True)
    assert tokens.count_request(b"{not json", "gpt-4o") == (3, False)


def test_counting_from_the_decoded_view_matches_the_body() -> None:
    """The limiter counts from the request view when messages are plain text; it must give
    what count_request gives from the raw body, for every shape (else it falls back)."""
    from gateway.metering.tokens import count_request, count_view
    from gateway.pipeline.parse import decode_view
    from gateway.providers.base import Endpoint

    text = (Path(__file__).parent / "data" / "token_corpus.txt").read_text()[:3000]
    bodies = [
        {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": text[:200]}]}]},
        {"messages": [{"role": "user", "content": "hi", "name": "bob"}]},
        {"messages": [{"role": "user", "content": "hi"}],
         "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        {"messages": [{"role": "assistant", "content": None,
                       "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "c", "content": "42"}]},
    ]  # fmt: skip
    for model in ("gpt-4o", "gpt-4", "claude-sonnet-4"):
        for body in bodies:
            raw = json.dumps({"model": model, **body}).encode()
            view = decode_view(Endpoint.CHAT, raw)
            assert count_view(view, raw, model) == count_request(raw, model)[0], (model, body)
