"""``kinkgrad.minimize`` on the lasso and the linear SVM, side by side with scikit-learn, and
kinkgrad's verdict on scikit-learn's answers.

Problems (one random instance each, seeded):

* ``lasso``: 1/2 ||X w - y||^2 + lam ||w||_1 with AR(1)-correlated features
  (corr(x_i, x_j) = rho^|i-j|); scikit-learn's ``Lasso`` (coordinate descent, which ends on
  exact zeros) minimizes the same function divided by m (alpha = lam / m).
* ``svm``: 1/2 ||w||^2 + C sum_i max(0, 1 - y_i x_i . w) (hinge loss, no intercept);
  scikit-learn's ``LinearSVC(loss="hinge", dual=True)`` (liblinear's dual coordinate
  descent) minimizes the same function.
* ``group lasso``: 1/2 ||X W - Y||_F^2 + lam sum_j ||W_j||_2 over the rows W_j of the
  n x k coefficients (one group per feature across k tasks: Euclidean norms whose zeros are
  the answer); scikit-learn's ``MultiTaskLasso`` (block coordinate descent) minimizes the
  same function divided by m (alpha = lam / m).
* ``sparse group lasso``: 1/(2m) ||X w - y||^2 + l1 ||w||_1 + l2 sum_g ||w_g||_2 over
  groups of k consecutive features (l1 kinks and Euclidean norms on the same coordinates:
  zero groups and zeros inside the others); skglm's ``WeightedL1GroupL2`` penalty with its
  ``GroupBCD`` solver (block coordinate descent with working sets, which ends on exact
  zeros) minimizes the same function. Skipped when skglm is not installed (``pip install
  -e '.[bench]'``; its numba functions are compiled by one untimed fit first).
* ``tv denoise``: isotropic total-variation denoising of an N x N image,
  1/2 ||u - y||^2 + weight sum_ij ||(u[i+1,j] - u[i,j], u[i,j+1] - u[i,j])|| with forward
  differences set to 0 past the last row and column (N^2 Euclidean norms, zero on the
  flat regions); scikit-image's ``denoise_tv_chambolle`` (Chambolle's projection
  algorithm) minimizes the same function, and Clarabel (interior point) its conic
  reformulation min 1/2 ||u - y||^2 + weight sum t_ij, t_ij >= ||D_ij u||. Skipped when
  scikit-image is not installed (``pip install -e '.[bench]'``).
* ``tv-l1``: TV-L1 denoising of an N x N square with 10% impulse noise, sum |u - y| +
  weight TV(u) (no smooth part: l1 kinks and Euclidean norms); Clarabel on its conic
  reformulation at its default tolerances and at 1e-12 (no maintained Python TV-L1 solver
  is known to us).
* ``relu net``: a 3-8-1 ReLU network's least-squares loss (41 weights, 800 kinks) and a
  3-6-6-1 one (73 weights, 1,200 kinks, the second layer's nested in the first's);
  scikit-learn's ``MLPRegressor(solver="lbfgs", alpha=0)`` minimizes the same function
  (a local minimizer: f_ref is only the least f found).

For each instance: scikit-learn with its default ``tol`` and with ``tol=1e-12`` (seconds,
f - f_ref and ``kinkgrad.stationarity`` of its point with tol 1e-8 at the smallest radius of
0, 1e-12, ..., 1e-4 where it is stationary: radius 0 is an exact test where the point lies
on its kinks, as coordinate descent's zeros do), then
``kinkgrad.minimize`` with the bundle and the abs-linear method (seconds, iterations,
gradient-type evaluations, f - f_ref, the verdict at the radius the method ended at). f_ref
is the least f found by any run. Usage::

    python benchmarks/regression.py [--quick] [--case NAME] [--out DIR]

Writes ``regression.md``, ``regression.jsonl`` and ``regression.png`` (seconds per run) to
DIR. One BLAS thread. Never asserts on time.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import kinkgrad  # noqa: E402
import kinkgrad.numpy as knp  # noqa: E402


def correlated(m: int, n: int, rho: float, rng: np.random.Generator) -> np.ndarray:
    """m samples of n AR(1) features with corr(x_i, x_j) = rho^|i-j|, scaled by 1/sqrt(m)."""
    Z = rng.standard_normal((m, n))
    X = np.empty((m, n))
    X[:, 0] = Z[:, 0]
    for j in range(1, n):
        X[:, j] = rho * X[:, j - 1] + np.sqrt(1.0 - rho * rho) * Z[:, j]
    return X / np.sqrt(m)


def lasso(m: int, n: int, rho: float, lam: float, seed: int):
    """(f, x0, fit(tol) -> w) of a lasso instance with a sparse truth (n / 10 entries)."""
    from sklearn.linear_model import Lasso

    rng = np.random.default_rng(seed)
    X = correlated(m, n, rho, rng)
    w_true = np.zeros(n)
    w_true[:: max(1, n // 10)] = 3.0 * rng.standard_normal(w_true[:: max(1, n // 10)].size)
    y = X @ w_true + 0.01 * rng.standard_normal(m)

    def f(w):
        r = X @ w - y
        return 0.5 * knp.sum(r * r) + lam * knp.sum(knp.abs(w))

    def fit(tol: float | None) -> np.ndarray:
        kw = {} if tol is None else {"tol": tol, "max_iter": 10**6}
        model = Lasso(alpha=lam / m, fit_intercept=False, **kw).fit(X, y)
        return np.asarray(model.coef_, np.float64)

    return f, np.zeros(n), fit


def svm(m: int, n: int, C: float, seed: int):
    """(f, x0, fit(tol) -> w) of a linear SVM on two overlapping Gaussian classes."""
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(seed)
    labels = np.where(rng.random(m) < 0.5, -1.0, 1.0)
    X = rng.standard_normal((m, n)) + 0.5 * labels[:, None] * rng.standard_normal(n)[None]
    YX = labels[:, None] * X

    def f(w):
        return 0.5 * knp.sum(w * w) + C * knp.sum(knp.relu(1.0 - YX @ w))

    def fit(tol: float | None) -> np.ndarray:
        kw = {} if tol is None else {"tol": tol, "max_iter": 10**6}
        model = LinearSVC(loss="hinge", dual=True, C=C, fit_intercept=False, random_state=0,
                          **kw)
        return np.asarray(model.fit(X, labels).coef_, np.float64).ravel()

    return f, np.zeros(n), fit


def group_lasso(m: int, n: int, k: int, lam: float, seed: int):
    """(f, x0, fit(tol) -> W raveled) of a multi-task lasso with n / 10 active features."""
    from sklearn.linear_model import MultiTaskLasso

    rng = np.random.default_rng(seed)
    X = correlated(m, n, 0.5, rng)
    W_true = np.zeros((n, k))
    W_true[:: max(1, n // 10)] = 3.0 * rng.standard_normal(W_true[:: max(1, n // 10)].shape)
    Y = X @ W_true + 0.01 * rng.standard_normal((m, k))

    def f(w):
        W = knp.reshape(w, (n, k))
        R = X @ W - Y
        return 0.5 * knp.sum(R * R) + lam * knp.sum(knp.linalg.norm(W, axis=1))

    def fit(tol: float | None) -> np.ndarray:
        kw = {} if tol is None else {"tol": tol, "max_iter": 10**6}
        model = MultiTaskLasso(alpha=lam / m, fit_intercept=False, **kw).fit(X, Y)
        return np.asarray(model.coef_, np.float64).T.ravel()

    return f, np.zeros(n * k), fit


def sparse_group_lasso(m: int, groups: int, k: int, l1: float, l2: float, seed: int):
    """(f, x0, fit(tol) -> w) of a sparse group lasso with groups / 6 active groups, each
    with about 60% of its features active."""
    from skglm import GeneralizedLinearEstimator
    from skglm.datafits import QuadraticGroup
    from skglm.penalties import WeightedL1GroupL2
    from skglm.solvers import GroupBCD
    from skglm.utils.data import grp_converter

    rng = np.random.default_rng(seed)
    n = groups * k
    X = np.sqrt(m) * correlated(m, n, 0.5, rng)  # unit-variance features
    w = np.zeros((groups, k))
    act = rng.choice(groups, max(1, groups // 6), replace=False)
    w[act] = rng.standard_normal((act.size, k)) * (rng.random((act.size, k)) < 0.6)
    y = X @ w.ravel() + 0.1 * rng.standard_normal(m)

    def f(x):
        r = X @ x - y
        return (0.5 / m * knp.sum(r * r) + l1 * knp.sum(knp.abs(x))
                + l2 * knp.sum(knp.linalg.norm(knp.reshape(x, (groups, k)), axis=1)))

    grp_indices, grp_ptr = grp_converter(k, n)

    def fit(tol: float | None) -> np.ndarray:
        pen = WeightedL1GroupL2(alpha=1.0, weights_groups=l2 * np.ones(groups),
                                weights_features=l1 * np.ones(n), grp_ptr=grp_ptr,
                                grp_indices=grp_indices)
        kw = {} if tol is None else {"tol": tol, "max_iter": 10**4, "max_epochs": 10**5}
        solver = GroupBCD(fit_intercept=False, ws_strategy="fixpoint", **kw)
        est = GeneralizedLinearEstimator(QuadraticGroup(grp_ptr, grp_indices), pen,
                                         solver=solver)
        return np.asarray(est.fit(X, y).coef_, np.float64)

    fit(None)  # compiles skglm's numba functions outside the timed runs
    fit.peer = "skglm"  # type: ignore[attr-defined]
    return f, np.zeros(n), fit


def tv_denoise(N: int, weight: float, seed: int):
    """(f, x0, fit(tol) -> u raveled) of TV denoising of a noisy square on an N x N image;
    fit.extra holds Clarabel's solve of the conic reformulation."""
    from skimage.restoration import denoise_tv_chambolle

    rng = np.random.default_rng(seed)
    img = np.zeros((N, N))
    img[N // 4: 3 * N // 4, N // 4: 3 * N // 4] = 1.0
    y = img + 0.1 * rng.standard_normal((N, N))

    def f(u):
        U = knp.reshape(u, (N, N))
        dx = knp.concatenate([U[1:, :] - U[:-1, :], knp.zeros((1, N))], axis=0)
        dy = knp.concatenate([U[:, 1:] - U[:, :-1], knp.zeros((N, 1))], axis=1)
        r = u - y.ravel()
        return 0.5 * knp.sum(r * r) + weight * knp.sum(
            knp.linalg.norm(knp.stack([dx, dy], axis=-1), axis=-1))

    def fit(tol: float | None) -> np.ndarray:
        kw = {} if tol is None else {"eps": tol, "max_num_iter": 10**5}
        return np.asarray(denoise_tv_chambolle(y, weight=weight, **kw), np.float64).ravel()

    def conic() -> np.ndarray:
        import clarabel
        import scipy.sparse as sp

        n = N * N
        A = sp.hstack([_tv_cone_rows(N), sp.csr_matrix((3 * n, 0))], format="csc")
        P = sp.block_diag([sp.identity(n), sp.csc_matrix((n, n))], format="csc")
        sol = clarabel.DefaultSolver(P, np.r_[-y.ravel(), weight * np.ones(n)], A,
                                     np.zeros(3 * n), [clarabel.SecondOrderConeT(3)] * n,
                                     _clarabel_settings(1e-12)).solve()
        return np.asarray(sol.x[:n], np.float64)

    fit.peer = "scikit-image"  # type: ignore[attr-defined]
    fit.zeros = functools.partial(_tv_zeros, N)  # type: ignore[attr-defined]
    fit.extra = {("Clarabel", "conic reformulation"): conic}  # type: ignore[attr-defined]
    return f, y.ravel().copy(), fit


def tv_l1(N: int, weight: float, seed: int):
    """(f, x0, fit(tol) -> u) of TV-L1 denoising of a square with 10% impulse noise,
    sum_ij |u_ij - y_ij| + weight TV(u) (l1 kinks and Euclidean norms, no smooth part);
    fit is Clarabel on the conic reformulation (s_ij >= |u_ij - y_ij|, t_ij >= ||D_ij u||)
    at its default tolerances and at 1e-12 (no maintained Python TV-L1 solver is known)."""
    import clarabel
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    img = np.zeros((N, N))
    img[N // 4: 3 * N // 4, N // 4: 3 * N // 4] = 1.0
    hit = rng.random((N, N)) < 0.1
    y = img.copy()
    y[hit] = rng.random(int(hit.sum()))
    n = N * N

    def f(u):
        U = knp.reshape(u, (N, N))
        dx = knp.concatenate([U[1:, :] - U[:-1, :], knp.zeros((1, N))], axis=0)
        dy = knp.concatenate([U[:, 1:] - U[:, :-1], knp.zeros((N, 1))], axis=1)
        return knp.sum(knp.abs(u - y.ravel())) + weight * knp.sum(
            knp.linalg.norm(knp.stack([dx, dy], axis=-1), axis=-1))

    def fit(tol: float | None) -> np.ndarray:  # variables (u, t, s)
        Z, I = sp.csr_matrix((n, n)), sp.identity(n, format="csr")
        l1 = sp.vstack([sp.hstack([Z, Z, -I]), sp.hstack([-I, Z, Z])], format="csr")
        A = sp.vstack([sp.hstack([_tv_cone_rows(N), sp.csr_matrix((3 * n, n))]),
                       l1[np.arange(2 * n).reshape(2, n).T.ravel()]], format="csc")
        b = np.r_[np.zeros(3 * n), np.c_[np.zeros(n), -y.ravel()].ravel()]
        sol = clarabel.DefaultSolver(
            sp.csc_matrix((3 * n, 3 * n)), np.r_[np.zeros(n), weight * np.ones(n), np.ones(n)],
            A, b, [clarabel.SecondOrderConeT(3)] * n + [clarabel.SecondOrderConeT(2)] * n,
            _clarabel_settings(tol)).solve()
        return np.asarray(sol.x[:n], np.float64)

    fit.peer = "Clarabel"  # type: ignore[attr-defined]
    fit.zeros = functools.partial(_tv_zeros, N)  # type: ignore[attr-defined]
    return f, y.ravel().copy(), fit


def _tv_cone_rows(N: int):
    """Clarabel's rows (t_k, Dx_k u, Dy_k u), negated, over variables (u, t) for the N^2
    forward-difference pairs of an N x N image (zero past the last row and column)."""
    import scipy.sparse as sp

    n = N * N
    d1 = sp.diags([-np.r_[np.ones(N - 1), 0.0], np.ones(N - 1)], [0, 1], (N, N))
    Dx, Dy = sp.kron(d1, sp.identity(N)), sp.kron(sp.identity(N), d1)
    stacked = sp.vstack([sp.hstack([sp.csr_matrix((n, n)), -sp.identity(n)]),
                         sp.hstack([-Dx, sp.csr_matrix((n, n))]),
                         sp.hstack([-Dy, sp.csr_matrix((n, n))])], format="csr")
    return stacked[np.arange(3 * n).reshape(3, n).T.ravel()]


def _clarabel_settings(tol: float | None):
    import clarabel

    st = clarabel.DefaultSettings()
    st.verbose = False
    if tol is not None:
        st.tol_gap_abs = st.tol_gap_rel = st.tol_feas = tol
    return st


def _tv_zeros(N: int, u: np.ndarray) -> int:
    """Pixels whose forward-difference pair is exactly 0."""
    U = u.reshape(N, N)
    dx = np.concatenate([np.diff(U, axis=0), np.zeros((1, N))], axis=0)
    dy = np.concatenate([np.diff(U, axis=1), np.zeros((N, 1))], axis=1)
    return int(np.sum((dx == 0.0) & (dy == 0.0)))


def relu_net(m: int, hidden: int | tuple[int, ...], seed: int):
    """(f, x0, fit(tol) -> p) of a ReLU network with the given hidden layers fitted to a
    smooth target by least squares, 1/(2m) ||relu(... relu(X W1 + b1) ...) Wo + bo - y||^2
    with p = (W1, b1, W2, b2, ...) (deeper layers: nested kinks); scikit-learn's
    ``MLPRegressor(activation="relu", solver="lbfgs", alpha=0)`` minimizes the same
    function (its squared-error loss is half the mean) from its own start."""
    from sklearn.neural_network import MLPRegressor

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, 3))
    y = np.sin(2.0 * X[:, 0]) + 0.5 * X[:, 1] * X[:, 2]
    sizes = (3, *np.atleast_1d(hidden).tolist(), 1)
    shapes = [s for a, b in zip(sizes[:-1], sizes[1:]) for s in ((a, b), (b,))]
    cut = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]

    def f(p):
        parts = np.split(p, cut) if isinstance(p, np.ndarray) else \
            [p[a:b] for a, b in zip(np.r_[0, cut], np.r_[cut, cut[-1] + 1])]
        h = X
        for i in range(0, len(shapes), 2):
            h = h @ parts[i].reshape(shapes[i]) + parts[i + 1]
            if i + 2 < len(shapes):
                h = knp.relu(h)
        r = h[:, 0] - y
        return 0.5 * knp.mean(r * r)

    def fit(tol: float | None) -> np.ndarray:
        kw = {} if tol is None else {"tol": tol, "max_iter": 10**5, "max_fun": 10**6}
        model = MLPRegressor(hidden_layer_sizes=sizes[1:-1], activation="relu",
                             solver="lbfgs", alpha=0.0, random_state=0, **kw).fit(X, y)
        return np.concatenate([a.ravel() for W, b in zip(model.coefs_, model.intercepts_)
                               for a in (W, b)]).astype(np.float64)

    return f, 0.5 * rng.standard_normal(int(sum(np.prod(s) for s in shapes))), fit


