"""certify at scale: sparse A and K, rank and least squares block by block, the max_kinks
guard (abs_normal/_sparse_rank.py, certify.py, active.py).

Oracles: NumPy's dense ``matrix_rank`` and ``lstsq``, a dense transitive closure, the dense
reference path of certify (``certify._DENSE = True``: the m x n A, one Gram
eigendecomposition, one lstsq, as before the sparse path), ``kinkgrad.grad`` and
``in_clarke`` by enumeration on tiny programs. No timing asserts."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.abs_normal import certify, in_clarke
from kinkgrad.abs_normal._flat import FlatSpec, scalar_output, trace_at
from kinkgrad.abs_normal._sparse_rank import min_norm_ones, reaches, sparse_rank
from kinkgrad.abs_normal.active import ActiveModel
from kinkgrad.abs_normal.expand import expand

certify_mod = importlib.import_module("kinkgrad.abs_normal.certify")  # not the function


# ---------------------------------------------------------------------------- matrices
def _block_matrix(rng, blocks, near=None, dup=0, zero_rows=0):
    """Block-diagonal matrix of random low-rank blocks (rows x cols, rank), rows and columns
    shuffled; ``near``: one row per block replaced by another row + that perturbation;
    ``dup`` duplicated rows (scaled by -2: the same unit row up to sign), zero rows."""
    parts = []
    for r, c, k in blocks:
        B = rng.standard_normal((r, k)) @ rng.standard_normal((k, c))
        if near is not None and r >= 2:
            B[-1] = B[0] + near * rng.standard_normal(c) * np.linalg.norm(B[0])
        parts.append(B)
    M = scipy.linalg.block_diag(*parts)  # dense (sparse block_diag's return type changes)
    if dup:
        M = np.vstack([M, -2.0 * M[rng.integers(0, M.shape[0], dup)]])
    M = np.vstack([M, np.zeros((zero_rows, M.shape[1]))])
    return M[rng.permutation(M.shape[0])][:, rng.permutation(M.shape[1])]


def _truth_rank(M):
    """The dense test's threshold: unit rows, singular value <= 1e-6 max(sigma_max, 1)."""
    norms = np.linalg.norm(M, axis=1)
    U = M[norms > 0] / norms[norms > 0, None]
    if U.shape[0] == 0:
        return 0
    top = np.linalg.svd(U, compute_uv=False)[0]
    return int(np.linalg.matrix_rank(U, tol=1e-6 * max(top, 1.0)))


