"""The weighted-choice kernel: compiled and pure-Python twins behave identically."""

from __future__ import annotations

import os
import random

import pytest

from gateway._native import _wrr_py

try:
    from gateway._native import _wrr_c
except ImportError:  # pragma: no cover - the compiled build is required by test_compiled_loaded
    _wrr_c = None  # type: ignore[assignment]

TWINS = [pytest.param(_wrr_py, id="pure"), pytest.param(_wrr_c, id="compiled", marks=pytest.mark.c_extension)]


def test_compiled_loaded() -> None:
    # `make test` builds the extensions; a silently missing build must fail, not skip.
    assert _wrr_c is not None, "gateway._native._wrr_c did not build"
    if not os.environ.get("GATEWAY_NO_EXTENSIONS"):
        from gateway._native.wrr import SmoothWeighted

        assert SmoothWeighted is _wrr_c.SmoothWeighted


def _chi_square(counts: list[int], weights: list[float]) -> float:
    total = sum(counts)
    wsum = sum(weights)
    return sum((c - total * w / wsum) ** 2 / (total * w / wsum) for c, w in zip(counts, weights, strict=True) if w)


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("weights", [[3, 1], [5, 1, 1], [0.2, 0.3, 0.5], [1] * 10, [7, 0, 2]])
def test_distribution_matches_weights(twin, weights: list[float]) -> None:  # type: ignore[no-untyped-def]
    picker = twin.SmoothWeighted(weights)
    counts = [0] * len(weights)
    for _ in range(10_000):
        counts[picker.pick()] += 1
    assert _chi_square(counts, weights) < 1.0  # smooth WRR is exact, not merely random-close
    for i, w in enumerate(weights):
        if w == 0:
            assert counts[i] == 0


@pytest.mark.parametrize("twin", TWINS)
def test_unavailable_targets_are_skipped(twin) -> None:  # type: ignore[no-untyped-def]
    picker = twin.SmoothWeighted([1, 1, 1])
    assert {picker.pick(0b010) for _ in range(30)} == {0, 2}
    assert picker.pick(0b111) == -1
    assert twin.SmoothWeighted([0, 0]).pick() == -1
    assert twin.SmoothWeighted([]).pick() == -1


@pytest.mark.parametrize("twin", TWINS)
def test_interleaving_is_smooth(twin) -> None:  # type: ignore[no-untyped-def]
    picker = twin.SmoothWeighted([5, 1, 1])
    assert [picker.pick() for _ in range(7)] == [0, 0, 1, 0, 2, 0, 0]


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("bad", [[-1], [float("nan")], [float("inf")], [1] * 65])
def test_rejects_bad_weights(twin, bad: list[float]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        twin.SmoothWeighted(bad)


def test_twins_agree_on_random_sequences() -> None:
    rng = random.Random(7)
    for _ in range(200):
        weights = [rng.choice([0, 0.5, 1, 2, 3.5, 10]) for _ in range(rng.randint(1, 12))]
        masks = [rng.getrandbits(len(weights)) for _ in range(50)]
        c, py = _wrr_c.SmoothWeighted(weights), _wrr_py.SmoothWeighted(weights)
        assert [c.pick(m) for m in masks] == [py.pick(m) for m in masks]
        c.set_weight(0, 4.0)
        py.set_weight(0, 4.0)
        assert [c.pick() for _ in range(20)] == [py.pick() for _ in range(20)]
        assert c.weights == py.weights