def instances(quick: bool) -> list[tuple[str, Callable, np.ndarray, Callable]]:
    cases = [("lasso m=200 n=250 rho=0.95", *lasso(200, 250, 0.95, 0.01, 0)),
             ("lasso m=100 n=300 rho=0.5", *lasso(100, 300, 0.5, 0.1, 1)),
             ("svm m=200 n=50 C=1", *svm(200, 50, 1.0, 2)),
             ("group lasso m=100 n=60 k=3", *group_lasso(100, 60, 3, 0.05, 7))]
    tv, sgl = _has("skimage"), _has("skglm")
    if sgl:
        cases.append(("sparse group lasso m=200 n=250 k=5",
                      *sparse_group_lasso(200, 50, 5, 0.02, 0.05, 12)))
    cases.append(("tv-l1 16x16", *tv_l1(16, 0.5, 14)))
    if tv:
        cases.append(("tv denoise 16x16", *tv_denoise(16, 0.15, 9)))
    if not quick:
        cases += [("lasso m=300 n=200 rho=0.99", *lasso(300, 200, 0.99, 0.001, 3)),
                  ("svm m=500 n=100 C=10", *svm(500, 100, 10.0, 4)),
                  ("lasso m=500 n=1000 rho=0.9", *lasso(500, 1000, 0.9, 0.01, 5)),
                  ("relu net 3-8-1 m=100", *relu_net(100, 8, 6)),
                  ("relu net 3-6-6-1 m=100", *relu_net(100, (6, 6), 1)),
                  ("group lasso m=300 n=400 k=4", *group_lasso(300, 400, 4, 0.05, 8))]
        cases.append(("tv-l1 64x64", *tv_l1(64, 0.5, 15)))
        if sgl:
            cases.append(("sparse group lasso m=500 n=2000 k=10",
                          *sparse_group_lasso(500, 200, 10, 0.01, 0.03, 13)))
        if tv:
            cases += [("tv denoise 32x32", *tv_denoise(32, 0.15, 10)),
                      ("tv denoise 64x64", *tv_denoise(64, 0.15, 11))]
    if not tv:
        print("scikit-image is not installed: the TV denoising rows are skipped "
              "(pip install -e '.[bench]').")
    if not sgl:
        print("skglm is not installed: the sparse group lasso rows are skipped "
              "(pip install -e '.[bench]').")
    # NOTE: abs-linear's learnt metric stops at n = 300 (a dense B in every piece QP): the
    # n = 1000 lasso shows it without one (at n = 1000 with B, 27 iterations took 113 s)
    return cases


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _zeros(fit: Callable, w: np.ndarray) -> int:
    """Exact zeros of the answer: entries, or what ``fit.zeros`` counts (TV: zero
    gradient norms)."""
    count = getattr(fit, "zeros", None)
    return int(count(w)) if count is not None else int(np.sum(np.asarray(w) == 0.0))