BLOCKS = [
    [(3, 4, 3), (5, 2, 2), (1, 6, 1), (4, 4, 2)],  # full and deficient blocks
    [(6, 3, 3), (6, 3, 1), (2, 9, 2)],  # more rows than columns
    [(1, 1, 1)] * 12 + [(7, 7, 7)],  # many one-entry blocks and one full square block
    [(40, 30, 12), (25, 60, 25), (3, 3, 3)],  # bigger deficient and full blocks
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape", range(len(BLOCKS)))
def test_sparse_rank_equals_matrix_rank(seed, shape):
    rng = np.random.default_rng(seed)
    M = _block_matrix(rng, BLOCKS[shape], dup=seed, zero_rows=seed % 2)
    rank, exact, dependent = sparse_rank(sp.csr_matrix(M))
    assert exact
    assert rank == np.linalg.matrix_rank(M) == _truth_rank(M)
    bad = dependent()
    if rank == M.shape[0]:
        assert bad == []
    else:  # every dependency involves only listed rows: the others are independent
        keep = np.setdiff1d(np.arange(M.shape[0]), bad)
        assert np.linalg.matrix_rank(M[keep]) == keep.size
        assert np.linalg.matrix_rank(M[bad]) < len(bad)


@pytest.mark.parametrize("near, dependent", [(1e-10, True), (1e-3, False)])
def test_sparse_rank_near_dependent_rows_use_the_dense_threshold(near, dependent):
    rng = np.random.default_rng(1)
    M = _block_matrix(rng, [(4, 6, 4), (3, 5, 3), (2, 2, 2)], near=near)
    rank, exact, _ = sparse_rank(sp.csr_matrix(M))
    assert rank == _truth_rank(M) == (M.shape[0] - 3 if dependent else M.shape[0])
    # and the same count as the dense reference test of certify
    assert rank == certify_mod._rank(M)[0]


def test_sparse_rank_too_large_block_is_a_lower_bound():
    rng = np.random.default_rng(2)
    M = _block_matrix(rng, [(6, 8, 4), (5, 9, 5)])
    rank, exact, _ = sparse_rank(sp.csr_matrix(M), eig_limit=2)
    assert not exact and rank <= np.linalg.matrix_rank(M)
    # private columns prove full rank: a lower bound that reaches m
    P = np.hstack([rng.standard_normal((6, 5)), np.diag(rng.uniform(1, 2, 6))])
    rank, exact, _ = sparse_rank(sp.csr_matrix(P), eig_limit=2)
    assert not exact and rank == 6


@pytest.mark.parametrize("seed", range(4))
def test_min_norm_ones_equals_dense_lstsq(seed):
    rng = np.random.default_rng(seed)
    M = _block_matrix(rng, [(3, 5, 3), (4, 2, 2), (1, 3, 1), (5, 1, 1), (6, 6, 3)], dup=2)
    y, _ = min_norm_ones(sp.csr_matrix(M))
    ref = np.linalg.lstsq(M, np.ones(M.shape[0]), rcond=None)[0]
    np.testing.assert_allclose(y, ref, rtol=1e-8, atol=1e-10)


def test_min_norm_ones_by_lsmr_on_a_large_block(monkeypatch):
    import kinkgrad.abs_normal._sparse_rank as sr

    rng = np.random.default_rng(5)
    M = _block_matrix(rng, [(8, 12, 8), (6, 6, 6), (1, 4, 1)])
    monkeypatch.setattr(sr, "_DENSE", 10)  # every block with 2+ rows and columns: LSMR
    y, _ = min_norm_ones(sp.csr_matrix(M))
    np.testing.assert_allclose(M @ y, np.ones(M.shape[0]), atol=1e-8)
    np.testing.assert_allclose(y, np.linalg.pinv(M) @ np.ones(M.shape[0]), atol=1e-8)


def test_moves_all_refuses_moves_resting_on_rounding_noise():
    from kinkgrad.abs_normal._sparse_rank import moves_all

    R = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 1e-17]]))  # free parts of two rows
    assert moves_all(R[[0]], np.array([2.0]), 1e-9)
    assert not moves_all(R, np.array([2.0, 1.0]), 1e-9)  # row 2 is 1 elsewhere: noise
    assert moves_all(R, np.array([2.0, 1e-17]), 1e-9)  # the whole row is that small
    assert not moves_all(sp.csr_matrix(np.array([[1.0], [-1.0]])), np.ones(2), 1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_reaches_equals_dense_closure(seed):
    rng = np.random.default_rng(seed)
    m = 30
    K = np.tril(rng.random((m, m)) < 0.05, -1) * rng.standard_normal((m, m))
    R = np.zeros((m, m), bool)
    for i in range(m):
        deps = K[i] != 0
        R[i] = deps | (R[deps].any(axis=0) if deps.any() else deps)
    for _ in range(10):
        mem = np.sort(rng.choice(m, size=rng.integers(2, 6), replace=False))
        assert reaches(sp.csr_matrix(K), mem) == bool(R[np.ix_(mem, mem)].any())


@pytest.mark.parametrize("seed", range(6))
def test_blocks_equal_the_dense_runs(seed):
    """Runs of one group, split into single switches when K couples inside the run (the
    dense loop this replaced, written out)."""
    from types import SimpleNamespace

    from kinkgrad.abs_normal.certify import KinkGroup, _blocks

    rng = np.random.default_rng(seed)
    m = 40
    owner = np.repeat(rng.integers(0, 4, 12), rng.integers(1, 7, 12))[:m]
    m = owner.size
    K = np.tril(rng.random((m, m)) < 0.02, -1) * 1.0
    groups = [KinkGroup("v", "relu", -1.0, list(np.flatnonzero(owner == g)))
              for g in range(4) if (owner == g).any()]
    own = np.empty(m, int)
    for gi, g in enumerate(groups):
        own[g.members] = gi
    ref, start = [], 0
    for i in range(1, m + 1):
        if i == m or own[i] != own[start]:
            run = np.arange(start, i)
            if np.any(K[np.ix_(run, run)] != 0):
                ref.extend(run[[j]] for j in range(len(run)))
            else:
                ref.append(run)
            start = i
    got = _blocks(SimpleNamespace(m=m, K_sparse=sp.csr_matrix(K)), groups)
    assert [b.tolist() for b in got] == [b.tolist() for b in ref]


# ---------------------------------------------------------------------------- networks
def _mlp(B, zero, H, D, seed=0, layers=1, dyadic=True):
    """ReLU MLP loss over a batch whose first ``zero`` rows are zero, zero biases: every
    unit of those rows sits at its kink (layer 2 too: h = 0 there). Small integer data
    (``dyadic``) adds chance kinks on other rows (rows x_b (x) e_j + e_b1j, a dead unit
    w_j = 0); Gaussian data has none, so the counts are exact."""
    rng = np.random.default_rng(seed)

    def draw(shape, scale):
        if dyadic:
            return rng.integers(-2, 3, size=shape) * scale
        return rng.standard_normal(shape) * scale

    X = draw((B, D), 1.0)
    X[:zero] = 0.0
    y = draw(B, 0.5)
    p = {"W1": draw((D, H), 0.25), "b1": np.zeros(H), "w": draw(H, 0.25)}
    if layers == 2:
        p["V"] = draw((H, H), 0.25)
        p["c"] = np.zeros(H)

    def loss(q):
        h = knp.relu(X @ q["W1"] + q["b1"])
        if layers == 2:
            h = knp.relu(h @ q["V"] + q["c"])
        return knp.mean((h @ q["w"] - y) ** 2)

    return loss, p


def _odd(B, zero, D=3, seed=0):
    """relu(t) - relu(-t) per sample (t = x.w): two groups that move together, so the
    grouped condition fails and plain AD's 0 is not a Clarke gradient."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-2, 3, size=(B, D)).astype(float)
    X[:zero] = X[0]
    w = rng.integers(-2, 3, size=D) / 2.0
    w[-1] = 0.0
    X[:zero, -1] = 0.0
    X[:zero, :-1] = 0.0  # t = 0 on the first rows

    def loss(q):
        t = X @ q["w"] + q["b"]
        return knp.sum(knp.relu(t) - knp.relu(-t))

    return loss, {"w": w, "b": np.zeros(1)}


def _pat(k=2):
    """relu(v) and relu(v_0 - v_1) at v = 0: the second group has no free column once the
    first is fixed (the structural test fails), yet every group pattern is realised (LPs)."""
    def loss(v):
        return knp.sum(knp.relu(v)) + knp.relu(v[0] - v[1])

    return loss, np.zeros(k)


MAKERS = {"mlp": _mlp, "odd": _odd, "pat": _pat}


def _certify_dense(f, x, monkeypatch, **kw):
    with monkeypatch.context() as mp:
        mp.setattr(certify_mod, "_DENSE", True)
        return certify(f, x, **kw)


CASES = [
    ("mlp", dict(B=12, zero=4, H=24, D=5)),  # 96 kinks, grouped by biases
    ("mlp", dict(B=10, zero=3, H=16, D=4, layers=2)),  # two coupled layers
    ("mlp", dict(B=40, zero=10, H=32, D=6)),  # 320 kinks
    ("mlp", dict(B=6, zero=0, H=8, D=3, seed=3)),  # chance kinks only
    ("odd", dict(B=6, zero=3)),  # grouped test fails: "none"
    ("mlp", dict(B=1, zero=1, H=16, D=3)),  # one zero sample: LIKQ
    ("mlp", dict(B=6, zero=0, H=8, D=3, seed=1)),  # chance kinks only
    ("pat", dict(k=3)),  # grouped by sign-pattern LPs
]


@pytest.mark.parametrize("relu0", [0.0, 0.5])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_sparse_verdict_equals_dense_path(case, relu0, monkeypatch):
    kind, kw = CASES[case]
    f, x = MAKERS[kind](**kw)
    pol = kinkgrad.KinkPolicy(relu=relu0)
    new = certify(f, x, policy=pol)
    old = _certify_dense(f, x, monkeypatch, policy=pol)
    assert (new.certified, new.condition, new.rank, new.active_kinks, new.patterns) == (
        old.certified, old.condition, old.rank, old.active_kinks, old.patterns)
    assert new.rank_exact and new.reason == old.reason
    g = kinkgrad.grad(f, policy=pol)(x)
    for k in g if isinstance(g, dict) else [Ellipsis]:
        np.testing.assert_array_equal(new.gradient[k], g[k])


def test_sparse_model_matches_dense_views():
    f, x = _mlp(B=8, zero=3, H=6, D=3, layers=2)
    tr = trace_at(f, x, "test")
    out, _ = scalar_output(tr, "test")
    model = ActiveModel(expand(tr), FlatSpec(tr), out)
    np.testing.assert_array_equal(model.A_sparse.toarray(), model.A)
    np.testing.assert_array_equal(model.K_sparse.toarray(), model.K)
    assert np.all(np.triu(model.K) == 0) and model.K.any()  # coupled, strictly lower
    sigma = np.where(np.arange(model.m) % 2, 1.0, -0.5)
    M = np.eye(model.m) - model.K * sigma[None, :]
    np.testing.assert_allclose(model.W(sigma), np.linalg.solve(M, model.A), atol=1e-12)
    w = np.linalg.solve(M.T, sigma * model.bhat)
    np.testing.assert_allclose(model.gradient(sigma), model.g0 + w @ model.A, atol=1e-12)


@pytest.mark.parametrize("kind, kw", [("mlp", dict(B=3, zero=1, H=3, D=2)),
                                      ("mlp", dict(B=3, zero=2, H=2, D=2)),
                                      ("odd", dict(B=3, zero=1)), ("pat", dict(k=2))])
def test_certified_vectors_are_clarke_gradients(kind, kw):
    f, x = MAKERS[kind](**kw)
    rep = certify(f, x)
    assert rep.active_kinks >= 1
    if rep.certified:
        assert in_clarke(f, x, rep.gradient)
    else:  # the odd program: plain AD's vector (0 on w) is not a Clarke gradient
        assert not in_clarke(f, x, rep.gradient)


def test_max_kinks_guard_answers_undecided():
    f, x = _mlp(B=6, zero=3, H=8, D=3, dyadic=False)
    full = certify(f, x)
    assert full.active_kinks == 24 and full.certified
    rep = certify(f, x, max_kinks=10)
    assert not rep.certified and rep.condition == "undecided" and rep.rank == -1
    assert "max_kinks=10" in rep.reason and "clarke_grad" in rep.reason
    assert rep.active_kinks == 24 and "not computed" in str(rep)
    for k in x:  # the vector itself is still plain AD's
        np.testing.assert_array_equal(rep.gradient[k], full.gradient[k])
    assert certify(f, x, max_kinks=24).certified  # the bound is inclusive


def test_progress_bar_only_on_request(capsys):
    f, x = _mlp(B=4, zero=2, H=4, D=2)
    certify(f, x, progress="auto")  # stderr is not a terminal under pytest
    certify(f, x, progress=False)
    assert capsys.readouterr().err == ""


def test_ten_thousand_kinks_scale_regression():
    """Scale regression, not a timing test: 10,240 active kinks (160 samples, 40 of them
    zero rows, 256 hidden units). Before the sparse path this needed a dense 10,240 x n A
    and a dense Gram eigendecomposition and least-squares solve (minutes, gigabytes); it must
    now finish in seconds. Few inputs keep the reverse sweep (10,241 rows) cheap."""
    f, x = _mlp(B=160, zero=40, H=256, D=4, dyadic=False)
    rep = certify(f, x, progress=False)
    assert rep.active_kinks == 10_240 and rep.rank == 256 and rep.rank_exact
    assert rep.certified and rep.condition == "grouped"
