"""The abs-normal form reduced to the active switches: everything certify and subdifferential
need, from the rows of one reverse sweep with m + 1 seeds.

At x, fix every inactive switch at its sign. For the m active switches (z_i = 0) the local
piecewise-linear model of paper B's abs-normal form reduces to

    z' = A d + K |z'|,        f'(x; d) = g0 . d + bhat . |z'|,

where A = P_act (I - L Sigma_x)^{-1} Z is the *active switching Jacobian* (Sigma_x = sign(z),
zero at active entries), K (m x m, strictly lower triangular) couples an active switch to the
|.| of earlier ones, g0 is the gradient with abs'(0) := 0 at the active entries and bhat the
sensitivity of f to those |z_j|. For a definite signature sigma of the active switches
(Sigma = diag(sigma)) the piece's gradient (a *selection gradient*) is

    g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A,

by forward substitution with the unit lower triangular I - K Sigma, never an inverse; the rows
of W(sigma) = (I - K Sigma)^{-1} A are the switch derivatives on that piece (z' = W d).

All of A, K, g0 and bhat come from one reverse sweep over the abs-normal program with m + 1
cotangent seeds (the m active switches and the output), with abs'(0) = 0 at active entries:
the cotangent reaching x gives A and g0, the cotangent reaching an active |z_j| gives K and
bhat. At most the cost of m + 1 gradients, whatever the number of inactive switches; rows
with disjoint supports (a chained function's switches, a tournament's level) share one
sweep, their supports measured by NaN propagation (:mod:`kinkgrad.modes.sparse_rows`), so
that a sparse model costs a few dozen gradients whatever m. A and K are held as CSR
matrices (memory linear in their nonzeros) and the dense views are formed only when read.
Active switches that a cheap forward pass of masks proves inert (:mod:`.inert`: zero row on
every piece, e.g. max-pool windows tied among dead ReLUs) get no seed: their rows and columns
stay zero, which :meth:`ActiveModel.relevant` drops exactly as it would drop the computed ones.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve_triangular

from .._core.program import Var
from ..kinks import KinkPolicy
from ..modes.sparse_rows import RowStats, plain_rows, reverse_rows
from ._flat import FlatSpec
from .expand import EqnMeta, Expanded
from .inert import inert_switches

__all__ = ["ActiveModel", "moved_selections", "policy_choice"]

_REVERSE_SIGMA_X = KinkPolicy(abs=0.0)
_PRUNE = True  # set inert switches aside before the sweep (inert.py); False: full sweep


class ActiveModel:
    """The active-switch model (A, K, g0, bhat) of a scalar program at x.

    A and K are stored sparse (CSR, built chunk by chunk from the batched reverse sweep: a
    batch's switch rows touch few parameters); the dense views are formed on first read.

    Attributes:
        exp: the abs-normal program.
        spec: flat layout of x.
        active: global indices (into z_1..z_s) of the active switches, in program order.
        A: (m, n) active switching Jacobian (dense; ``A_sparse``: the same as CSR).
        K: (m, m) strictly lower triangular coupling (dense; ``K_sparse``: CSR).
        g0: (n,) gradient with abs'(0) = 0 at the active switches.
        bhat: (m,) sensitivity of f to the |z_j| of the active switches.
        inert: (m,) mask of the active switches found inert before the sweep (their rows
            and columns are left zero: exact, see :mod:`.inert`).
        rows: number of cotangent seeds of the reverse sweep (m + 1 - number inert).

    ``progress`` (keyword only): a tqdm bar over the sweep's rows on runs longer than a
    second (True), only when stderr is a terminal ("auto"), or none (False).
    """

    zero_norms: Any = None  # Euclidean norms at 0 set aside (zero_norms.Balls), if asked
    # at a radius (ball_model.wide_ball): switches the ball treats otherwise in a wider replay
    # of f's values, and switches a nested reach adds (ball_model.nested_reason)
    ball_differs: int = 0
    nested_missed: int = 0

    def __init__(self, exp: Expanded, spec: FlatSpec, out: Var | None,
                 prune: bool | None = None, active: np.ndarray | None = None, *,
                 progress: bool | str = False) -> None:
        self.exp = exp
        self.spec = spec
        z = exp.z()
        exact = z == 0
        # NOTE: ``active`` (a mask over all s switches, containing every exact zero) treats
        # the extra switches as if they sat at their kink: abs' := 0 there in the sweep, so
        # the model is the one at the point where those switches are moved to 0 (used by the
        # stationarity test at a radius). Structural pruning assumes exact zeros: off then.
        mask = exact if active is None else (np.asarray(active, bool) | exact)
        self.active = np.flatnonzero(mask)
        self._moved = self._selections(mask & ~exact)
        if self._moved:
            prune = False
        m, n = self.active.size, spec.n
        self.m = m
        self.dropped = 0
        self._cache: dict[str, Any] = {}
        # NOTE: inert switches (inert.py: zero row on every piece, found structurally) get
        # no seed; their rows and columns are zero, which leaves relevant()/reduced() exact.
        # Only the live rows are stored (A would be m x n and mostly zero on a CNN batch).
        prune = _PRUNE if prune is None else prune
        self.inert = (inert_switches(exp)[self.active] if prune and m
                      else np.zeros(m, bool))
        self.live = np.flatnonzero(~self.inert)
        size = self.live.size
        self._bhat, self.g0 = np.zeros(size), np.zeros(n)
        self.rows = size + 1
        out_var = None
        if out is not None:
            out_var = exp.traced.outs[0] if type(exp.traced.outs[0]) is Var else None
        js, _ = exp.locate_many(self.active[self.live])
        slots, ents = exp.z_seeds(self.active[self.live])
        cols_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in np.unique(js):  # each abs equation has its own output (u) slot
            cols = np.flatnonzero(js == j)
            cols_of[exp.u_slot(int(j))] = (ents[cols], cols)
        if out_var is not None:  # the output's seed is the last row
            slots, ents = np.append(slots, out_var.index), np.append(ents, 0)
        x_slots = [v.index for v in exp.traced.in_vars]
        if size == 0:  # no live active switch (most training batches): g0 alone, dense
            self._As, self._Ks = sp.csr_matrix((0, n)), sp.csr_matrix((0, 0))
            self.sweep_stats = RowStats(rows=slots.size, plain_rows=slots.size)
            if slots.size:
                parts = plain_rows(exp.eqns, exp.vals, slots, ents, x_slots,
                                   _REVERSE_SIGMA_X, self._moved or None)
                self.g0 = np.concatenate([C[0] for C in parts]) if parts else self.g0
            return
        bar = _bar(slots.size, progress)
        mats, self.sweep_stats = reverse_rows(
            exp.eqns, exp.vals, slots, ents, x_slots + list(cols_of), _REVERSE_SIGMA_X,
            selections=self._moved or None, on_rows=None if bar is None else bar.update,
            columns=[None] * len(x_slots) + [e for e, _ in cols_of.values()])
        if bar is not None:
            bar.close()
        # NOTE: inputs may be traced in another slot order than x's leaves; the expanded
        # program's input slots follow the leaves one to one
        nx = len(x_slots)
        X = sp.hstack(mats[:nx], format="csr") if nx else sp.csr_matrix((slots.size, n))
        self._As = _pruned(X[:size], (size, n))
        if size < slots.size:
            self.g0 = X[size].toarray().reshape(-1)
        trip: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for M, (_, cols) in zip(mats[nx:], cols_of.values()):
            U = M.tocoo()  # the live switches' |z| entries of this abs equation
            on = U.row < size
            trip.append((U.row[on], cols[U.col[on]], U.data[on]))
            if size < slots.size:
                self._bhat[cols] = M[size].toarray().reshape(-1)
        rows, cols, data = (np.concatenate(t) for t in zip(*trip)) if trip else \
            (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        self._Ks = _pruned(sp.csr_matrix((data, (rows, cols)), shape=(size, size)),
                           (size, size))

    def _selections(self, moved: np.ndarray) -> dict[int, np.ndarray]:
        return moved_selections(self.exp, moved)

    # ------------------------------------------------------------------ full-size views
    def _spad(self, M: sp.csr_matrix, axes: int) -> sp.csr_matrix:
        if self.live.size == self.m:
            return M
        C = M.tocoo()
        col = self.live[C.col] if axes == 2 else C.col
        shape = (self.m, self.m if axes == 2 else M.shape[1])
        return sp.csr_matrix((C.data, (self.live[C.row], col)), shape=shape)

    def _dense(self, key: str, make: Any) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def A_sparse(self) -> sp.csr_matrix:
        """(m, n) active switching Jacobian as CSR (zero rows at inert switches)."""
        return self._spad(self._As, 1)

    @property
    def K_sparse(self) -> sp.csr_matrix:
        """(m, m) strictly lower triangular coupling as CSR (zero at inert switches)."""
        return self._spad(self._Ks, 2)

    @property
    def A(self) -> np.ndarray:
        """(m, n) active switching Jacobian (zero rows at inert switches; dense, formed on
        first read: m x n floats)."""
        return self._dense("A", lambda: self.A_sparse.toarray())

    @property
    def K(self) -> np.ndarray:
        """(m, m) strictly lower triangular coupling (zero at inert switches; dense)."""
        return self._dense("K", lambda: self.K_sparse.toarray())

    @property
    def bhat(self) -> np.ndarray:
        """(m,) sensitivity of f to the |z_j| (zero at inert switches)."""
        if self.live.size == self.m:
            return self._bhat
        full = np.zeros(self.m)
        full[self.live] = self._bhat
        return full

    # ------------------------------------------------------------------ selection gradients
    def _unit_lower(self, sigma: np.ndarray) -> sp.csr_matrix:
        """I - K Sigma (CSR, unit lower triangular)."""
        s = np.asarray(sigma, dtype=np.float64)
        return (sp.identity(self.m, format="csr") - self.K_sparse @ sp.diags(s)).tocsr()

    def W(self, sigma: np.ndarray) -> np.ndarray:
        """Rows z_i' of the active switches on the piece of signature ``sigma``: solves
        (I - K Sigma) W = A by sparse forward substitution (entries of sigma may be
        fractional). Dense (m, n) result."""
        if self.m == 0 or self._Ks.nnz == 0:
            return self.A_sparse.toarray()
        return spsolve_triangular(self._unit_lower(sigma), self.A_sparse.toarray(),
                                  lower=True, unit_diagonal=True)

    def gradient(self, sigma: np.ndarray) -> np.ndarray:
        """g0 + bhat Sigma (I - K Sigma)^{-1} A: the selection gradient for a definite
        sigma; for sigma_i = c_i in [-1, 1] the vector backward AD returns with abs'(0) = c_i,
        a product-measure average of selection gradients (paper B, working mathematics)."""
        if self.m == 0:
            return self.g0.copy()
        w = np.asarray(sigma, dtype=np.float64) * self.bhat
        if self._Ks.nnz:
            w = spsolve_triangular(self._unit_lower(sigma).T.tocsr(), w, lower=False,
                                   unit_diagonal=True)
        return self.g0 + self.A_sparse.T @ w

    # ------------------------------------------------------------------ irrelevant switches
    def relevant(self) -> np.ndarray:
        """Mask of the active switches whose sign can change some selection gradient.

        A switch is dropped when its derivative row is zero on every piece (A_j = 0 and it
        depends only on such switches: z_j' = 0 identically) or when no path leads from |z_j|
        to f (bhat_j = 0 and no relevant later switch depends on it). Neither kind appears in
        g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A, and neither constrains the others.
        Inert switches (zero rows and columns, :mod:`.inert`) are of the first kind."""
        keep = np.zeros(self.m, bool)
        keep[self.live] = _relevant(self._As, self._Ks, self._bhat)
        return keep

    def reduced(self) -> ActiveModel:
        """The same model restricted to :meth:`relevant` switches (exact, see there)."""
        keep = _relevant(self._As, self._Ks, self._bhat)
        if self.live.size == self.m and keep.all():
            return self
        new = object.__new__(ActiveModel)
        new.__dict__.update(self.__dict__)
        idx = self.live[keep]
        new.active, new.m = self.active[idx], int(idx.size)
        new.live, new.inert = np.arange(new.m), np.zeros(new.m, bool)
        new._As, new._Ks = self._As[keep], self._Ks[keep][:, keep]
        new._bhat = self._bhat[keep]
        new.dropped = self.m - new.m
        new._cache = {}
        return new

    def metas(self) -> list[EqnMeta]:
        js, _ = self.exp.locate_many(self.active)
        by_eqn = {int(j): self.exp.switch_meta(int(j)) for j in np.unique(js)}
        return [by_eqn[int(j)] for j in js]

    def names(self, idx: Any = None) -> list[str]:
        idx = range(self.m) if idx is None else idx
        return [self.exp.name(int(self.active[k])) for k in idx]


def moved_selections(exp: Expanded, moved: np.ndarray) -> dict[int, np.ndarray]:
    """abs' of every ``abs`` equation holding a moved switch (``moved``: a mask over the s
    switches): sign(z), 0 where moved (the sweep's selections at the point where those
    switches sit on their kinks)."""
    sels: dict[int, np.ndarray] = {}
    for j, k in enumerate(exp.abs_eqns):
        lo, hi = exp.offsets[j], exp.offsets[j + 1]
        if moved[lo:hi].any():
            zj = np.asarray(exp.vals[exp.z_slot(j)])
            sel = np.sign(zj).astype(np.float64).reshape(-1)
            sel[moved[lo:hi]] = 0.0
            sels[k] = sel.reshape(np.shape(zj))
    return sels


def _bar(total: int, progress: bool | str) -> Any:
    """A tqdm bar on stderr that shows only after a second; "auto" hides it when stderr is
    not a terminal (no escape codes in logs). None without tqdm (a dev dependency)."""
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dev dependency
        return None
    return tqdm(total=total, desc="certify: reverse sweep", unit="row", file=sys.stderr,
                delay=1.0, leave=False, disable=None if progress == "auto" else False)


def _pruned(M: sp.csr_matrix, shape: tuple[int, int]) -> sp.csr_matrix:
    """M as float64 CSR of ``shape`` without explicit zeros."""
    M = sp.csr_matrix(M, shape=shape, dtype=np.float64)
    M.eliminate_zeros()
    return M


def _relevant(A: sp.csr_matrix, K: sp.csr_matrix, bhat: np.ndarray) -> np.ndarray:
    """Not dead (A_j != 0, or K_j nonzero on a column that is not dead) and reaching f
    (bhat_j != 0, or some later reaching switch depends on it), as in the program-order
    loops of the definition. A and K are CSR without explicit zeros; K strictly lower."""
    alive = _closure(K, np.diff(A.indptr) > 0)
    reach = _closure(K.T.tocsr(), bhat != 0)
    return alive & reach


_RELAX = 64  # sparse products before a closure falls back to a loop over rows


def _closure(M: sp.csr_matrix, seed: np.ndarray) -> np.ndarray:
    """v_j = seed_j or v_k for some k with M_jk != 0: the least solution, by relaxation
    (one sparse product per step, as many steps as the longest chain of M) and, for a chain
    longer than ``_RELAX``, a loop over rows in the order M's triangle gives."""
    B = M.astype(bool).astype(np.int32)
    v = seed.copy()
    for _ in range(_RELAX):
        new = seed | (B @ v.astype(np.int32) > 0)
        if np.array_equal(new, v):
            return v
        v = new
    ptr, ind = M.indptr, M.indices
    lower = bool(np.all(ind < np.repeat(np.arange(M.shape[0]), np.diff(ptr))))
    order = np.flatnonzero(np.diff(ptr) > 0)
    for j in order if lower else order[::-1]:  # the rows read come first
        v[j] = v[j] or bool(np.any(v[ind[ptr[j]:ptr[j + 1]]]))
    return v


def policy_choice(meta: EqnMeta, policy: KinkPolicy) -> float | None:
    """The abs'(0) value c in [-1, 1] that reproduces the policy's choice at a switch created
    by ``meta.producer``'s abs form (None when the producer is unknown).

    relu = (t + |t|)/2 gives relu'(0) = (1 + c)/2, so c = 2 s - 1 (s = policy.relu; the
    default s = 0 is the vertex c = -1); max(a, b) = (a + b + |a - b|)/2 with first-operand
    weight w (:meth:`_MaxMin.tie_weight`) is c = 2 w - 1 ("first" c = +1, "split" c = 0),
    minimum(a, b) is c = 1 - 2 w; the reductions max/min with "first" are c = +1/-1; a sorting
    comparator keeps a stable order with c = -1; clip's lower bound is c = 2 s - 1, its upper
    bound c = 1 - 2 s (s = policy.clip_slope()); the norm with ord inf is |x| (c = policy.abs)
    followed by a max tournament.
    """
    name = meta.producer
    if name == "norm" and meta.params.get("ord") != 1 and meta.ordinal > 0:
        name = "max"  # the tournament over |x| of norm(ord=inf)
    if name in ("abs", "norm"):
        return float(policy.abs)
    if name in ("relu", "leaky_relu"):
        return 2.0 * float(getattr(policy, name)) - 1.0
    if name in ("maximum", "minimum"):
        from ..primitives.piecewise import Maximum

        w = Maximum.instance.tie_weight(policy, meta.params)  # type: ignore[attr-defined]
        return 2.0 * w - 1.0 if name == "maximum" else 1.0 - 2.0 * w
    if name in ("max", "max_pool2d"):
        return 1.0 if policy.max == "first" else 0.0
    if name == "min":
        return -1.0 if policy.max == "first" else 0.0
    if name == "sort":
        return -1.0 if policy.sort == "first" else 0.0
    if name == "clip":
        lower = meta.ordinal == 0 and meta.params.get("lo") is not None
        s = policy.clip_slope()
        return 2.0 * s - 1.0 if lower else 1.0 - 2.0 * s
    return None
