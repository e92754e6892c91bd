"""The routing kernel: compiled and pure-Python twins behave identically, and each strategy
does what it promises."""

from __future__ import annotations

import os
import random

import pytest

from gateway._native import _balance_py

try:
    from gateway._native import _balance_c
except ImportError:  # pragma: no cover - the compiled build is required by test_compiled_loaded
    _balance_c = None  # type: ignore[assignment]

TWINS = [pytest.param(_balance_py, id="pure"), pytest.param(_balance_c, id="compiled", marks=pytest.mark.c_extension)]


def test_compiled_loaded() -> None:
    # `make test` builds the extensions; a silently missing build must fail, not skip.
    assert _balance_c is not None, "gateway._native._balance_c did not build"
    if not os.environ.get("GATEWAY_NO_EXTENSIONS"):
        from gateway._native.balance import Balancer

        assert Balancer is _balance_c.Balancer


def _chi_square(counts: list[int], weights: list[float]) -> float:
    total = sum(counts)
    wsum = sum(weights)
    return sum((c - total * w / wsum) ** 2 / (total * w / wsum) for c, w in zip(counts, weights, strict=True) if w)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("weights", [[3, 1], [5, 1, 1], [0.2, 0.3, 0.5], [1] * 10, [7, 0, 2]])
def test_distribution_matches_weights(twin, weights: list[float]) -> None:  # type: ignore[no-untyped-def]
    picker = twin.Balancer(weights)
    counts = [0] * len(weights)
    for _ in range(10_000):
        counts[picker.pick()] += 1
    assert _chi_square(counts, weights) < 1.0  # smooth WRR is exact, not merely random-close
    for i, w in enumerate(weights):
        if w == 0:
            assert counts[i] == 0


@pytest.mark.parametrize("twin", TWINS)
def test_unavailable_targets_are_skipped(twin) -> None:  # type: ignore[no-untyped-def]
    picker = twin.Balancer([1, 1, 1])
    assert {picker.pick(0b010) for _ in range(30)} == {0, 2}
    assert picker.pick(0b111) == -1
    assert picker.least_busy(0b111) == -1
    assert picker.least_latency(0b111, 0.5, 0.5) == -1
    assert twin.Balancer([0, 0]).pick() == -1
    assert twin.Balancer([]).pick() == -1


@pytest.mark.parametrize("twin", TWINS)
def test_interleaving_is_smooth(twin) -> None:  # type: ignore[no-untyped-def]
    picker = twin.Balancer([5, 1, 1])
    assert [picker.pick() for _ in range(7)] == [0, 0, 1, 0, 2, 0, 0]


@pytest.mark.parametrize("twin", TWINS)
def test_least_busy_follows_in_flight_per_weight(twin) -> None:  # type: ignore[no-untyped-def]
    picker = twin.Balancer([1, 1, 2])
    picker.begin(0)
    picker.begin(2)
    assert picker.least_busy() == 1  # loads: 1, 0, 0.5
    picker.begin(1)
    picker.begin(1)
    assert picker.least_busy() == 2  # loads: 1, 2, 0.5
    picker.end(1, 0.1, True)
    assert picker.in_flight(1) == 1
    assert [picker.least_busy(0b100) for _ in range(2)] in ([0, 1], [1, 0])  # equal loads take turns


@pytest.mark.parametrize("twin", TWINS)
def test_least_latency_prefers_fast_and_still_probes_the_slow(twin) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    picker = twin.Balancer([1, 1], probe_every=20)
    picker.end(0, 0.500, True)  # slow
    picker.end(1, 0.010, True)  # fast
    picks = [picker.least_latency(0, rng.random(), rng.random()) for _ in range(200)]
    assert picks.count(1) > 180
    assert 0 < picks.count(0) <= 200 // 20  # probes, at most one per probe_every picks
    for _ in range(16):  # the slow one recovered: its probes come back fast
        picker.end(0, 0.001, True)
    picks = [picker.least_latency(0, rng.random(), rng.random()) for _ in range(100)]
    assert picks.count(0) > 80


@pytest.mark.parametrize("twin", TWINS)
def test_failures_count_against_latency(twin) -> None:  # type: ignore[no-untyped-def]
    picker = twin.Balancer([1, 1])
    picker.end(0, 0.1, True)
    picker.end(0, 0.1, False)
    assert picker.latency(0) == pytest.approx(0.1 + 0.3 * (0.2 - 0.1))


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("bad", [[-1], [float("nan")], [float("inf")], [1] * 65])
def test_rejects_bad_weights(twin, bad: list[float]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        twin.Balancer(bad)


def test_twins_agree_on_random_sequences() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 12)
        weights = [rng.choice([0, 0.5, 1, 2, 3.5, 10]) for _ in range(n)]
        c, py = _balance_c.Balancer(weights, probe_every=5), _balance_py.Balancer(weights, probe_every=5)
        for _ in range(80):
            op = rng.random()
            mask = rng.getrandbits(n) if rng.random() < 0.5 else 0
            if op < 0.25:
                assert c.pick(mask) == py.pick(mask)
            elif op < 0.45:
                assert c.least_busy(mask) == py.least_busy(mask)
            elif op < 0.7:
                r1, r2 = rng.random(), rng.random()
                assert c.least_latency(mask, r1, r2) == py.least_latency(mask, r1, r2)
            elif op < 0.85:
                i = rng.randrange(n)
                c.begin(i)
                py.begin(i)
            else:
                i, seconds, ok = rng.randrange(n), rng.random(), rng.random() < 0.7
                c.end(i, seconds, ok)
                py.end(i, seconds, ok)
        assert [c.latency(i) for i in range(n)] == [py.latency(i) for i in range(n)]
        assert [c.in_flight(i) for i in range(n)] == [py.in_flight(i) for i in range(n)]
        c.set_weight(0, 4.0)
        py.set_weight(0, 4.0)
        assert [c.pick() for _ in range(20)] == [py.pick() for _ in range(20)]
        assert c.weights == py.weights


