"""knp coverage: median, quantile/percentile, argsort, einsum, take_along_axis, topk, matrix
norms (ord 1, -1, inf, -inf, 'fro'), erf, softplus, logaddexp.

Truths: NumPy and SciPy values, central differences of plain NumPy, PyTorch autograd (and JAX
where installed) at smooth points; at ties, gradients sampled at random nearby points (the
limiting gradients of these piecewise-linear functions) and an LP for convex-hull membership.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.special

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad.errors import KinkgradError, ShapeError, UnsupportedOperationError


def fd_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        g[i] = (f(x + e.reshape(x.shape)) - f(x - e.reshape(x.shape))) / (2 * h)
    return g.reshape(x.shape)


def sampled_gradients(f, x: np.ndarray, n: int = 300, r: float = 1e-7, seed: int = 0) -> list:
    """Gradients (central differences of plain NumPy) at random points within r of x: on a
    piecewise-linear f these are the gradients of the pieces around x."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = x + r * rng.uniform(-1, 1, x.shape)
        out.append(fd_grad(f, y, h=r * 1e-3).ravel())
    return out


def in_hull(g: np.ndarray, pts: list, tol: float = 1e-6) -> bool:
    """g in conv(pts), decided by an LP (plus a small tolerance on the equality)."""
    P = np.array(pts).T  # (n, m)
    m = P.shape[1]
    A_eq = np.vstack([P, np.ones((1, m))])
    b_eq = np.concatenate([g.ravel(), [1.0]])
    res = scipy.optimize.linprog(np.zeros(m), A_ub=np.vstack([A_eq, -A_eq]),
                                 b_ub=np.concatenate([b_eq + tol, -b_eq + tol]),
                                 bounds=[(0, None)] * m, method="highs")
    return res.status == 0


def near_one_of(g: np.ndarray, pts: list, tol: float = 1e-6) -> bool:
    return min(np.max(np.abs(g.ravel() - p)) for p in pts) <= tol


# ---------------------------------------------------------------------- values vs NumPy
X = np.random.default_rng(1).normal(size=(3, 4, 5))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (1, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_median_quantile_percentile_match_numpy(axis, keepdims):
    np.testing.assert_allclose(knp.median(X, axis=axis, keepdims=keepdims),
                               np.median(X, axis=axis, keepdims=keepdims), rtol=1e-14)
    for q in (0.0, 0.3, 1.0, [0.1, 0.5, 0.95], [[0.2], [0.7]]):
        for method in ("linear", "lower", "higher", "midpoint", "nearest"):
            want = np.quantile(X, q, axis=axis, keepdims=keepdims, method=method)
            got = knp.quantile(X, q, axis=axis, keepdims=keepdims, method=method)
            np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15,
                                       err_msg=f"q={q} {method}")
    np.testing.assert_allclose(knp.percentile(X, [10, 50, 99], axis=axis, keepdims=keepdims),
                               np.percentile(X, [10, 50, 99], axis=axis, keepdims=keepdims),
                               rtol=1e-14)