RADII = (0.0, 1e-12, 1e-10, 1e-8, 1e-6, 1e-4)


def judge(f: Callable, w: np.ndarray) -> tuple[object, float]:
    """kinkgrad's verdict on a peer's point at the smallest radius in RADII where it is
    "stationary" (tol 1e-8), else the verdict at the largest. Radius 0 is the exact Clarke
    test, meaningful where the point lies on its kinks (coordinate descent's zeros); a point
    near its kinks (liblinear's margins at 1 +- rounding) needs a ball."""
    for r in RADII:
        rep = kinkgrad.stationarity(f, w, radius=r)
        if rep.verdict == "stationary":
            break
    return rep, r


def run_case(name: str, f: Callable, x0: np.ndarray, fit: Callable) -> list[dict]:
    rows = []
    for tol in (None, 1e-12):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = time.perf_counter()
            w = fit(tol)
            sec = time.perf_counter() - t
        warned = any("Converge" in type(c.message).__name__ for c in caught)
        rep, r = judge(f, w)
        rows.append({"case": name, "tool": getattr(fit, "peer", "scikit-learn"),
                     "fun": float(f(w)), "method": "default tol" if tol is None else "tol 1e-12",
                     "note": " (ConvergenceWarning)" if warned else "",
                     "seconds": sec, "nit": None, "ngev": None, "verdict": rep.verdict,
                     "distance": float(rep.distance), "radius": r,
                     "zeros": _zeros(fit, w)})
    for (tool, method), solve in getattr(fit, "extra", {}).items():
        t = time.perf_counter()
        w = solve()
        sec = time.perf_counter() - t
        rep, r = judge(f, w)
        rows.append({"case": name, "tool": tool, "fun": float(f(w)), "method": method,
                     "seconds": sec, "nit": None, "ngev": None, "verdict": rep.verdict,
                     "distance": float(rep.distance), "radius": r, "zeros": _zeros(fit, w)})
    for method in ("bundle", "abs-linear"):
        t = time.perf_counter()
        res = kinkgrad.minimize(f, x0, method=method)
        sec = time.perf_counter() - t
        rep = res.stationarity
        rows.append({"case": name, "tool": "kinkgrad", "method": method, "fun": float(res.fun),
                     "seconds": sec, "nit": int(res.nit), "ngev": int(res.ngev),
                     "verdict": rep.verdict, "distance": float(rep.distance),
                     "radius": float(rep.radius), "zeros": _zeros(fit, res.x)})
    ref = min(r["fun"] for r in rows)
    for r in rows:
        r["gap"] = r["fun"] - ref
    return rows