def test_json_inspector_twins_agree() -> None:
    """The compiled body inspector gives exactly what its pure twin (the specification) gives,
    on random byte soup built from JSON's structural characters, escapes and quotes."""
    from gateway._native import _json_c, _json_py

    rng = random.Random(7)
    alphabet = [b"{", b"}", b"[", b"]", b'"', b"\\", b",", b":", b"a", b"b", b" ", b"\\u0061", b"1", b"\n", b'\\"']
    cases = [b"".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(20000)]
    cases += [b'{"a":1,"a":2}', b'{"a":1,"\\u0061":2}', b"[" * 200, b'{"k":' + b"{" * 200]
    for case in cases:
        for depth in (2, 5, 128):
            assert _json_c.inspect(case, depth) == _json_py.inspect(case, depth), (case, depth)
    assert _json_c.inspect(b'{"a":1,"a":2}', 128) == (_json_py.DUPLICATE_KEY, "a")
    assert _json_c.inspect(b'{"k":' + b"[" * 200 + b"]" * 200 + b"}", 128) == (_json_py.TOO_DEEP, "k")


def test_json_inspector_compiled_loaded() -> None:
    if not os.environ.get("GATEWAY_NO_EXTENSIONS"):
        from gateway._native import _json_c, jsonscan

        assert jsonscan.inspect is _json_c.inspect


def test_access_log_formatter_twins_write_the_same_bytes() -> None:
    """The compiled access-log formatter writes byte for byte what its pure twin writes, for
    plain and hostile request ids and model names (escaped as JSON strings)."""
    import time

    from gateway._native import _access_c, _access_py

    rng = random.Random(3)
    names = ["gpt-4o-mini", "模型", "a b", "x\ny", 'q"t', "e=1", "back\\slash", "ok.id:1/2", "", "\x00", "ü", "\u2028"]
    entries: list[tuple[object, ...]] = []
    for i in range(5000):
        if i % 7 == 0:
            entries.append((time.time(), "models/{id} path=/v1/models status=200 ms=0.1"))
        else:
            entries.append((time.time() + rng.random(), rng.choice(names), "chat/completions", rng.choice([*names, None]), "openai",
                            rng.choice([200, 400, 502]), rng.random() * 1000, rng.randint(0, 10**6), rng.randint(0, 999), rng.random() < 0.1))  # fmt: skip
    stamp = _access_py.Stamp()
    assert _access_c.format_batch(entries, stamp) == _access_py.format_batch(entries, stamp)
    for name in names:
        assert _access_c.escape(name) == _access_py.escape(name)
    line = _access_py.format_batch([(0.0, "r1", "chat/completions", "a\nFORGED", "openai", 200, 1.25, 3, 4, True)], stamp)
    assert line.endswith(b'r1 chat/completions model="a\\nFORGED" provider=openai status=200 ms=1.2 tokens=3/4 stream_error\n')
    assert line.count(b"\n") == 1


def test_otlp_encoder_twins_write_the_same_bytes() -> None:
    """The compiled OTLP encoder writes byte for byte what its pure twin writes, and both
    decode with opentelemetry-proto's own types to what was recorded."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from gateway._native import _otlp_c, _otlp_py
    from gateway.tracing.spans import CLIENT, SERVER, Span, Trace, new_id

    rng = random.Random(5)
    values: list[object] = ["chat", "模型 ü", "", 0, 1, -7, 2**62, True, False, 3.25, -0.5, ["stop", "length"], None, "x" * 300,
                            [], ("tool_calls",), ["é" * 200, "模型"], ["stop", 3, None]]
    batch = []
    for i in range(300):
        trace = Trace(new_id(16), new_id(8) if i % 3 else None, 1.0)
        for n in range(rng.randint(0, 4)):
            attrs = {f"k{j}": rng.choice(values) for j in range(rng.randint(0, 12))}
            trace.child(f"child {n}", 1.0 + n, 2.0 + n, attrs, kind=CLIENT, error=rng.choice([None, "upstream_error", "é" * 250]))
        root = Span("chat gpt-4o-mini", trace.root_id, trace.parent, SERVER, 10**18 + i, 10**18 + i + 5,
                    {"gen_ai.operation.name": "chat", "n": i, "ratio": i / 7}, rng.choice([None, "server_error"]))  # fmt: skip
        batch.append((trace, root))
    resource, scope = {"service.name": "gw", "service.version": "1"}, ("gateway", "0.1.0")
    compiled = _otlp_c.export_request(batch, resource, scope)
    assert compiled == _otlp_py.export_request(batch, resource, scope)
    assert _otlp_c.export_request([], resource, scope) == _otlp_py.export_request([], resource, scope)
    decoded = ExportTraceServiceRequest()
    decoded.ParseFromString(compiled)
    spans = decoded.resource_spans[0].scope_spans[0].spans
    assert len(spans) == sum(len(t.spans) + 1 for t, _ in batch)
    trace, root = batch[-1]
    last = spans[-1]
    assert last.trace_id == trace.trace_id and last.span_id == root.span_id
    assert last.start_time_unix_nano == root.start and last.name == root.name
    assert {kv.key for kv in last.attributes} == {"gen_ai.operation.name", "n", "ratio"}
    assert decoded.resource_spans[0].scope_spans[0].scope.name == "gateway"
