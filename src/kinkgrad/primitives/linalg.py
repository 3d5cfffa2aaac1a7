"""Linear algebra primitives: matmul (also ``dot`` for 1-D and 2-D operands) and norms.

``matmul`` is bilinear and smooth; its cost is 2 m k n per product (paper A's model), and a
batch of K tangents or cotangents turns each product into one larger matrix product.
``norm`` covers ord 1, 2 and inf: ord 1 and inf are abs-smooth (their kinks follow the
``abs`` and ``max`` policies), ord 2 is smooth away from 0 and at 0 takes the policy's
``norm`` choice, the zero vector (an element of the unit ball, its Clarke subdifferential).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._core.csr import dense_to_csr
from .._core.primitive import (
    Primitive,
    _size,
    normalize_axis,
    ops,
    register,
    resolve_signs,
    summation_roundings,
    unbroadcast,
)
from .._core.tracer import bind
from ..errors import NotAbsSmoothError, ShapeError, UnsupportedOperationError
from .reduce import Max

# NumPy's own, kept when ``np`` is rebound to another backend's namespace (see backends)
_NDARRAY, _matmul = np.ndarray, np.matmul


def _mm(x: Any, y: Any, x1: bool, y1: bool) -> Any:
    """matmul of operands promoted like NumPy's 1-D rule, batch axes leading.

    A batch of vectors against one matrix is a single matrix product (K, n) @ (n, m), not K
    stacked matrix-vector products: that is what makes K directions cost one GEMM."""
    if y1 and not x1 and np.ndim(x) == 2 and np.ndim(y) >= 2:
        return np.matmul(y, np.swapaxes(x, -1, -2))
    if x1 and not y1 and np.ndim(y) == 2 and np.ndim(x) >= 2:
        return np.matmul(x, y)
    if x1:
        x = np.expand_dims(x, -2)
    if y1:
        y = np.expand_dims(y, -1)
    r = np.matmul(x, y)
    if x1 and y1:
        return r[..., 0, 0]
    if y1:
        return r[..., 0]
    if x1:
        return r[..., 0, :]
    return r


def _lift_stack(t: Any, shape: tuple, other: tuple) -> Any:
    """Unit axes after the batch axes of tangent ``t`` (of an operand of ``shape``) so that
    its matrix-stack axes line up with those of the product (the other operand's)."""
    nb = np.ndim(t) - len(shape)
    extra = max(len(other) - 2, 0) - max(len(shape) - 2, 0)
    if nb == 0 or extra <= 0:
        return t
    return np.reshape(t, np.shape(t)[:nb] + (1,) * extra + np.shape(t)[nb:])


def _mkn(sa: tuple, sb: tuple) -> tuple[int, int, int, int]:
    a = (1,) + tuple(sa) if len(sa) == 1 else tuple(sa)
    b = tuple(sb) + (1,) if len(sb) == 1 else tuple(sb)
    stack = _size(np.broadcast_shapes(a[:-2], b[:-2]))
    return stack, a[-2], a[-1], b[-1]


def _batched_matvec_vjp(g: np.ndarray, m: Any) -> np.ndarray:
    """Rows g_k @ m for a (K, rows) batch of cotangents: one product, sparse when g is.

    # NOTE: the dense product costs K rows n flops, the sparse one a pass over g plus nnz n:
    # worth its construction once the product is large (a seed per switch of a tournament
    # over the rows of a dense matrix reaches it with one or two nonzeros per row)."""
    m = np.asarray(m)
    if g.size * m.shape[-1] >= 10_000_000 and np.count_nonzero(g) <= 0.02 * g.size:
        return np.asarray(dense_to_csr(g) @ m)
    return g @ m


@register
class Matmul(Primitive):
    """``a @ b`` with NumPy's matmul semantics (1-D promotion, stacked broadcasting)."""

    name = numpy_name = "matmul"
    bilinear = True
    omega = 5.0
    vjp_reads_out = False  # its ndim only

    def impl(self, a, b):
        if type(a) is _NDARRAY and type(b) is _NDARRAY and a.ndim and b.ndim:
            return _matmul(a, b)  # the common case, without np.ndim's Python layer
        if np.ndim(a) == 0 or np.ndim(b) == 0:
            raise ValueError("matmul: operands must have at least one dimension")
        return np.matmul(a, b)

    def rounding(self, args, out, params):  # each entry a sum of K rounded products
        a, b = args
        return (summation_roundings(np.shape(a)[-1]) + 1.0) * self.impl(np.abs(a), np.abs(b))

    def cost(self, in_shapes, out_shape, params):
        s, m, k, n = _mkn(*in_shapes)
        return 2 * s * m * k * n

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        n_need = sum(1 for x in needs if x)
        return n_need * self.cost(in_shapes, out_shape, params) + max(n_need - 1, 0) * _size(
            out_shape)

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        s, m, k, n = _mkn(*in_shapes)
        total = 0
        for shape, need in zip(in_shapes, needs):
            if need:  # the product, its sum over broadcast stack axes, the accumulation
                full, own = s * _size(shape[-2:]), _size(shape)
                total += 2 * s * m * k * n + (full - own if full != own else 0) + own
        return total

    def jvp(self, sel, tangents, args, out, params):
        (a, b), (ta, tb) = args, tangents
        a1, b1 = np.ndim(a) == 1, np.ndim(b) == 1
        res = None if ta is None else _mm(_lift_stack(ta, np.shape(a), np.shape(b)), b, a1, b1)
        if tb is not None:
            term = _mm(a, _lift_stack(tb, np.shape(b), np.shape(a)), a1, b1)
            res = term if res is None else res + term
        return res

    def vjp(self, sel, g, args, out, params, needs):
        a, b = args
        if type(g) is type(a) is type(b) is np.ndarray and g.ndim == a.ndim == b.ndim == 2:
            # the common case, two matrices and one cotangent: no promotion, no batch axes
            return (g @ b.T if needs[0] else None, a.T @ g if needs[1] else None)
        a1, b1 = np.ndim(a) == 1, np.ndim(b) == 1
        nb = np.ndim(g) - np.ndim(out)
        g2 = np.asarray(g)
        if nb == 1 and a1 != b1 and np.ndim(a) + np.ndim(b) == 3 and not needs[0 if b1 else 1]:
            # NOTE: a batch of K cotangents of a matrix-vector product is one K x m by m x n
            # product (BLAS 3, not K matrix-vector products); the abs-normal layer's seeds
            # are mostly zero, so those go through a sparse product
            return (None, _batched_matvec_vjp(g2, a)) if b1 else (_batched_matvec_vjp(
                g2, np.swapaxes(b, -1, -2)), None)
        if a1 and b1:  # scalar output: (..., 1, 1)
            g2 = g2[..., None, None]
        elif a1:
            g2 = np.expand_dims(g2, -2)
        elif b1:
            g2 = np.expand_dims(g2, -1)
        ga = gb = None
        if needs[0]:
            b2 = np.expand_dims(b, -1) if b1 else b
            ga = np.matmul(g2, np.swapaxes(b2, -1, -2))
            if a1:
                ga = ga[..., 0, :]
            ga = unbroadcast(ga, np.shape(a), np.shape(ga)[nb:])
        if needs[1]:
            a2 = np.expand_dims(a, -2) if a1 else a
            gb = np.matmul(np.swapaxes(a2, -1, -2), g2)
            if b1:
                gb = gb[..., 0]
            gb = unbroadcast(gb, np.shape(b), np.shape(gb)[nb:])
        return ga, gb

    def samples(self, rng, dtype=np.float64):
        r = rng.normal
        return [((r(size=(3, 4)).astype(dtype), r(size=(4, 2)).astype(dtype)), {}),
                ((r(size=(4,)).astype(dtype), r(size=(4, 2)).astype(dtype)), {}),
                ((r(size=(3, 4)).astype(dtype), r(size=(4,)).astype(dtype)), {}),
                ((r(size=(4,)).astype(dtype), r(size=(4,)).astype(dtype)), {}),
                ((r(size=(2, 3, 4)).astype(dtype), r(size=(4, 2)).astype(dtype)), {}),
                ((r(size=(3, 4)).astype(dtype), r(size=(2, 4, 2)).astype(dtype)), {}),
                ((r(size=(4,)).astype(dtype), r(size=(2, 4, 3)).astype(dtype)), {})]


def dot(a: Any, b: Any) -> Any:
    """``np.dot`` for scalars, 1-D and 2-D operands (as matmul); N-D operands raise."""
    if np.ndim(a) == 0 or np.ndim(b) == 0:  # NOTE: the primitive (a bare tensor's * kept
        from .arith import Multiply  # autograd)

        return Multiply.instance(a, b)  # type: ignore[attr-defined]
    if np.ndim(a) > 2 or np.ndim(b) > 2:
        raise UnsupportedOperationError(
            "dot: operands with more than 2 dimensions are not supported; use knp.matmul "
            "(stacked products) or reshape to 2-D."
        )
    return Matmul.instance(a, b)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ norms
_ORDS = {None: 2, 2: 2, "fro": 2, 1: 1, np.inf: np.inf, "inf": np.inf}


@register
class Norm(Primitive):
    """Vector norms ``||x||_p`` for p in {1, 2, inf} along ``axis`` (all axes if None).

    Kink convention: p = 1 follows the ``abs`` policy at zero entries; p = inf the ``max``
    policy among tied largest |x_i| and the ``abs`` policy for their signs; p = 2 at the zero
    vector takes the ``norm`` policy's zero vector (never NaN). Returns an element of the
    Clarke subdifferential of the norm: sign vectors in the l-inf ball, convex weights on the
    maximisers, the unit ball at 0.
    """

    name = "norm"
    numpy_name = "norm"
    policy_key = "norm"
    c_fn = 2
    omega = 4.0

    def __call__(self, x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:
        from . import _matnorm

        if _matnorm.is_matrix_norm(x, ord, axis):  # ord 1, -1, inf, -inf over two axes
            return _matnorm.matrix_norm(x, ord, axis, keepdims)
        try:
            p = _ORDS[ord]
        except (KeyError, TypeError):
            raise UnsupportedOperationError(
                f"linalg.norm: ord={ord!r} is not supported; use ord=1, 2 or np.inf."
            ) from None
        nd = np.ndim(x)
        # NOTE: NumPy reads an explicit ord (other than "fro") over two axes as a matrix norm
        # (ord=2: the largest singular value), not as the vector norm of the entries.
        explicit = ord is not None and not (isinstance(ord, str) and ord == "fro")
        two_axes = (axis is None and nd > 1) or (isinstance(axis, tuple) and len(axis) > 1)
        if (axis is None and nd > 1 and p != 2) or (explicit and p == 2 and two_axes):
            raise UnsupportedOperationError(
                f"linalg.norm: ord={ord!r} over several axes of a {nd}-D array means a matrix norm "
                "in NumPy, which kinkgrad does not provide; flatten first (x.reshape(-1)) for "
                "the vector norm, pass one axis=, or use ord=None ('fro') for the Frobenius "
                "norm."
            )
        if isinstance(axis, tuple) and len(axis) > 1 and p != 2:
            raise ShapeError("linalg.norm: several axes are supported for ord=2 only.")
        axes = normalize_axis(axis, nd)
        if p == np.inf and _size([np.shape(x)[a] for a in axes]) == 0:
            raise ShapeError(
                f"linalg.norm: ord=inf over the empty axes {axes} of an array of shape "
                f"{np.shape(x)} is the max of no numbers (NumPy raises too); check the shape or "
                "use ord=1 or 2 (both 0 on an empty vector)."
            )
        return bind(self, x, ord=p, axis=axes, keepdims=bool(keepdims))

    def pp_params(self, params):
        return f"[ord={params['ord']:g},axis={params['axis']}]"

    def impl(self, x, ord, axis, keepdims):
        a = np.abs(x)
        if ord == 1:
            return np.sum(a, axis=axis, keepdims=keepdims)
        if ord == np.inf:
            return np.max(a, axis=axis, keepdims=keepdims)
        if np.size(a) == 0:  # NumPy: the norm of an empty vector is 0
            return np.sum(a, axis=axis, keepdims=keepdims)
        m = np.max(a, axis=axis, keepdims=True)
        safe = np.where(m > 0, m, 1)
        r = m * np.sqrt(np.sum((a / safe) ** 2, axis=axis, keepdims=True))
        return (r if keepdims else np.squeeze(r, axis=axis)).astype(np.result_type(x))[()]

    def rounding(self, args, out, params):
        if params["ord"] == np.inf:
            return None  # exact: one |x_i|
        m = np.size(args[0]) // max(np.size(out), 1)
        extra = 0.0 if params["ord"] == 1 else 4.0  # scaling, squares, sqrt, rescaling
        return (summation_roundings(m) + extra) * np.abs(out)

    def cost(self, in_shapes, out_shape, params):
        return 2 * _size(in_shapes[0]) + _size(out_shape)

    def jvp_cost(self, in_shapes, out_shape, params, needs):
        return 2 * _size(in_shapes[0])

    def vjp_cost(self, in_shapes, out_shape, params, needs):
        return 4 * _size(in_shapes[0])

    def switch(self, args, out, params):
        x = np.asarray(args[0])
        if params["ord"] == 1:
            return np.abs(x)
        if params["ord"] == 2:
            return np.asarray(out)
        return Max.instance.switch((np.abs(x),), out, params)  # type: ignore[attr-defined]

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x, p, axis = np.asarray(args[0]), params["ord"], params["axis"]
        t = None if tangents is None else tangents[0]
        dtype = np.result_type(x)
        if p == 1:
            s = resolve_signs(x, t, mode)
            kinks = int(np.count_nonzero(x == 0))
            if kinks and policy.abs != 0:
                s = np.where(s == 0, policy.abs, s)
            return s.astype(dtype), kinks
        if p == np.inf:
            s = resolve_signs(x, t, mode)
            at = None if t is None else s * t
            w, kinks = Max.instance.select(  # type: ignore[attr-defined]
                policy, (np.abs(x),), out, {"axis": axis, "keepdims": params["keepdims"]},
                None if at is None else (at,), mode)
            if np.any(s == 0) and policy.abs != 0:
                s = np.where(s == 0, policy.abs, s)
            return (s * w).astype(dtype), kinks
        keep = out if params["keepdims"] else np.expand_dims(out, axis)
        # NOTE: x / ||x|| from the scaled vector x / max|x_i|: at subnormal or huge x the
        # rounded norm (sqrt(2) * 5e-324 rounds to 5e-324) would give a wrong direction.
        m = np.max(np.abs(x), axis=axis, keepdims=True) if np.size(x) else keep
        zero = (keep == 0) | (m == 0)  # NOTE: x = 0 under a recorded norm of 1.4e-14 (a
        kinks = int(np.count_nonzero(zero))  # rewritten trace's probe) divided 0 by 0
        safe = np.where(m > 0, m, 1)
        u = x / safe
        sel = u / np.where(zero, 1, np.sqrt(np.sum(u * u, axis=axis, keepdims=True)))
        if kinks and t is not None and mode != "policy":
            if mode == "directional":
                nt = np.sqrt(np.sum(t * t, axis=axis, keepdims=True))
                unit = t / np.where(nt > 0, nt, 1)
                sel = np.where(zero, unit, sel)
            else:
                dec = np.zeros(np.shape(keep), bool)
                for k in range(t.shape[0]):
                    nt = np.sqrt(np.sum(t[k] * t[k], axis=axis, keepdims=True))
                    use = zero & ~dec & (nt > 0)
                    sel = np.where(use, t[k] / np.where(nt > 0, nt, 1), sel)
                    dec |= use
        return sel.astype(dtype), kinks

    def jvp(self, sel, tangents, args, out, params):
        return np.sum(sel * tangents[0], axis=params["axis"], keepdims=params["keepdims"])

    def vjp(self, sel, g, args, out, params, needs):
        if not params["keepdims"]:
            g = np.expand_dims(g, params["axis"])
        return (g * sel,)

    def abs_form(self, args, params):
        x, p, axis, keep = args[0], params["ord"], params["axis"], params["keepdims"]
        if p == 1:
            return ops.sum(ops.abs(x), axis=axis, keepdims=keep)
        if p == np.inf:  # max of |x| written with abs only (the max's own abs form)
            return Max.instance.abs_form(  # type: ignore[attr-defined]
                (ops.abs(x),), {"axis": axis, "keepdims": keep})
        if np.any(self.impl(getattr(x, "value", x), **params) == 0):
            raise NotAbsSmoothError(
                "linalg.norm: the Euclidean norm at the zero vector is not abs-smooth (its "
                "directional derivative ||d|| is not piecewise linear); use ord=1 or ord=inf, "
                "or evaluate away from 0."
            )
        return None

    def samples(self, rng, dtype=np.float64):
        x = (rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.2, 2, (3, 4))).astype(dtype)
        x[0, 0] = 3.0  # a clear maximiser of |x| for ord=inf
        x[1, 1] = -3.0
        x[2, 2] = 3.0
        out = []
        for p in (1, 2, np.inf):
            out.append(((x,), {"ord": p, "axis": (-1,), "keepdims": False}))
        out.append(((x,), {"ord": 2, "axis": (-2, -1), "keepdims": False}))
        return out

    def kink_samples(self, rng, dtype=np.float64):
        x = np.array([[0.0, 1.0, -2.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype)
        return [((x,), {"ord": p, "axis": (-1,), "keepdims": False}) for p in (1, 2, np.inf)]