def table(rows: list[dict]) -> str:
    out = ["| case | tool | method | f - f_ref | s | iterations | ngev | exact zeros | "
           "verdict (distance, radius) |", "| --- | --- | --- | --- | --- | --- | --- | --- "
           "| --- |"]
    for r in rows:
        it = "-" if r["nit"] is None else str(r["nit"])
        ng = "-" if r["ngev"] is None else str(r["ngev"])
        out.append(f"| {r['case']} | {r['tool']} | {r['method']}{r.get('note', '')} | "
                   f"{r['gap']:.1e} | "
                   f"{r['seconds']:.2f} | {it} | {ng} | {r['zeros']} | "
                   f"{r['verdict']} ({r['distance']:.1e}, "
                   f"{r['radius']:.0e}) |")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = list(dict.fromkeys(r["case"] for r in rows))
    labels = list(dict.fromkeys(f"{r['tool']} {r['method']}" for r in rows))
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(labels)
    for j, lab in enumerate(labels):
        vals = [next((r["seconds"] for r in rows if r["case"] == c  # NaN: no such row
                      and f"{r['tool']} {r['method']}" == lab), np.nan) for c in cases]
        ax.bar(np.arange(len(cases)) + j * width, vals, width, label=lab)
    ax.set_xticks(np.arange(len(cases)) + 0.4 - width / 2, cases, rotation=15, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("seconds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the first three instances only")
    ap.add_argument("--case", default="", help="only the instances whose name contains this")
    ap.add_argument("--out", default="benchmarks/out")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name, f, x0, fit in instances(args.quick):
        if args.case not in name:
            continue
        case = run_case(name, f, x0, fit)
        rows += case
        print(table(case).split("\n", 2)[2], flush=True)
    text = table(rows)
    print("\n" + text)
    (out / "regression.md").write_text(text + "\n")
    with open(out / "regression.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    plot(rows, out / "regression.png")


if __name__ == "__main__":
    main()
