"""The abs-normal form of a program at a point (paper B's z = F(x, |z|), y = f(x, |z|)).

Naming convention (Griewank's and CppAD's; ADOL-C swaps J and Y): with Delta x = x' - x,

    z = cz + Z Delta x + L |z|,        y = cy + J Delta x + Y |z|,

where, writing the program with an independent u_i in place of every |z_i| (the *augmented*
function z = F(x, u), y = f(x, u), evaluated at u = |z(x)|),

    Z = dF/dx (s x n),  L = dF/du (s x s, strictly lower triangular),
    J = df/dx (p x n),  Y = df/du (p x s),
    cz = z(x) - L |z(x)|,  cy = f(x) - Y |z(x)|   (so Delta x = 0 reproduces z(x) and f(x)).

In the usual notation (a, b) of the affine part, a and b are J and Y. The switching
variables are the arguments of the ``abs`` nodes of the abs-normal program (:mod:`.expand`),
in program order; ``names`` says which node of the user's program (and which primitive)
produced each.

For small s the four matrices are dense arrays, extracted by one batched forward sweep of
the augmented program (n + s tangents, in chunks), or from its s + p rows by reverse sweeps
when those are fewer (``tosparse``'s compressed rows). For large s (a ReLU network has one
switching variable per unit per sample) they are :class:`scipy.sparse.linalg.LinearOperator`
objects whose ``matvec``/``rmatvec`` (and ``matmat``) run forward/reverse sweeps of the
augmented program, so no s x s matrix is ever formed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular
from scipy.sparse.linalg import LinearOperator

from ..backends import on_numpy
from ..errors import KinkgradError, NonFiniteInputError
from ..kinks import KinkPolicy
from ..modes.sparse_rows import reverse_rows
from ..modes.sweeps import forward_sweep, reverse_sweep
from ._flat import FlatSpec, other_arguments, output_slots, trace_at, underflow_is_not_an_error
from .expand import Expanded
from .zero_norms import expand_flat_norms

__all__ = ["AbsNormalForm", "SwitchNode", "abs_normal_form"]

_DENSE_ENTRIES = 4_000_000  # s * (n + s) above which the matrices stay linear operators
_CHUNK = 256
_POLICY = KinkPolicy()


@dataclass(frozen=True)
class SwitchNode:
    """A block of switching variables: the entries of one ``abs`` of the abs-normal program.

    Attributes:
        var: name of the user's program node that produced it (as printed by ``trace``).
        primitive: that node's primitive (``relu``, ``max``, ...).
        origin: index of that node's equation in the user's program.
        producer: the primitive whose abs form created this ``abs`` (``max`` for the
            tournament inside ``norm(ord=inf)``).
        ordinal: rank of this ``abs`` inside the producer's abs form.
        offset, size, shape: position of its switches in z and their shape.
        params: the producer's parameters (e.g. ``const`` of a maximum tied with a constant).
    """

    var: str
    primitive: str
    origin: int
    producer: str
    ordinal: int
    offset: int
    size: int
    shape: tuple
    params: dict = field(default_factory=dict, compare=False, repr=False)


class _Augmented:
    """Sweeps of the augmented program: the abs-normal program with every abs cut out."""

    def __init__(self, exp: Expanded, spec: FlatSpec) -> None:
        self.exp, self.spec = exp, spec
        self.eqns = [e for e in exp.eqns if e.prim.name != "abs"]
        nb = len(exp.abs_eqns)
        self.z_slots = [exp.z_slot(j) for j in range(nb)]
        self.u_slots = [exp.u_slot(j) for j in range(nb)]
        self.shapes = [tuple(exp.eqns[k].out.shape) for k in exp.abs_eqns]
        self.off = exp.offsets
        self.outs = [(o, v) for o, v in output_slots(exp.traced)]
        self.p_off = np.concatenate([[0], np.cumsum([v.size for _, v in self.outs])]).astype(int)
        self.s, self.p, self.n = exp.s, int(self.p_off[-1]), spec.n
        self.x_slots = [v.index for v in exp.traced.in_vars]

    def forward(self, DX: np.ndarray, DU: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of (Z dx + L du, J dx + Y du) for the rows of DX (k, n) and DU (k, s)."""
        k = DX.shape[0]
        tangents: dict[int, Any] = {}
        for slot, leaf in zip(self.x_slots, self.spec.split(DX)):
            tangents[slot] = leaf.astype(np.float64)
        for j, slot in enumerate(self.u_slots):
            tangents[slot] = DU[:, self.off[j]:self.off[j + 1]].reshape((k,) + self.shapes[j])
        tan, _ = forward_sweep(self.eqns, self.exp.vals, tangents, _POLICY)
        Zt = np.zeros((k, self.s))
        for j, slot in enumerate(self.z_slots):
            t = tan.get(slot)
            if t is not None:
                Zt[:, self.off[j]:self.off[j + 1]] = np.broadcast_to(
                    t, (k,) + self.shapes[j]).reshape(k, -1)
        Yt = np.zeros((k, self.p))
        for q, (o, v) in enumerate(self.outs):
            t = None if o is None else tan.get(o.index)
            if t is not None:
                Yt[:, self.p_off[q]:self.p_off[q + 1]] = np.broadcast_to(
                    t, (k,) + v.shape).reshape(k, -1)
        return Zt, Yt

    def reverse(self, WZ: np.ndarray, WY: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of (Z^T wz + J^T wy, L^T wz + Y^T wy) for the rows of WZ (r, s), WY (r, p)."""
        r = WZ.shape[0]
        seeds: dict[int, np.ndarray] = {}

        def add(slot: int, c: np.ndarray) -> None:
            seeds[slot] = seeds[slot] + c if slot in seeds else c

        for j, slot in enumerate(self.z_slots):
            add(slot, WZ[:, self.off[j]:self.off[j + 1]].reshape((r,) + self.shapes[j]))
        for q, (o, v) in enumerate(self.outs):
            if o is not None:
                add(o.index, WY[:, self.p_off[q]:self.p_off[q + 1]].reshape((r,) + v.shape))
        keep = set(self.x_slots) | set(self.u_slots)
        ct = reverse_sweep(self.eqns, self.exp.vals, seeds, _POLICY, keep=keep)
        X = self.spec.join([None if ct.get(s) is None else np.broadcast_to(ct[s], (r,) + sh)
                            for s, sh in zip(self.x_slots, self.spec.shapes)], (r,))
        U = np.zeros((r, self.s))
        for j, slot in enumerate(self.u_slots):
            c = ct.get(slot)
            if c is not None:
                U[:, self.off[j]:self.off[j + 1]] = np.broadcast_to(
                    c, (r,) + self.shapes[j]).reshape(r, -1)
        return X, U

    def evaluate(self, x: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, y) = (F(x, u), f(x, u)) by plain NumPy evaluation of the augmented program."""
        vals = list(self.exp.vals)
        for slot, leaf in zip(self.x_slots, self.spec.split(np.asarray(x, np.float64))):
            vals[slot] = leaf
        for j, slot in enumerate(self.u_slots):
            vals[slot] = np.asarray(u[self.off[j]:self.off[j + 1]]).reshape(self.shapes[j])
        for e in self.eqns:
            args = e.args(vals)
            vals[e.out.index] = e.prim.impl(*args, **e.params)
        z = np.concatenate([np.asarray(vals[s], np.float64).reshape(-1) for s in self.z_slots]
                           ) if self.z_slots else np.zeros(0)
        y = np.concatenate([np.asarray(vals[o.index] if o is not None else v,
                                       np.float64).reshape(-1) for o, v in self.outs])
        return z, y


def _cols(V: np.ndarray, n: int) -> np.ndarray:
    """The columns of V (n, k) or of a vector (n,) as rows (k, n)."""
    V = np.asarray(V, np.float64)
    return (V.reshape(n, 1) if V.ndim == 1 else V.reshape(n, V.shape[-1])).T


def _operator(aug: _Augmented, rows: str, cols: str) -> LinearOperator:
    """One block (rows in {z, y}, columns in {x, u}) of [[Z, L], [J, Y]] as an operator."""
    m = aug.s if rows == "z" else aug.p
    n = aug.n if cols == "x" else aug.s

    def matmat(V: np.ndarray) -> np.ndarray:
        V = _cols(V, n)
        k = V.shape[0]
        DX = V if cols == "x" else np.zeros((k, aug.n))
        DU = V if cols == "u" else np.zeros((k, aug.s))
        Zt, Yt = aug.forward(DX, DU)
        return (Zt if rows == "z" else Yt).T

    def rmatmat(V: np.ndarray) -> np.ndarray:
        V = _cols(V, m)
        r = V.shape[0]
        WZ = V if rows == "z" else np.zeros((r, aug.s))
        WY = V if rows == "y" else np.zeros((r, aug.p))
        X, U = aug.reverse(WZ, WY)
        return (X if cols == "x" else U).T

    def matvec(v: np.ndarray) -> np.ndarray:
        return matmat(np.reshape(v, (n, 1)))[:, 0]

    def rmatvec(v: np.ndarray) -> np.ndarray:
        return rmatmat(np.reshape(v, (m, 1)))[:, 0]

    return LinearOperator((m, n), matvec=matvec, rmatvec=rmatvec, matmat=matmat,
                          rmatmat=rmatmat, dtype=np.float64)


class AbsNormalForm:
    """The abs-normal form at x (see the module docstring for the convention).

    Attributes:
        n, s, p: input dimension (total size of x), number of switching variables, output
            size (all outputs raveled and concatenated).
        x, y, z: the point (flat), f(x) (flat), the switching values z(x).
        sigma: signature sign(z) (0 at active switches).
        active: boolean mask of the active switches (z == 0: the kinks).
        Z, L, J, Y: dense arrays when ``dense``, CSR matrices when ``sparse``
            (:meth:`tosparse`), else ``LinearOperator`` objects.
        cz, cy: offsets.
        nodes: one :class:`SwitchNode` per ``abs`` of the abs-normal program.
        node_of: for every switch, the index of its node in ``nodes``.
        dense, sparse: whether the matrices are materialised as arrays / as CSR.
    """

    def __init__(self, exp: Expanded, spec: FlatSpec, dense: bool | None) -> None:
        self._exp, self._spec = exp, spec
        self._aug = aug = _Augmented(exp, spec)
        self.n, self.s, self.p = aug.n, aug.s, aug.p
        self.x = spec.point(exp.traced)
        self.z = exp.z() + 0.0  # no -0.0 in the report
        self.y = np.concatenate([np.asarray(v, np.float64).reshape(-1) for _, v in aug.outs])
        self.sigma = np.sign(self.z).astype(int)
        self.active = self.z == 0
        self.nodes = [self._node(j) for j in range(len(exp.abs_eqns))]
        self.node_of = np.repeat(np.arange(len(self.nodes)), np.diff(exp.offsets)).astype(int)
        if dense is None:
            dense = self.s * (self.n + self.s) <= _DENSE_ENTRIES
        self.dense = bool(dense)
        self.sparse = False
        self.Z: Any = _operator(aug, "z", "x")
        self.L: Any = _operator(aug, "z", "u")
        self.J: Any = _operator(aug, "y", "x")
        self.Y: Any = _operator(aug, "y", "u")
        if self.dense:
            self._densify()
        a = np.abs(self.z)
        with np.errstate(over="ignore", invalid="ignore"):
            self.cz = self.z - self.L @ a if self.s else self.z.copy()
            self.cy = self.y - self.Y @ a if self.s else self.y.copy()
        if not (np.all(np.isfinite(self.cz)) and np.all(np.isfinite(self.cy))):
            raise NonFiniteInputError(
                "abs_normal_form: the offsets c_z = z - L|z| and c_y = y - Y|z| overflow "
                f"float64 at this x (|z| up to {float(np.max(a)):.3g}); rescale x or f so "
                "that the switching values and their derivatives stay in range.")

    def _node(self, j: int) -> SwitchNode:
        exp = self._exp
        m = exp.switch_meta(j)
        orig = exp.original.eqns[m.origin]
        from .._core.program import _var_name

        return SwitchNode(_var_name(orig.out.index), orig.prim.name, m.origin, m.producer,
                          m.ordinal, int(exp.offsets[j]), int(exp.offsets[j + 1] - exp.offsets[j]),
                          tuple(exp.eqns[exp.abs_eqns[j]].out.shape), dict(m.params or {}))

    def _densify(self) -> None:
        n, s, p = self.n, self.s, self.p
        if 2 * (s + p) < n + s:
            # NOTE: fewer rows than columns: the s + p rows of reverse sweeps (compressed,
            # see tosparse) cost less than n + s forward tangents (chained CB3 II at
            # n = 10^4: 3 rows instead of 10,002 tangents, 8.9 s per form before)
            self.Z, self.L, self.J, self.Y = (M.toarray() for M in self._rows())
            return
        Z, L, J, Y = np.zeros((s, n)), np.zeros((s, s)), np.zeros((p, n)), np.zeros((p, s))
        for lo in range(0, n + s, _CHUNK):
            hi = min(lo + _CHUNK, n + s)
            eye = np.zeros((hi - lo, n + s))
            eye[np.arange(hi - lo), np.arange(lo, hi)] = 1.0
            Zt, Yt = self._aug.forward(eye[:, :n], eye[:, n:])
            for c in range(lo, hi):
                if c < n:
                    Z[:, c], J[:, c] = Zt[c - lo], Yt[c - lo]
                else:
                    L[:, c - n], Y[:, c - n] = Zt[c - lo], Yt[c - lo]
        self.Z, self.L, self.J, self.Y = Z, L, J, Y

    # ------------------------------------------------------------------ views
    @property
    def names(self) -> list[str]:
        """A readable name for every switching variable (user's node, entry, primitive)."""
        return [self._exp.name(i) for i in range(self.s)]

    def todense(self) -> AbsNormalForm:
        """Materialise the four matrices (n + s forward tangents in chunks, or the s + p rows
        of reverse sweeps when they are fewer than half as many; a sparse form is
        expanded)."""
        if self.sparse:
            self.Z, self.L, self.J, self.Y = (M.toarray() for M in (self.Z, self.L, self.J,
                                                                     self.Y))
            self.sparse, self.dense = False, True
        if not self.dense:
            self._densify()
            self.dense = True
        return self

    def tosparse(self) -> AbsNormalForm:
        """Materialise the four matrices as ``scipy.sparse`` CSR matrices (``sparse`` is then
        True): the rows of a reverse sweep of the augmented program seeded at every z_i and
        output, rows with disjoint supports sharing a sweep (their supports measured by NaN
        probes, :mod:`kinkgrad.modes.sparse_rows`), so a chained function's form at
        n = 10^4 costs a few dozen sweeps; exactly the dense matrices' nonzeros. A dense
        form is converted. ``linearization`` still needs ``todense``."""
        if self.sparse:
            return self
        if self.dense:
            self.Z, self.L, self.J, self.Y = (sp.csr_matrix(np.asarray(M, np.float64))
                                              for M in (self.Z, self.L, self.J, self.Y))
        else:
            self.Z, self.L, self.J, self.Y = self._rows()
        self.sparse, self.dense = True, False
        return self

    def _rows(self) -> tuple[sp.csr_matrix, ...]:
        """(Z, L, J, Y) as CSR from the rows of reverse sweeps (see :meth:`tosparse`)."""
        aug, exp = self._aug, self._exp
        z_slots, z_ents = exp.z_seeds(np.arange(self.s))
        slots, ents, rows = [z_slots], [z_ents], [np.arange(self.s)]
        for q, (o, v) in enumerate(aug.outs):
            if o is not None:  # a constant output has zero rows
                slots.append(np.full(v.size, o.index, np.int64))
                ents.append(np.arange(v.size, dtype=np.int64))
                rows.append(self.s + aug.p_off[q] + np.arange(v.size))
        row_of = np.concatenate(rows)
        mats, self.sweep_stats = reverse_rows(
            aug.eqns, exp.vals, np.concatenate(slots), np.concatenate(ents),
            aug.x_slots + aug.u_slots, _POLICY)
        nx, total = len(aug.x_slots), self.s + self.p

        def placed(parts: list, width: int) -> sp.csr_matrix:
            M = (sp.hstack(parts, format="coo") if parts
                 else sp.coo_matrix((row_of.size, width)))
            out = sp.csr_matrix((M.data, (row_of[M.row], M.col)), shape=(total, width))
            out.eliminate_zeros()
            return out

        X, U = placed(mats[:nx], self.n), placed(mats[nx:], self.s)
        return X[:self.s], U[:self.s], X[self.s:], U[self.s:]

    def augmented(self, x: Any, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z, y) = (F(x, u), f(x, u)): the augmented function, by plain evaluation. At
        u = |z(x)| it reproduces z(x) and f(x); Z, L, J, Y are its partial derivatives."""
        return self._aug.evaluate(self._spec.from_tree(x, "augmented"), np.asarray(u, float))

    def adjoint(self, WZ: np.ndarray, WY: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of (Z^T wz + J^T wy, L^T wz + Y^T wy) for the rows of WZ (r, s) and WY (r, p):
        one reverse sweep of the augmented program, however the matrices are held."""
        return self._aug.reverse(np.asarray(WZ, np.float64), np.asarray(WY, np.float64))

    def linearization(self, dx: Any) -> tuple[np.ndarray, np.ndarray]:
        """The piecewise-linear local model at x + dx: solves z = cz + Z dx + L|z| by forward
        substitution (L is strictly lower triangular), then y = cy + J dx + Y|z|. Exact for
        piecewise-linear programs near x; second-order accurate for abs-smooth ones."""
        self._need_dense("linearization")
        dx = self._spec.from_tree(dx, "linearization")
        if not np.all(np.isfinite(dx)):
            raise NonFiniteInputError("linearization: dx has NaN or infinite entries; the "
                                      "model is evaluated at finite steps only.")
        z = self.cz + self.Z @ dx
        for i in range(self.s):
            z[i] += self.L[i, :i] @ np.abs(z[:i])
        return z, self.cy + self.J @ dx + self.Y @ np.abs(z)

    def selection_gradient(self, sigma: Any) -> np.ndarray:
        """J + Y Sigma (I - L Sigma)^{-1} Z for Sigma = diag(sigma), by forward substitution.

        For a definite signature compatible with x (sigma_i = sign z_i where z_i != 0) this
        is the gradient of that piece's selection function; every limiting gradient at x is
        one of them. With sigma_i = c_i in [-1, 1] at the active switches it is what backward
        AD returns when abs'(0) = c_i. Shape (n,) for a scalar function, else (p, n).
        """
        sig = np.asarray(sigma, dtype=np.float64)
        if sig.shape != (self.s,):
            raise KinkgradError(f"selection_gradient: sigma must have shape ({self.s},).")
        if self.dense:
            M = np.eye(self.s) - self.L * sig[None, :]
            W = solve_triangular(M, self.Z, lower=True, unit_diagonal=True) if self.s \
                else np.zeros((0, self.n))
            G = self.J + (self.Y * sig[None, :]) @ W
        else:
            G = self._selection_sweep(sig)
        return G[0] if self.p == 1 else G

    def _selection_sweep(self, sig: np.ndarray) -> np.ndarray:
        """Matrix-free: backward mode through the abs-normal program with abs' = sigma."""
        exp, aug = self._exp, self._aug
        sels = {k: sig[exp.offsets[j]:exp.offsets[j + 1]].reshape(aug.shapes[j])
                for j, k in enumerate(exp.abs_eqns)}
        seeds: dict[int, np.ndarray] = {}
        eye = np.eye(self.p)
        for q, (o, v) in enumerate(aug.outs):
            if o is not None:
                c = eye[:, aug.p_off[q]:aug.p_off[q + 1]].reshape((self.p,) + v.shape)
                seeds[o.index] = seeds[o.index] + c if o.index in seeds else c
        ct = reverse_sweep(exp.eqns, exp.vals, seeds, _POLICY, selections=sels,
                           keep=set(aug.x_slots))
        return self._spec.join([None if ct.get(s) is None else
                                np.broadcast_to(ct[s], (self.p,) + sh)
                                for s, sh in zip(aug.x_slots, self._spec.shapes)], (self.p,))

    def _need_dense(self, what: str) -> None:
        if not self.dense:
            raise KinkgradError(f"AbsNormalForm.{what}: needs the dense matrices (s = {self.s}); "
                                "call .todense() first or use the LinearOperator attributes.")

    def __repr__(self) -> str:
        kind = "dense" if self.dense else "sparse" if self.sparse else "operators"
        return (f"<AbsNormalForm n={self.n} s={self.s} p={self.p} active="
                f"{int(self.active.sum())} ({kind})>")


@on_numpy
@underflow_is_not_an_error
def abs_normal_form(f: Callable, x: Any, dense: bool | None = None) -> AbsNormalForm:
    """The abs-normal form of ``f`` at ``x``: z = cz + Z dx + L|z|, y = cy + J dx + Y|z|.

    ``f`` is traced at x, every nonsmooth primitive is replaced by its abs form (relu, leaky
    relu, maximum, minimum, clip, max/min over axes, sort, norms with ord 1 and inf, hinge
    written with relu), and the arguments of the resulting ``abs`` nodes are the switching
    variables (convention of Griewank and CppAD: J = dy/dx, Y = dy/d|z|; ADOL-C swaps them).

    Kink convention: none; the form describes every piece at once (``selection_gradient``
    evaluates one, or with fractional sigma what backward mode returns for abs'(0) = sigma).

    Args:
        f: function written with ``kinkgrad.numpy``; any output structure (raveled into y).
        x: the point (array or pytree; n = total size, flat order = leaves in pytree order).
        dense: materialise Z, L, J, Y (default: when s (n + s) <= 4e6); otherwise they are
            ``scipy.sparse.linalg.LinearOperator`` objects applied by forward/reverse sweeps.

    Returns:
        An :class:`AbsNormalForm`.

    Raises:
        NotAbsSmoothError: Euclidean norm at the zero vector whose input moves to first
            order (a norm of zero padding is its constant), or a ``where`` on a tied
            comparison (a possible jump): the program is not abs-smooth there.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> anf = kinkgrad.abs_normal_form(lambda x: knp.relu(x) - knp.relu(-x), np.zeros(1))
        >>> anf.z.tolist(), anf.Z.ravel().tolist(), anf.Y.ravel().tolist()
        ([0.0, 0.0], [1.0, -1.0], [0.5, -0.5])
    """
    if not isinstance(dense, (bool, type(None))):
        raise other_arguments("abs_normal_form", "dense", dense, "None, True or False")
    tr = trace_at(f, x, "abs_normal_form")
    spec = FlatSpec(tr)
    return AbsNormalForm(expand_flat_norms(tr), spec, dense)
