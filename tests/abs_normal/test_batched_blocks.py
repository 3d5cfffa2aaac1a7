"""Many small k-way max/min blocks of one structure described together
(:mod:`kinkgrad.abs_normal._batched_blocks`): the same blocks as the one-by-one path
(candidates, signatures, flags), which stays the truth here, on chained test problems, a
sum of row maxima of |.| (leaf switches), a sum of row minima (not convex: left to the
ordinary path) and mixed shapes (rows of different lengths)."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad import problems
from kinkgrad.abs_normal import _batched_blocks, localset
from kinkgrad.abs_normal._flat import FlatSpec, scalar_output, trace_at
from kinkgrad.abs_normal.active import ActiveModel
from kinkgrad.abs_normal.ball_model import near_active
from kinkgrad.abs_normal.expand import expand

X_STAR = {"chained-cb3-1": np.ones, "chained-lq": lambda n: np.full(n, 2 ** -0.5),
          "chained-crescent-2": np.zeros, "active-faces": np.zeros}


def _model(f, x, radius):
    tr = trace_at(f, x, "test")
    out, _ = scalar_output(tr, "test")
    spec = FlatSpec(tr)
    exp = expand(tr)
    return ActiveModel(exp, spec, out, active=near_active(exp, spec, radius))


def _both(f, x, radius, monkeypatch):
    model = _model(f, x, radius)
    monkeypatch.setattr(_batched_blocks, "_MIN_BLOCKS", 10 ** 9)
    one = localset.local_set(model)
    monkeypatch.setattr(_batched_blocks, "_MIN_BLOCKS", 2)
    many = localset.local_set(model)
    return one, many


CASES = {
    **{name: (lambda name: (problems.get(name, 301).f, X_STAR[name](301), 1e-8))(name)
       for name in X_STAR},
    "sum of row max |.|": (lambda x: knp.sum(knp.max(knp.abs(knp.reshape(x, (-1, 3))),
                                                     axis=1)), np.zeros(300), 0.0),
    "sum of row min": (lambda x: knp.sum(knp.min(knp.reshape(x, (-1, 4)), axis=1)),
                       np.zeros(300), 0.0),
    "rows of two lengths": (lambda x: knp.sum(knp.max(knp.reshape(x[:120], (-1, 3)), axis=1))
                            + knp.sum(knp.max(knp.reshape(x[120:], (-1, 4)), axis=1)),
                            np.r_[np.zeros(120), np.ones(180)], 0.0),
    "weighted row max": (lambda x: knp.sum(np.arange(1.0, 101.0) * knp.max(
        knp.reshape(x, (-1, 3)) * np.array([1.0, -2.0, 0.5]), axis=1)), np.zeros(300), 0.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_blocks_equal_one_by_one(name, monkeypatch):
    f, x, radius = CASES[name]
    one, many = _both(f, x, radius, monkeypatch)
    assert len(one.blocks) == len(many.blocks) > 0
    for a, b in zip(one.blocks, many.blocks):
        assert (a.kind, a.convex, a.complete) == (b.kind, b.convex, b.complete)
        np.testing.assert_array_equal(a.members, b.members)
        np.testing.assert_array_equal(a.cols, b.cols)
        np.testing.assert_allclose(a.outer, b.outer, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(a.inner, b.inner, rtol=1e-13, atol=1e-15)
        assert len(a.signatures) == len(b.signatures)
        for s, t in zip(a.signatures, b.signatures):
            np.testing.assert_array_equal(s, t)
    assert (one.exact, one.inner_exact, one.independent) == \
        (many.exact, many.inner_exact, many.independent)
    np.testing.assert_array_equal(one.g0, many.g0)


def test_some_blocks_are_batched(monkeypatch):
    """The batched path does run (and not only the fallback) on a chained max of three."""
    model = _model(problems.get("chained-cb3-1", 301).f, np.ones(301), 1e-8)
    seen = []
    real = _batched_blocks.batched_tournaments

    def spy(*args):
        out = real(*args)
        seen.append(len(out))
        return out

    monkeypatch.setattr(localset, "batched_tournaments", spy)
    localset.local_set(model)
    assert seen and seen[0] >= 290  # 300 blocks, one per structure through the ordinary path


def test_stationarity_verdicts_unchanged(monkeypatch):
    f = problems.get("chained-cb3-1", 2000).f
    x = np.ones(2000)
    x[::7] += 1e-3  # off the minimiser: not stationary
    a = kinkgrad.stationarity(f, x, radius=1e-8)
    monkeypatch.setattr(_batched_blocks, "_MIN_BLOCKS", 10 ** 9)
    b = kinkgrad.stationarity(f, x, radius=1e-8)
    assert a.verdict == b.verdict == "not stationary"
    np.testing.assert_allclose(a.bounds, b.bounds, rtol=1e-9)
