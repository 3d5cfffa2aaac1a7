"""Rows of a reverse sweep by compressed seeding (modes/sparse_rows.py).

Oracle: one plain batched reverse sweep with a unit seed per row (no grouping, no NaN
probes), and finite differences of the switching values on a smooth piece. The compressed
rows must equal the plain ones exactly (a column owned by one row of a group receives that
row's operations plus exact zeros), on programs chosen so that the first residue guess
works (chained), must be split (stride 4 = the first guess's modulus), contains one dense
row among sparse ones, couples switches through |z| (K), is dense (all plain), and random
gathers (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kinkgrad.numpy as knp
from kinkgrad.abs_normal._flat import FlatSpec, scalar_output, trace_at
from kinkgrad.abs_normal.active import ActiveModel
from kinkgrad.abs_normal.expand import expand
from kinkgrad.kinks import KinkPolicy
from kinkgrad.modes import sparse_rows
from kinkgrad.modes.sparse_rows import reverse_rows
from kinkgrad.modes.sweeps import reverse_sweep

ABS0 = KinkPolicy(abs=0.0)


@pytest.fixture(autouse=True)
def _no_probe_budget(request, monkeypatch):
    """The equality tests exercise grouping and splitting at small sizes, where the probe
    budget (1/8 of the rows) would send everything to plain sweeps."""
    if request.node.name != "test_compression_counts":
        monkeypatch.setattr(sparse_rows, "_BUDGET", 1)


def _setup(f, x):
    tr = trace_at(f, x, "test")
    exp, spec = expand(tr), FlatSpec(tr)
    js, ents = exp.locate_many(np.arange(exp.s))
    slots = np.array([exp.z_slot(int(j)) for j in js], dtype=np.int64)
    keep = [v.index for v in exp.traced.in_vars]
    keep += [exp.u_slot(j) for j in range(len(exp.abs_eqns))]
    return tr, exp, spec, slots, ents.astype(np.int64), keep


def _plain(exp, slots, ents, keep):
    r = slots.size
    seeds = {}
    for s in np.unique(slots):
        arr = np.zeros((r,) + np.shape(exp.vals[s]))
        on = slots == s
        arr.reshape(r, -1)[np.flatnonzero(on), ents[on]] = 1.0
        seeds[int(s)] = arr
    ct = reverse_sweep(exp.eqns, exp.vals, seeds, ABS0, keep=set(keep))
    return [np.zeros((r, np.size(exp.vals[k]))) if ct.get(k) is None else
            np.broadcast_to(ct[k], (r,) + np.shape(exp.vals[k])).reshape(r, -1)
            for k in keep]


def _check(f, x):
    _, exp, _, slots, ents, keep = _setup(f, x)
    mats, stats = reverse_rows(exp.eqns, exp.vals, slots, ents, keep, ABS0)
    for M, D in zip(mats, _plain(exp, slots, ents, keep)):
        np.testing.assert_array_equal(M.toarray(), D)
    return stats


def chained(x):
    a, b = x[:-1], x[1:]
    return knp.sum(knp.abs(a * a + b * b - 1.0)) + knp.sum(knp.maximum(a, -b))


def stride4(x):
    return knp.sum(knp.abs(x[:-4] - 2.0 * x[4:]))


def dense_among_sparse(x):
    return knp.sum(knp.abs(knp.concatenate([x[:-1] - x[1:], knp.reshape(knp.sum(x), (1,))])))


def coupled(x):
    return knp.sum(knp.abs(knp.abs(x[:-1]) - x[1:]))


def tournament(x):
    return knp.max(x * x)


def hilbert(x):
    n = x.shape[0]
    H = 1.0 / (np.arange(n)[:, None] + np.arange(n)[None, :] + 1.0)
    return knp.max(knp.abs(H @ x))


def _mlp(layers):
    """A ReLU MLP batch loss as a function of all weights and biases (one flat vector)."""
    rng = np.random.default_rng(11)
    D, H, B = 6, 16, 24
    X = rng.standard_normal((B, D))
    X[:8] = 0.0  # all-zero rows: with zero biases their first-layer units sit at the kink
    sizes = [(D if k == 0 else H, H) for k in range(layers)]

    def f(theta):
        h, at = X, 0
        for a, b in sizes:
            W = knp.reshape(theta[at:at + a * b], (a, b))
            h = knp.relu(h @ W + theta[at + a * b:at + a * b + b])
            at += a * b + b
        return knp.sum(h)

    theta = np.concatenate([np.concatenate([rng.standard_normal(a * b), np.zeros(b)])
                            for a, b in sizes])
    return f, theta


@pytest.mark.parametrize("layers", [1, 2])
def test_batch_rows_grouped_by_sample(layers):
    """2-D switch slots (batch x units) are grouped by sample first: one layer's rows of a
    sample touch disjoint biases; a second layer's share the first layer's."""
    f, theta = _mlp(layers)
    stats = _check(f, theta)
    if layers == 1:
        assert stats.plain_rows == 0 and stats.sweep_rows < stats.rows


@pytest.mark.parametrize("f,point", [
    (chained, "random"), (chained, "kinks"), (stride4, "random"), (stride4, "zeros"),
    (dense_among_sparse, "random"), (dense_among_sparse, "zeros"), (coupled, "zeros"),
    (coupled, "random"), (tournament, "ties"), (tournament, "random"), (hilbert, "zeros"),
])
def test_rows_equal_plain_sweep(f, point):
    n = 301
    rng = np.random.default_rng(3)
    x = {"random": rng.standard_normal(n), "zeros": np.zeros(n),
         "kinks": np.full(n, 2 ** -0.5), "ties": np.tile([1.0, -1.0, 0.5], n // 3 + 1)[:n]}[point]
    _check(f, x)


def test_compression_counts():
    """Structure, not time: chained rows share a handful of sweeps; the stride-4 program
    needs a split; one dense row ends in a small plain group; the dense program's rows all
    go plain."""
    n = 2001
    x = np.random.default_rng(0).standard_normal(n)
    st1 = _check(chained, x)
    assert st1.rows == 2 * (n - 1) and st1.plain_rows == 0 and st1.sweep_rows < 250
    st2 = _check(stride4, x)
    assert st2.plain_rows == 0 and st2.groups > sparse_rows._GROUPS and st2.sweep_rows < 250
    st3 = _check(dense_among_sparse, x)
    assert st3.plain_rows <= 16 and st3.sweep_rows < 300  # the dense row is isolated
    st4 = _check(hilbert, np.zeros(300))
    assert st4.compressed_rows == 0 and st4.plain_rows == st4.rows


def test_rows_match_finite_differences():
    """On a smooth piece (no switch at 0) the rows at x are the gradients of z_i (with the
    signs of the inner |.| fixed): central differences of the switching values."""
    n = 80
    x = np.random.default_rng(5).standard_normal(n)
    _, exp, spec, slots, ents, keep = _setup(coupled, x)
    mats, _ = reverse_rows(exp.eqns, exp.vals, slots, ents, keep[:1], ABS0)
    z0 = exp.z()
    h = 1e-6
    J = np.zeros((z0.size, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        zp = expand(trace_at(coupled, x + e, "test")).z()
        zm = expand(trace_at(coupled, x - e, "test")).z()
        J[:, j] = (zp - zm) / (2 * h)
    # the inner |x_i| switches' own rows are +-e_i; the outer rows carry the chain rule
    np.testing.assert_allclose(mats[0].toarray(), J, atol=1e-7)


def test_float32_program():
    x = np.random.default_rng(1).standard_normal(400).astype(np.float32)
    _check(chained, x)


@settings(derandomize=True, deadline=None, max_examples=25,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(40, 120), st.integers(1, 6))
def test_random_gathers(seed, s, width):
    """z = x[i] * x[j] - x[k] with random indices in a window of ``width``: supports
    overlap irregularly, so groups are split at random places."""
    rng = np.random.default_rng(seed)
    n = 60
    base = rng.integers(0, n - width, s)
    i, j, k = (base + rng.integers(0, width, s) for _ in range(3))

    def f(x):
        return knp.sum(knp.abs(x[i] * x[j] - x[k]))

    _check(f, rng.standard_normal(n))


@pytest.mark.parametrize("f", [chained, coupled, stride4, tournament])
def test_active_model_same_with_and_without_compression(f, monkeypatch):
    """ActiveModel (A, K, g0, bhat) at a ball of moved switches (selections) equals the one
    built from plain sweeps."""
    n = 257
    x = np.random.default_rng(2).standard_normal(n) * 1e-3
    tr = trace_at(f, x, "test")
    out, _ = scalar_output(tr, "test")
    exp, spec = expand(tr), FlatSpec(tr)
    z = exp.z()
    near = np.abs(z) <= np.quantile(np.abs(z), 0.6)
    fast = ActiveModel(exp, spec, out, active=near)
    monkeypatch.setattr(sparse_rows, "_MIN_ROWS", 10 ** 9)
    slow = ActiveModel(exp, spec, out, active=near)
    assert slow.sweep_stats.plain_rows == slow.sweep_stats.rows
    assert fast.sweep_stats.probe_rows > 0  # supports were measured
    for name in ("A", "K", "g0", "bhat"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(slow, name))


def test_inconsistent_group_falls_back_to_plain():
    """A group whose numeric sweep has a value on a column its probes did not reach is not
    trusted: its rows are swept one by one."""
    _, exp, _, slots, ents, keep = _setup(chained, np.random.default_rng(4).standard_normal(50))
    sw = sparse_rows._Sweeper(exp.eqns, exp.vals, slots, ents, keep, ABS0, None)
    g = np.arange(0, 8)
    wrong = [np.full(size, -1) for size in sw.sizes]  # "nothing reached"
    parts = [[] for _ in keep]
    plain = []
    sparse_rows._compressed(sw, [(g, wrong)], parts, sparse_rows.RowStats(), plain)
    assert len(plain) == 1 and np.array_equal(plain[0], g)
    assert all(not p for p in parts)


def test_image_stencil_rows_grouped_by_parity_along_each_axis():
    """Switches of a 2-D stencil (anisotropic total variation, slot 29 x 29 x 2): the rows of
    one leading index (an image row) share pixels with the next row's, but the groups of
    equal parity along every axis are disjoint: 8 groups, no plain sweep."""
    N = 30

    def f(x):
        X = knp.reshape(x, (N, N))
        G = knp.stack([X[1:, :-1] - X[:-1, :-1], X[:-1, 1:] - X[:-1, :-1]], axis=-1)
        return knp.sum(knp.abs(G))

    x = np.random.default_rng(5).standard_normal(N * N)
    stats = _check(f, x)
    assert stats.rows == 2 * (N - 1) ** 2
    assert stats.plain_rows == 0 and stats.groups == 8
    assert stats.sweep_rows < stats.rows // 8