def test_numpy_functions_dispatch_on_traced_values():
    def f(x):
        return (np.median(x) + np.quantile(x, 0.25) + np.percentile(x, 75)
                + np.sum(np.take_along_axis(x, np.argsort(x, axis=1), axis=1)[:, 0])
                + np.einsum("ij,ij->", x, x) + np.sum(np.logaddexp(x, 1.0)))

    x = X[0]
    np.testing.assert_allclose(kinkgrad.grad(f)(x), fd_grad(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("axis", [None, 0, -1])
def test_argsort_and_take_along_axis_match_numpy(axis):
    x = np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(knp.argsort(x, axis=axis), np.argsort(x, axis=axis,
                                                                         kind="stable"))
    idx = np.argsort(x, axis=axis, kind="stable")
    np.testing.assert_array_equal(knp.take_along_axis(x, idx, axis=axis),
                                  np.take_along_axis(x, idx, axis=axis))
    # argsort is an integer constant: computed on the value inside a trace too
    seen = []
    kinkgrad.grad(lambda y: seen.append(knp.argsort(y, axis=axis)) or knp.sum(y))(x)
    np.testing.assert_array_equal(seen[0], idx)


def test_take_along_axis_gradient_accumulates_repeated_indices():
    x = np.arange(6.0).reshape(2, 3) + 1
    idx = np.array([[0, 0, 2, 1], [2, 2, 2, 0]])
    w = np.random.default_rng(0).normal(size=(2, 4))

    def f(y):
        return knp.sum(knp.take_along_axis(y, idx, axis=1) ** 2 * w)

    def plain(y):
        return np.sum(np.take_along_axis(y, idx, axis=1) ** 2 * w)

    np.testing.assert_allclose(kinkgrad.grad(f)(x), fd_grad(plain, x), rtol=1e-7, atol=1e-8)
    with pytest.raises(ShapeError, match="take_along_axis"):
        knp.take_along_axis(x, np.array([0, 1]), axis=1)
    with pytest.raises(UnsupportedOperationError, match="integer"):
        knp.take_along_axis(x, np.zeros((2, 1)), axis=1)


EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 2)]), ("ij,jk", [(3, 4), (4, 2)]), ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]), ("ij->", [(2, 3)]), ("ji", [(2, 3)]), ("...ij,...jk->...ik",
                                                                  [(2, 3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]), ("i,i", [(4,), (4,)]), ("i,j->ij", [(3,), (2,)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("ij,ij,i->j", [(3, 4), (3, 4), (3,)]),
    ("ijk,ik->j", [(2, 3, 4), (2, 4)]), ("i...,i->...", [(3, 2, 2), (3,)]),
    ("ij,ij->ij", [(3, 1), (3, 4)]), ("iij->j", [(2, 2, 3)]),
]


@pytest.mark.parametrize("spec,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_values_and_gradients(spec, shapes):
    rng = np.random.default_rng(2)
    ops = [rng.normal(size=s) for s in shapes]
    np.testing.assert_allclose(knp.einsum(spec, *ops), np.einsum(spec, *ops), rtol=1e-13,
                               atol=1e-13)
    w = rng.normal(size=np.shape(np.einsum(spec, *ops)))
    for i in range(len(ops)):
        def f(y, i=i):
            return knp.sum(knp.einsum(spec, *ops[:i], y, *ops[i + 1:]) * w)

        def plain(y, i=i):
            return np.sum(np.einsum(spec, *ops[:i], y, *ops[i + 1:]) * w)

        np.testing.assert_allclose(kinkgrad.grad(f)(ops[i]), fd_grad(plain, ops[i]),
                                   rtol=1e-7, atol=1e-8, err_msg=f"{spec} operand {i}")
        _, t = kinkgrad.jvp(f, (ops[i],), (np.ones_like(ops[i]),))
        np.testing.assert_allclose(t, np.sum(fd_grad(plain, ops[i])), rtol=1e-6, atol=1e-8)


def test_einsum_errors_name_the_fix():
    with pytest.raises(ShapeError, match="einsum"):
        knp.einsum("ij,jk->ik", np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ShapeError, match="einsum"):
        knp.einsum("ij->ik", np.ones((2, 3)))
    with pytest.raises(ShapeError, match="einsum"):
        knp.einsum("ij,j", np.ones((2, 3)))


def test_topk_matches_torch_values_and_gradients():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(3).normal(size=(4, 6))
    rng = np.random.default_rng(4)
    for largest in (True, False):
        for axis in (-1, 0):
            k = 3
            xt = torch.tensor(x, requires_grad=True)
            vals = torch.topk(xt, k, dim=axis, largest=largest).values
            ww = rng.normal(size=tuple(vals.shape))
            (vals * torch.tensor(ww)).sum().backward()
            got = knp.topk(x, k, axis=axis, largest=largest)
            np.testing.assert_allclose(got, vals.detach().numpy(), rtol=1e-15)
            g = kinkgrad.grad(lambda y, a=axis, lg=largest, ww=ww, k=k: knp.sum(
                knp.topk(y, k, axis=a, largest=lg) * ww))(x)
            np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-14)
    np.testing.assert_allclose(knp.topk(x, 2, axis=None), np.sort(x, axis=None)[::-1][:2])
    with pytest.raises(ShapeError, match="topk"):
        knp.topk(x, 7)


def test_median_gradient_matches_torch_at_distinct_entries():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(5).normal(size=(3, 5))  # odd rows: torch's median is the middle
    xt = torch.tensor(x, requires_grad=True)
    torch.median(xt, dim=1).values.sum().backward()
    g = kinkgrad.grad(lambda y: knp.sum(knp.median(y, axis=1)))(x)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-15)


@pytest.mark.parametrize("q", [0.0, 0.37, 0.5, 1.0])
def test_quantile_gradient_matches_finite_differences_and_torch(q):
    x = np.random.default_rng(6).normal(size=(4, 6))

    def plain(y):
        return float(np.sum(np.quantile(y, q, axis=0) * np.arange(1, 7)))

    g = kinkgrad.grad(lambda y: knp.sum(knp.quantile(y, q, axis=0) * np.arange(1, 7)))(x)
    np.testing.assert_allclose(g, fd_grad(plain, x), rtol=1e-7, atol=1e-8)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    (torch.quantile(xt, q, dim=0) * torch.arange(1, 7)).sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_quantile_bad_arguments_raise():
    with pytest.raises(KinkgradError, match=r"\[0, 1\]"):
        knp.quantile(X, 1.5)
    with pytest.raises(UnsupportedOperationError, match="method"):
        knp.quantile(X, 0.5, method="weibull")
    with pytest.raises(UnsupportedOperationError, match="weights"):
        kinkgrad.grad(lambda y: np.percentile(y, 50, weights=np.ones(y.shape)))(X[0, 0])
    with pytest.raises(ShapeError, match="empty"):
        knp.median(np.zeros((0, 3)), axis=0)


# ---------------------------------------------------------------------- ties: Clarke gradients
TIES = [
    ("median odd", lambda y: np.median(y), lambda y: knp.median(y), [1.0, 1.0, 2.0, 0.0, 1.0]),
    ("median even", lambda y: np.median(y), lambda y: knp.median(y), [2.0, 1.0, 2.0, 3.0]),
    ("quantile", lambda y: np.quantile(y, 0.3), lambda y: knp.quantile(y, 0.3),
     [1.0, 1.0, 0.0, 1.0, 4.0]),
    ("topk", lambda y: float(np.sum(np.sort(y)[::-1][:2] * [1.0, 3.0])),
     lambda y: knp.sum(knp.topk(y, 2) * np.array([1.0, 3.0])), [2.0, 1.0, 2.0, 2.0]),
    ("norm 1", lambda y: np.linalg.norm(y.reshape(2, 2), 1),
     lambda y: knp.linalg.norm(knp.reshape(y, (2, 2)), 1), [1.0, -2.0, 0.0, 1.0]),
    ("norm inf", lambda y: np.linalg.norm(y.reshape(2, 2), np.inf),
     lambda y: knp.linalg.norm(knp.reshape(y, (2, 2)), np.inf), [1.0, 0.0, -1.0, 0.0]),
    ("norm -1", lambda y: np.linalg.norm(y.reshape(2, 2), -1),
     lambda y: knp.linalg.norm(knp.reshape(y, (2, 2)), -1), [1.0, 0.0, 0.0, -1.0]),
    ("norm -inf", lambda y: np.linalg.norm(y.reshape(2, 3), -np.inf),
     lambda y: knp.linalg.norm(knp.reshape(y, (2, 3)), -np.inf),
     [1.0, 0.0, 2.0, -3.0, 0.0, 0.0]),
]


@pytest.mark.parametrize("label,plain,traced,x", TIES, ids=[t[0] for t in TIES])
def test_at_ties_clarke_grad_is_a_sampled_limiting_gradient_and_grad_in_the_hull(
        label, plain, traced, x):
    x = np.asarray(x)
    pts = sampled_gradients(plain, x)
    g, info = kinkgrad.clarke_grad(traced, x, seed=0)
    assert info.kinks > 0, label
    assert near_one_of(np.asarray(g), pts), f"{label}: clarke_grad {g} is no nearby gradient"
    for pol in ({}, {"sort": "split", "max": "split"}):
        with kinkgrad.kink_policy(**pol):
            gp = kinkgrad.grad(traced)(x)
        assert in_hull(gp, pts), f"{label} {pol}: grad {gp} outside the sampled hull"
    assert kinkgrad.certify(traced, x).active_kinks, label


def test_median_tie_declared_choices():
    x = np.array([1.0, 1.0, 2.0])  # median 1, tied between entries 0 and 1
    # stable order (0, 1, 2): the middle rank holds entry 1
    np.testing.assert_array_equal(kinkgrad.grad(knp.median)(x), [0.0, 1.0, 0.0])
    with kinkgrad.kink_policy(sort="split"):
        np.testing.assert_array_equal(kinkgrad.grad(knp.median)(x), [0.5, 0.5, 0.0])


def test_topk_tie_keeps_the_earlier_entry():
    x = np.array([1.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(kinkgrad.grad(lambda y: knp.topk(y, 1)[0])(x),
                                  [0.0, 1.0, 0.0, 0.0])


# ---------------------------------------------------------------------- matrix norms
def _norm_matches_numpy_and_differences(x, ord, axis, rtol):
    """knp.linalg.norm against NumPy's values (with and without keepdims, to ``rtol``) and its
    gradient against central differences of NumPy's norm; returns the gradient."""
    for keep in (False, True):
        np.testing.assert_allclose(knp.linalg.norm(x, ord, axis, keep),
                                   np.linalg.norm(x, ord, axis, keep), rtol=rtol)

    def plain(y):
        return float(np.sum(np.linalg.norm(y, ord, axis)))

    g = kinkgrad.grad(lambda y: knp.sum(knp.linalg.norm(y, ord, axis)))(x)
    np.testing.assert_allclose(g, fd_grad(plain, x), rtol=1e-6, atol=1e-8)
    return g


@pytest.mark.parametrize("ord", [1, -1, np.inf, -np.inf, "fro", None])
@pytest.mark.parametrize("axis", [None, (0, 1), (1, 0), (-1, -3)])
def test_matrix_norms_match_numpy_and_differences(ord, axis):
    x = np.random.default_rng(7).normal(size=(3, 4) if axis in (None, (0, 1), (1, 0))
                                        else (3, 2, 4))
    _norm_matches_numpy_and_differences(x, ord, axis, rtol=1e-14)


def test_matrix_norm_gradients_match_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(8).normal(size=(4, 3))
    for ord in (1, -1, np.inf, -np.inf, "fro"):
        xt = torch.tensor(x, requires_grad=True)
        torch.linalg.matrix_norm(xt, ord=ord).backward()
        g = kinkgrad.grad(lambda y, o=ord: knp.linalg.norm(y, o))(x)
        np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-14, err_msg=str(ord))


def test_smallest_singular_value_norm_raises_naming_the_alternatives():
    with pytest.raises(UnsupportedOperationError, match="ord=2, 'nuc', 1, -1, inf, -inf"):
        knp.linalg.norm(np.eye(2), -2)


@pytest.mark.parametrize("ord", ["nuc", 2])
@pytest.mark.parametrize("axis", [None, (1, 0), (0, 2)])
def test_singular_value_norms_match_numpy_torch_and_differences(ord, axis):
    rng = np.random.default_rng(10)
    x = rng.normal(size=(3, 4) if axis != (0, 2) else (3, 2, 4))
    g = _norm_matches_numpy_and_differences(x, ord, axis, rtol=1e-13)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    dims = (-2, -1) if axis is None else axis
    torch.linalg.matrix_norm(xt, ord=ord, dim=dims).sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def _svd(x):
    U, s, Vt = np.linalg.svd(x)
    return U, s, Vt.T


def in_nuclear_subdifferential(g, x, tol=1e-9) -> bool:
    """G = U_1 V_1^T + W with U_1^T W = 0, W V_1 = 0, ||W||_2 <= 1 (Watson 1992)."""
    U, s, V = _svd(x)
    r = int(np.sum(s > 1e-12 * max(s[0], 1.0)))
    W = g - U[:, :r] @ V[:, :r].T
    return bool(np.abs(U[:, :r].T @ W).max(initial=0) < tol
                and np.abs(W @ V[:, :r]).max(initial=0) < tol
                and np.linalg.norm(W, 2) <= 1 + tol)


def in_spectral_subdifferential(g, x, tol=1e-9) -> bool:
    """G = U_1 M V_1^T with M symmetric positive semidefinite of trace 1 (x != 0)."""
    U, s, V = _svd(x)
    r = int(np.sum(s[0] - s <= 1e-12 * s[0]))
    M = U[:, :r].T @ g @ V[:, :r]
    back = U[:, :r] @ M @ V[:, :r].T
    return bool(np.abs(back - g).max() < tol and np.abs(M - M.T).max() < tol
                and np.linalg.eigvalsh((M + M.T) / 2).min() > -tol
                and abs(np.trace(M) - 1) < tol)


SVD_KINKS = [
    ("nuc rank 2", "nuc", [[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, -1.0]]),
    ("nuc rank 1", "nuc", [[1.0, -2.0, 0.5], [2.0, -4.0, 1.0]]),
    ("nuc zero", "nuc", [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]),
    ("spectral tie", 2, [[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 0.5]]),
    ("spectral tie 3", 2, [[2.0, 0.0, 0.0], [0.0, 0.0, 2.0], [0.0, -2.0, 0.0]]),
]


@pytest.mark.parametrize("label,ord,x", SVD_KINKS, ids=[c[0] for c in SVD_KINKS])
def test_singular_value_norms_at_kinks_return_subgradients(label, ord, x):
    x = np.asarray(x)
    inside = in_nuclear_subdifferential if ord == "nuc" else in_spectral_subdifferential

    def f(y):
        return knp.linalg.norm(y, ord)

    for pol in ({}, {"max": "split"}):
        with kinkgrad.kink_policy(**pol):
            g = kinkgrad.grad(f)(x)
        assert inside(g, x), f"{label} {pol}: grad {g}"
    for seed in range(3):
        g, info = kinkgrad.clarke_grad(f, x, seed=seed)
        assert info.kinks > 0 and inside(g, x), f"{label}: clarke_grad {g}"
        # a limiting gradient: the gradient at x + t d along the direction it resolved with
        d = np.asarray(info.directions)[:, 0].reshape(x.shape)
        near = fd_grad(lambda y: float(np.linalg.norm(y, ord)), x + 1e-6 * d, h=1e-9)
        np.testing.assert_allclose(g, near, atol=2e-5, err_msg=label)
    with pytest.raises(kinkgrad.KinkgradError, match="not abs-smooth"):
        kinkgrad.certify(f, x)


def test_singular_value_norm_declared_choices():
    tie = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 0.5]])
    # span(U_1) = span(e_1, e_2): "first" takes u = e_1, v = x^T e_1 / sqrt 2
    np.testing.assert_allclose(kinkgrad.grad(lambda y: knp.linalg.norm(y, 2))(tie),
                               [[0.5 ** 0.5, 0.5 ** 0.5, 0], [0, 0, 0], [0, 0, 0]], atol=1e-15)
    with kinkgrad.kink_policy(max="split"):
        top = np.where(tie == 0.5, 0.0, tie)  # U_1 V_1^T / 2: the tied block, x / sqrt 2 there
        np.testing.assert_allclose(kinkgrad.grad(lambda y: knp.linalg.norm(y, 2))(tie),
                                   top / 2 ** 0.5 / 2, atol=1e-15)
    assert not kinkgrad.grad(lambda y: knp.linalg.norm(y, 2))(np.zeros((2, 2))).any()
    low = np.array([[3.0, 0.0], [0.0, 0.0]])  # nuclear norm at rank 1: U_1 V_1^T
    np.testing.assert_array_equal(kinkgrad.grad(lambda y: knp.linalg.norm(y, "nuc"))(low),
                                  [[1.0, 0.0], [0.0, 0.0]])


