"""Singular-value norms of the last two axes: the nuclear norm (sum of the singular values)
and the spectral norm (the largest one), ``knp.linalg.norm(x, 'nuc')`` and ``(x, 2)``.

Both are convex and Lipschitz, smooth where their singular values are simple in the relevant
sense: the nuclear norm wherever x has full rank min(m, n) (repeated nonzero singular values
do no harm), the spectral norm wherever its largest singular value is simple and positive.

Derivatives, with x = U diag(s) V^T:

- nuclear norm: U_1 V_1^T + W, U_1, V_1 the singular vectors of the positive singular values;
  at a rank-deficient x (the kink) the subdifferential is W = U_0 Z V_0^T with ||Z||_2 <= 1
  (U_0, V_0 bases of the complementary left and right subspaces); the ``norm`` policy's
  "zero" takes W = 0, the minimum-norm element. Along a direction T the piece entered is
  W = U_0 P Q^T V_0^T from the SVD P S Q^T of U_0^T T V_0 (repeated for the part a direction
  leaves at zero, with the next direction).
- spectral norm: u_1 v_1^T; at an r-fold largest singular value s_1 > 0 the subdifferential
  is {U_1 M V_1^T : M symmetric positive semidefinite, trace 1}; the ``max`` policy takes
  u_1 v_1^T ("first", a vertex) or U_1 V_1^T / r ("split", the barycentre). Along T the piece
  entered is U_1 q q^T V_1^T, q the top eigenvector of the symmetric part of U_1^T T V_1
  (ties refined by the next direction). At x = 0 the subdifferential is the nuclear-norm
  unit ball; the ``norm`` policy takes 0, and along T the top singular pair u v^T of T.

Neither is abs-smooth at its kinks (the local model is a nuclear norm or an eigenvalue, not
piecewise linear), so ``abs_form`` raises there, as for the Euclidean norm at 0. Singular
values within max(m, n) eps s_1 of 0 (or of s_1) count as 0 (as tied): the numerical rank of
``numpy.linalg.matrix_rank``. Written against the module-level ``np``, which the array
backends rebind.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.primitive import Primitive, _size, register, summation_roundings
from .._core.tracer import bind
from ..errors import NotAbsSmoothError, ShapeError

_NAMES = {"nuc": "nuclear", 2: "spectral"}


def _work(x: Any) -> Any:
    """x in a dtype the LAPACK routines take (float16 is lifted to float32)."""
    return x.astype(np.float32) if np.result_type(x) == np.float16 else x


def _tol(x: Any, s0: Any) -> float:
    m, n = np.shape(x)[-2:]
    return float(max(m, n) * np.finfo(np.result_type(x)).eps * s0)


def _svals(x: Any) -> Any:
    """Singular values (descending, last axis) with the numerically zero ones set to 0."""
    s = np.linalg.svd(_work(x), compute_uv=False)
    m, n = np.shape(x)[-2:]
    top = s[..., :1]
    return np.where(s <= max(m, n) * np.finfo(np.result_type(x)).eps * top, 0, s)


def _null_pieces(U0: Any, V0: Any, Ts: list, eps: float) -> Any:
    """Sum of U_0 P Q^T V_0^T over the directions, each on what the previous left at 0."""
    W = None
    for T in Ts:
        if U0.shape[1] == 0 or V0.shape[1] == 0:
            break
        P, sig, Qt = np.linalg.svd(U0.T @ T @ V0, full_matrices=True)
        if sig.shape[0] == 0 or float(sig[0]) == 0:
            continue
        p = int(np.count_nonzero(sig > max(P.shape[0], Qt.shape[0]) * eps * sig[0]))
        piece = (U0 @ P[:, :p]) @ (Qt[:p] @ V0.T)
        W = piece if W is None else W + piece
        U0, V0 = U0 @ P[:, p:], V0 @ Qt[p:].T
    return W


def first_pair(U1: Any, V1: Any) -> Any:
    """u v^T for the "first" singular pair of a tied top block, independent of the basis the
    SVD returned: u the normalised projection onto span(U_1) of the first coordinate vector
    that is not orthogonal to it, v = V_1 U_1^T u (its partner)."""
    proj = U1 @ U1.T
    i = int(np.argmax(np.sum(proj * proj, axis=0) > 0.5 / proj.shape[0]))
    u = proj[:, i] / np.sqrt(np.sum(proj[:, i] * proj[:, i]))
    v = V1 @ (U1.T @ u)
    return u[:, None] * v[None, :]


def _top_piece(U1: Any, V1: Any, Ts: list, zero: bool, split: bool, eps: float) -> Any:
    """u v^T of the top singular pair the directions select (see the module docstring)."""
    for T in Ts:
        if U1.shape[1] == 1:
            break
        A = U1.T @ T @ V1
        if zero:  # x = 0: the model is the spectral norm of T itself
            P, sig, Qt = np.linalg.svd(A, full_matrices=False)
            if float(sig[0]) == 0:
                continue
            r = int(np.count_nonzero(sig[0] - sig <= max(A.shape) * eps * sig[0]))
            U1, V1, zero = U1 @ P[:, :r], V1 @ Qt[:r].T, False
        else:  # s_1 > 0: the largest eigenvalue of the symmetric part
            w, Q = np.linalg.eigh((A + A.T) * 0.5)
            r = int(np.count_nonzero(w[-1] - w <= A.shape[0] * eps * max(abs(float(w[-1])),
                                                                            abs(float(w[0])))))
            U1, V1 = U1 @ Q[:, -r:], V1 @ Q[:, -r:]
    if zero:
        return None
    if U1.shape[1] > 1:
        return (U1 @ V1.T) * (1.0 / U1.shape[1]) if split else first_pair(U1, V1)
    return U1 @ V1.T


@register
class SvdNorm(Primitive):
    """``norm(x, 'nuc')`` (sum of the singular values) or ``norm(x, 2)`` (the largest) of
    the matrices on the last two axes. Kink convention: the nuclear norm at a rank-deficient
    x takes the ``norm`` policy's minimum-norm element U_1 V_1^T; the spectral norm at a
    repeated largest singular value the ``max`` policy's u_1 v_1^T ("first") or the average
    U_1 V_1^T / r ("split"), and 0 at x = 0. Each lies in the subdifferential of the convex
    norm, which is its Clarke subdifferential (module docstring for the formulas)."""

    name = "svd_norm"
    policy_key = "norm"
    omega = 2.0

    def __call__(self, x: Any, ord: Any) -> Any:
        if ord not in _NAMES:
            raise ShapeError(f"svd_norm: ord={ord!r}; use 'nuc' or 2.")
        if np.ndim(x) < 2:
            raise ShapeError(f"linalg.norm: ord={ord!r} is a matrix norm; x of shape "
                             f"{np.shape(x)} has fewer than two axes.")
        return bind(self, x, ord=ord)

    def impl(self, x, ord):
        s = np.linalg.svd(_work(x), compute_uv=False)
        out = np.sum(s, axis=-1) if ord == "nuc" else s[..., 0]
        return out.astype(np.result_type(x))

    def rounding(self, args, out, params):  # LAPACK's SVD, then a sum for 'nuc'
        return summation_roundings(_size(np.shape(args[0])[-2:])) * np.abs(out)

    def cost(self, in_shapes, out_shape, params):
        *stack, m, n = in_shapes[0]
        return 6 * _size(stack) * m * n * min(m, n)  # a full SVD (Golub-Reinsch order)

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(in_shapes[0])

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(in_shapes[0])

    def switch(self, args, out, params):
        """Nuclear: the singular values (a kink at a zero one). Spectral: the gap s_1 - s_2
        (s_1 alone for a single row or column), zero at a tie and at x = 0."""
        s = _svals(args[0])
        if params["ord"] == "nuc":
            return s
        if s.shape[-1] < 2:
            return s[..., 0]
        gap = s[..., 0] - s[..., 1]
        return np.where(gap <= max(np.shape(args[0])[-2:]) * np.finfo(
            np.result_type(args[0])).eps * s[..., 0], 0, gap)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x = args[0]
        dtype = np.result_type(x)
        eps = float(np.finfo(dtype).eps)
        shape = np.shape(x)
        m, n = shape[-2:]
        xs = np.reshape(x, (-1, m, n))
        t = None if tangents is None or mode == "policy" else tangents[0]
        ts = None if t is None else np.reshape(t, (np.shape(t)[0], -1, m, n))
        per_dir = mode == "directional" and ts is not None
        sels, kinks = [], 0
        for b in range(xs.shape[0]):
            U, s, Vt = np.linalg.svd(_work(xs[b]), full_matrices=True)
            k = int(s.shape[0])
            dirs = [] if ts is None else [ts[j, b] for j in range(ts.shape[0])]
            if params["ord"] == "nuc":
                r1 = int(np.count_nonzero(s > _tol(xs[b], s[0])))
                base = U[:, :r1] @ Vt[:r1]
                kinks += k - r1
                groups = [[d] for d in dirs] if per_dir else [dirs]
                outs = []
                for g in groups:
                    W = None if r1 == k else _null_pieces(U[:, r1:], Vt[r1:].T, g, eps)
                    outs.append(base if W is None else base + W)
            else:
                zero = float(s[0]) == 0
                r = 0 if zero else int(np.count_nonzero(s[0] - s <= _tol(xs[b], s[0])))
                kinks += int(zero or r > 1)
                U1, V1 = (U, Vt.T) if zero else (U[:, :r], Vt[:r].T)
                groups = [[d] for d in dirs] if per_dir else [dirs]
                outs = []
                for g in groups:
                    piece = _top_piece(U1, V1, g, zero, policy.max == "split", eps)
                    outs.append(np.zeros((m, n), U.dtype) if piece is None else piece)
            sels.append(np.stack(outs) if per_dir else outs[0])
        if per_dir:
            sel = np.reshape(np.stack(sels, axis=1), (ts.shape[0],) + tuple(shape))
        else:
            sel = np.reshape(np.stack(sels), shape)
        return sel.astype(dtype), kinks

    def jvp(self, sel, tangents, args, out, params):
        return np.sum(sel * tangents[0], axis=(-2, -1))

    def vjp(self, sel, g, args, out, params, needs):
        return (np.asarray(g)[..., None, None] * sel,)

    def abs_form(self, args, params):
        x = getattr(args[0], "value", args[0])
        if np.any(self.switch([x], None, params) == 0):
            where = "a rank-deficient matrix" if params["ord"] == "nuc" else \
                "a repeated largest singular value"
            raise NotAbsSmoothError(
                f"linalg.norm: the {_NAMES[params['ord']]} norm at {where} is not abs-smooth "
                "(its directional derivative is a norm or an eigenvalue, not piecewise "
                "linear); use ord=1, inf or 'fro', or evaluate away from it.")
        return None

    def samples(self, rng, dtype=np.float64):
        def spread(m: int, n: int) -> np.ndarray:  # singular values 2.5, 1.5, 0.5, ...
            q1, _ = np.linalg.qr(rng.normal(size=(m, m)))
            q2, _ = np.linalg.qr(rng.normal(size=(n, n)))
            k = min(m, n)
            return (q1[:, :k] * (0.5 + np.arange(k)[::-1])) @ q2[:k]

        a, c = spread(3, 4), spread(1, 4)
        b = np.stack([spread(3, 3), spread(3, 3)])
        return [((v.astype(dtype),), {"ord": o}) for v in (a, b, c) for o in ("nuc", 2)]

    def kink_samples(self, rng, dtype=np.float64):
        low = np.array([[1.0, 2.0, 0.0], [2.0, 4.0, 0.0], [0.0, 0.0, -1.0]], dtype)  # rank 2
        one = np.array([[1.0, -2.0, 0.5], [2.0, -4.0, 1.0]], dtype)  # rank 1
        tie = np.array([[1.0, 1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 0.0, 0.5]], dtype)  # s = r2, r2
        zero = np.zeros((2, 3), dtype)
        return [((low,), {"ord": "nuc"}), ((one,), {"ord": "nuc"}), ((zero,), {"ord": "nuc"}),
                ((tie,), {"ord": 2}), ((zero,), {"ord": 2}), ((np.stack([tie, low]),),
                                                              {"ord": 2})]
