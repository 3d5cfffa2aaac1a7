"""The bound-constrained piece QP (``BoxPieceQP``, switches that are kinks of one coordinate)
against the general piece QP in R^(n+s) with its equality rows (``PieceQP``, independent
code): the same steps, multipliers and flip candidates on every piece tried, with and
without a metric; and where the box form does not apply."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.optimize._abs_linear_box import BoxPieceQP, piece_qp
from kinkgrad.optimize._abs_linear_model import AbsLinearModel
from kinkgrad.optimize._abs_linear_qp import PieceQP


def _lasso_model(seed: int, shift: float = 0.0):
    """A lasso-type model 1/2 ||X w - y||^2 + lam sum |w - shift| at a point with a third of
    its coordinates exactly at their kinks."""
    rng = np.random.default_rng(seed)
    m, n = 15, 12
    X, y = rng.standard_normal((m, n)), rng.standard_normal(m)
    lam = 0.3 + rng.random(n)

    def f(w):
        r = X @ w - y
        return 0.5 * knp.sum(r * r) + knp.sum(lam * knp.abs(2.0 * (w - shift)))

    w = shift + rng.standard_normal(n)
    w[::3] = shift
    return AbsLinearModel(kinkgrad.abs_normal_form(f, w, dense=True)), n


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("with_metric", [False, True])
def test_box_qp_agrees_with_the_general_piece_qp(seed, with_metric):
    model, n = _lasso_model(seed, shift=0.25 * seed)
    rng = np.random.default_rng(100 + seed)
    B = None
    if with_metric:
        M = rng.standard_normal((n, n))
        B = M @ M.T / n
    box, full = BoxPieceQP(model, B), PieceQP(model, "dense", B)
    assert BoxPieceQP.applies(model)
    for q in (0.1, 3.0):
        for trial in range(4):
            sigma = box.sigma0.copy() if trial == 0 else np.where(
                rng.random(model.s) < 0.3, -box.sigma0, box.sigma0)
            a, b = box.solve(sigma, q), full.solve(sigma, q)
            assert a.ok and b.ok and a.polished and b.polished
            scale = 1.0 + np.max(np.abs(b.dx))
            np.testing.assert_allclose(a.dx, b.dx, rtol=0, atol=1e-8 * scale)
            np.testing.assert_allclose(a.u, b.u, rtol=0, atol=1e-8 * scale)
            ymax = 1.0 + np.max(np.abs(b.y))
            np.testing.assert_allclose(a.y, b.y, rtol=0, atol=1e-6 * ymax)
            assert set(box.flip_candidates(a, sigma)) == set(full.flip_candidates(b, sigma))


def test_the_box_form_applies_only_to_one_kink_per_coordinate():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((8, 4))
    x = rng.standard_normal(4)

    def form(f):
        return AbsLinearModel(kinkgrad.abs_normal_form(f, x, dense=True))

    lasso = form(lambda w: knp.sum((X @ w) ** 2) + knp.sum(knp.abs(w)))
    hinge = form(lambda w: knp.sum(knp.relu(1.0 - X @ w)))  # kinks of combinations
    twice = form(lambda w: knp.sum(knp.abs(w)) + knp.abs(w[0] - 1.0))  # two on w0
    nested = form(lambda w: knp.sum(knp.abs(knp.abs(w) - 1.0)))  # L != 0
    assert BoxPieceQP.applies(lasso)
    assert not any(BoxPieceQP.applies(m) for m in (hinge, twice, nested))
    assert isinstance(piece_qp(lasso, "auto", None), BoxPieceQP)
    assert isinstance(piece_qp(lasso, "dense", None), PieceQP)  # an explicit backend
    assert isinstance(piece_qp(hinge, "auto", None), PieceQP)


def test_lasso_above_n_300_gets_the_metric_and_certifies():
    """n = 400 > 300: the box form carries the learnt metric (before: no metric above
    n = 300, and a correlated lasso's run crawled at the proximal rate)."""
    rng = np.random.default_rng(1)
    m, n, rho = 120, 400, 0.9
    Z = rng.standard_normal((m, n))
    X = np.empty((m, n))
    X[:, 0] = Z[:, 0]
    for j in range(1, n):
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1 - rho ** 2) * Z[:, j]
    w_true = np.zeros(n)
    w_true[::20] = rng.standard_normal(20)
    y = X @ w_true + 0.01 * rng.standard_normal(m)

    def f(w):
        r = X @ w - y
        return 0.5 * knp.sum(r * r) + 0.05 * knp.sum(knp.abs(w))

    res = kinkgrad.minimize(f, np.zeros(n), method="abs-linear")
    assert res.stationarity.verdict == "stationary" and res.nit <= 40
    # KKT of the lasso at the result, checked directly: |X_j^T r| <= lam where w_j = 0,
    # X_j^T r = -lam sign(w_j) elsewhere
    g = X.T @ (X @ res.x - y)
    zero = res.x == 0.0
    assert zero.sum() >= n // 2
    assert np.all(np.abs(g[zero]) <= 0.05 + 1e-7)
    np.testing.assert_allclose(g[~zero], -0.05 * np.sign(res.x[~zero]), atol=1e-7)