# ---------------------------------------------------------------------- smooth: erf and friends
def test_erf_matches_scipy_and_gelu_matches_torch():
    x = np.linspace(-4, 4, 33)
    np.testing.assert_allclose(knp.erf(x), scipy.special.erf(x), rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(kinkgrad.grad(lambda y: knp.sum(knp.erf(y)))(x),
                               2 / np.sqrt(np.pi) * np.exp(-x * x), rtol=1e-14)

    def gelu(y):
        return y * 0.5 * (1.0 + knp.erf(y / np.sqrt(2.0)))

    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.gelu(xt).sum().backward()
    np.testing.assert_allclose(gelu(x), torch.nn.functional.gelu(torch.tensor(x)).numpy(),
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(kinkgrad.grad(lambda y: knp.sum(gelu(y)))(x), xt.grad.numpy(),
                               rtol=1e-13, atol=1e-15)


def test_logaddexp_and_softplus_values_gradients_and_no_overflow():
    a = np.array([-3.0, 0.5, 800.0, -800.0])
    b = np.array([1.0, 0.5, 799.0, 2.0])
    with np.errstate(under="ignore"):  # exp(-802) underflows to 0 in NumPy's reference
        want = np.logaddexp(a, b)
    np.testing.assert_allclose(knp.logaddexp(a, b), want, rtol=1e-15)
    ga, gb = kinkgrad.grad(lambda p, q: knp.sum(knp.logaddexp(p, q)), argnums=(0, 1))(a, b)
    np.testing.assert_allclose(ga, scipy.special.expit(a - b), rtol=1e-14)
    np.testing.assert_allclose(ga + gb, 1.0, rtol=1e-15)
    # broadcasting: a (2, 1) against a (3,)
    p, q = np.array([[0.3], [-1.0]]), np.array([0.0, 2.0, -0.5])
    gp = kinkgrad.grad(lambda u: knp.sum(knp.logaddexp(u, q)))(p)
    np.testing.assert_allclose(gp, fd_grad(lambda u: np.sum(np.logaddexp(u, q)), p), rtol=1e-8)
    torch = pytest.importorskip("torch")
    x = np.linspace(-30, 19, 13)  # torch's softplus is x itself above its threshold 20
    xt = torch.tensor(x, requires_grad=True)
    torch.nn.functional.softplus(xt).sum().backward()
    np.testing.assert_allclose(kinkgrad.grad(lambda y: knp.sum(knp.softplus(y)))(x),
                               xt.grad.numpy(), rtol=1e-14)


def test_jax_gradients_where_installed():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    x = np.random.default_rng(9).normal(size=(3, 5))
    pairs = [(lambda y: knp.sum(knp.erf(y)), lambda y: jnp.sum(jax.scipy.special.erf(y))),
             (lambda y: knp.sum(knp.logaddexp(y, 0.3)), lambda y: jnp.sum(jnp.logaddexp(y, .3))),
             (lambda y: knp.sum(knp.median(y, axis=1)), lambda y: jnp.sum(jnp.median(y, axis=1))),
             (lambda y: knp.sum(knp.quantile(y, 0.3, axis=0)),
              lambda y: jnp.sum(jnp.quantile(y, 0.3, axis=0))),
             (lambda y: knp.einsum("ij,kj->", y, y), lambda y: jnp.einsum("ij,kj->", y, y))]
    for ours, theirs in pairs:
        np.testing.assert_allclose(kinkgrad.grad(ours)(x), np.asarray(jax.grad(theirs)(x)),
                                   rtol=1e-12, atol=1e-14)


def test_sort_composites_in_the_abs_normal_layer():
    """subdifferential and in_clarke see median's tie (limiting gradients e_0 and e_1) and
    topk's (the LIKQ-free block certificate of a k-way tie)."""
    x = np.array([1.0, 1.0, 2.0])
    s = kinkgrad.subdifferential(knp.median, x)
    assert not s.partial
    assert sorted(map(tuple, np.asarray(s.matrix).tolist())) == [(0.0, 1.0, 0.0),
                                                                 (1.0, 0.0, 0.0)]
    assert kinkgrad.in_clarke(knp.median, x, np.array([0.25, 0.75, 0.0]))
    assert not kinkgrad.in_clarke(knp.median, x, np.array([1.0, 1.0, 0.0]))
    rep = kinkgrad.certify(lambda v: knp.sum(knp.topk(v, 2)), np.array([3.0, 1.0, 3.0, 3.0]))
    assert rep.certified and rep.active_kinks
