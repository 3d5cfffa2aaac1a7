"""The abs-normal form reduced to the active switches: everything certify and subdifferential
need, from ONE batched reverse sweep.

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
bhat. The cost is that of m + 1 gradients, whatever the number of inactive switches.
Active switches that a cheap forward pass of masks proves inert (:mod:`.inert`: zero row on
every piece, e.g. max-pool windows tied among dead ReLUs) get no seed: their rows and columns
stay zero, which :meth:`ActiveModel.relevant` drops exactly as it would drop the computed ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from .._core.program import Var
from ..kinks import KinkPolicy
from ..modes.sweeps import reverse_sweep
from ._flat import FlatSpec
from .expand import EqnMeta, Expanded
from .inert import inert_switches

__all__ = ["ActiveModel", "policy_choice"]

_CHUNK = 1024  # rows per reverse sweep (memory bound only; the rows are independent)
_REVERSE_SIGMA_X = KinkPolicy(abs=0.0)
_PRUNE = True  # set inert switches aside before the sweep (inert.py); False: full sweep


class ActiveModel:
    """The active-switch model (A, K, g0, bhat) of a scalar program at x.

    Attributes:
        exp: the abs-normal program.
        spec: flat layout of x.
        active: global indices (into z_1..z_s) of the active switches, in program order.
        A: (m, n) active switching Jacobian.
        K: (m, m) strictly lower triangular coupling.
        g0: (n,) gradient with abs'(0) = 0 at the active switches.
        bhat: (m,) sensitivity of f to the |z_j| of the active switches.
        inert: (m,) mask of the active switches found inert before the sweep (their rows
            and columns are left zero: exact, see :mod:`.inert`).
        rows: number of cotangent seeds of the reverse sweep (m + 1 - number inert).
    """

    def __init__(self, exp: Expanded, spec: FlatSpec, out: Var | None,
                 prune: bool | None = None, active: np.ndarray | None = None) -> None:
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
        # NOTE: inert switches (inert.py: zero row on every piece, found structurally) get
        # no seed; their rows and columns are zero, which leaves relevant()/reduced() exact.
        # Only the live rows are stored (A would be m x n and mostly zero on a CNN batch).
        prune = _PRUNE if prune is None else prune
        self.inert = (inert_switches(exp)[self.active] if prune and m
                      else np.zeros(m, bool))
        self.live = np.flatnonzero(~self.inert)
        size = self.live.size
        self._A, self._K = np.zeros((size, n)), np.zeros((size, size))
        self._bhat, self.g0 = np.zeros(size), np.zeros(n)
        order = np.append(np.arange(size), -1)  # -1: the output's seed
        self.rows = int(order.size)
        out_var = None
        if out is not None:
            out_var = exp.traced.outs[0] if type(exp.traced.outs[0]) is Var else None
        locs = [exp.locate(int(i)) for i in self.active[self.live]]
        for lo in range(0, order.size, _CHUNK):
            self._sweep(order[lo: lo + _CHUNK], locs, out_var)

    # ------------------------------------------------------------------ the reverse sweep
    def _sweep(self, rows: np.ndarray, locs: list, out_var: Var | None) -> None:
        """One batched reverse sweep seeded at the live switches ``rows`` (positions in
        ``self.live``; -1: the output), reading the cotangents at x and at the live |z_j|."""
        exp = self.exp
        r = rows.size
        seeds: dict[int, np.ndarray] = {}

        def seed(slot: int, row: int, entry: int) -> None:
            shape = tuple(exp.traced.vals[slot].shape) if hasattr(
                exp.traced.vals[slot], "shape") else ()
            if slot not in seeds:
                seeds[slot] = np.zeros((r,) + shape)
            seeds[slot].reshape(r, -1)[row, entry] += 1.0

        for i, row in enumerate(rows):
            if row >= 0:
                j, e = locs[row]
                seed(exp.z_slot(j), i, e)
            elif out_var is not None:
                seed(out_var.index, i, 0)
        if not seeds:
            return
        u_slots = {exp.u_slot(j) for j, _ in locs}
        keep = set(self.spec.slots) | u_slots
        ct = reverse_sweep(exp.eqns, exp.vals, seeds, _REVERSE_SIGMA_X, keep=keep,
                           selections=self._moved or None)
        # NOTE: inputs may be traced in another slot order than x's leaves; use the expanded
        # program's input slots, which follow the leaves one to one.
        leaves = []
        for v, shape in zip(exp.traced.in_vars, self.spec.shapes):
            c = ct.get(v.index)
            leaves.append(None if c is None else np.broadcast_to(c, (r,) + shape))
        X = self.spec.join(leaves, (r,))
        U: dict[int, np.ndarray] = {}
        for slot in u_slots:
            c = ct.get(slot)
            if c is not None:
                U[slot] = np.asarray(c, dtype=np.float64).reshape(r, -1)
        cols = np.zeros((r, len(locs)))
        for col, (j, e) in enumerate(locs):
            c = U.get(exp.u_slot(j))
            if c is not None:
                cols[:, col] = c[:, e]
        sw = rows >= 0
        self._A[rows[sw]] = X[sw]
        self._K[rows[sw]] = cols[sw]
        if not sw[-1]:
            self.g0 = X[-1].copy()
            self._bhat = cols[-1].copy()

    def _selections(self, moved: np.ndarray) -> dict[int, np.ndarray]:
        """abs' of every ``abs`` equation holding a moved switch: sign(z), 0 where moved."""
        exp = self.exp
        sels: dict[int, np.ndarray] = {}
        for j, k in enumerate(exp.abs_eqns):
            lo, hi = exp.offsets[j], exp.offsets[j + 1]
            if moved[lo:hi].any():
                zj = np.asarray(exp.vals[exp.z_slot(j)])
                sel = np.sign(zj).astype(np.float64).reshape(-1)
                sel[moved[lo:hi]] = 0.0
                sels[k] = sel.reshape(np.shape(zj))
        return sels

    # ------------------------------------------------------------------ full-size views
    def _pad(self, M: np.ndarray, axes: int) -> np.ndarray:
        if self.live.size == self.m:
            return M
        full = np.zeros((self.m,) * axes + M.shape[axes:])
        full[np.ix_(*([self.live] * axes))] = M
        return full

    @property
    def A(self) -> np.ndarray:
        """(m, n) active switching Jacobian (zero rows at inert switches)."""
        return self._pad(self._A, 1)

    @property
    def K(self) -> np.ndarray:
        """(m, m) strictly lower triangular coupling (zero at inert switches)."""
        return self._pad(self._K, 2)

    @property
    def bhat(self) -> np.ndarray:
        """(m,) sensitivity of f to the |z_j| (zero at inert switches)."""
        return self._pad(self._bhat, 1)

    # ------------------------------------------------------------------ selection gradients
    def W(self, sigma: np.ndarray) -> np.ndarray:
        """Rows z_i' of the active switches on the piece of signature ``sigma``: solves
        (I - K Sigma) W = A by forward substitution (entries of sigma may be fractional)."""
        if self.m == 0:
            return self.A.copy()
        M = np.eye(self.m) - self.K * np.asarray(sigma, dtype=np.float64)[None, :]
        return solve_triangular(M, self.A, lower=True, unit_diagonal=True)

    def gradient(self, sigma: np.ndarray) -> np.ndarray:
        """g0 + bhat Sigma (I - K Sigma)^{-1} A: the selection gradient for a definite
        sigma; for sigma_i = c_i in [-1, 1] the vector backward AD returns with abs'(0) = c_i,
        a product-measure average of selection gradients (paper B, working mathematics)."""
        if self.m == 0:
            return self.g0.copy()
        M = np.eye(self.m) - self.K * np.asarray(sigma, dtype=np.float64)[None, :]
        w = solve_triangular(M, np.asarray(sigma) * self.bhat, lower=True, unit_diagonal=True,
                             trans="T")
        return self.g0 + w @ self.A

    # ------------------------------------------------------------------ irrelevant switches
    def relevant(self) -> np.ndarray:
        """Mask of the active switches whose sign can change some selection gradient.

        A switch is dropped when its derivative row is zero on every piece (A_j = 0 and it
        depends only on such switches: z_j' = 0 identically) or when no path leads from |z_j|
        to f (bhat_j = 0 and no relevant later switch depends on it). Neither kind appears in
        g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A, and neither constrains the others.
        Inert switches (zero rows and columns, :mod:`.inert`) are of the first kind."""
        keep = np.zeros(self.m, bool)
        keep[self.live] = _relevant(self._A, self._K, self._bhat)
        return keep

    def reduced(self) -> ActiveModel:
        """The same model restricted to :meth:`relevant` switches (exact, see there)."""
        keep = _relevant(self._A, self._K, self._bhat)
        if self.live.size == self.m and keep.all():
            return self
        new = object.__new__(ActiveModel)
        new.__dict__.update(self.__dict__)
        idx = self.live[keep]
        new.active, new.m = self.active[idx], int(idx.size)
        new.live, new.inert = np.arange(new.m), np.zeros(new.m, bool)
        new._A, new._K = self._A[keep], self._K[np.ix_(keep, keep)]
        new._bhat = self._bhat[keep]
        new.dropped = self.m - new.m
        return new

    def metas(self) -> list[EqnMeta]:
        return [self.exp.switch_meta(self.exp.locate(int(i))[0]) for i in self.active]

    def names(self, idx: Any = None) -> list[str]:
        idx = range(self.m) if idx is None else idx
        return [self.exp.name(int(self.active[k])) for k in idx]


def _relevant(A: np.ndarray, K: np.ndarray, bhat: np.ndarray) -> np.ndarray:
    """Not dead (A_j != 0, or K_j nonzero on a column that is not dead) and reaching f
    (bhat_j != 0, or some later reaching switch depends on it), as in the program-order
    loops of the definition, visiting only the rows and columns where K has entries."""
    m = A.shape[0]
    Knz = K != 0
    dead = ~np.any(A != 0, axis=1) if A.shape[1] else np.ones(m, bool)
    for j in np.flatnonzero(dead & Knz.any(axis=1)):
        dead[j] = not np.any(Knz[j, :j] & ~dead[:j])
    reach = bhat != 0
    for j in np.flatnonzero(Knz.any(axis=0))[::-1]:
        reach[j] = reach[j] or bool(np.any(Knz[j + 1:, j] & reach[j + 1:]))
    return ~dead & reach


def policy_choice(meta: EqnMeta, policy: KinkPolicy) -> float | None:
    """The abs'(0) value c in [-1, 1] that reproduces the policy's choice at a switch created
    by ``meta.producer``'s abs form (None when the producer is unknown).

    relu = (t + |t|)/2 gives relu'(0) = (1 + c)/2, so c = 2 s - 1 (s = policy.relu; the
    default s = 0 is the vertex c = -1); max(a, b) = (a + b + |a - b|)/2 with "first" is c = +1
    and "split" c = 0; min with "first" is c = -1; a sorting comparator keeps a stable order
    with c = -1; clip's lower bound is c = 2 s - 1, its upper bound c = 1 - 2 s; the norm
    with ord inf is |x| (c = policy.abs) followed by a max tournament.
    """
    name = meta.producer
    if name == "norm" and meta.params.get("ord") != 1 and meta.ordinal > 0:
        name = "max"  # the tournament over |x| of norm(ord=inf)
    if name in ("abs", "norm"):
        return float(policy.abs)
    if name in ("relu", "leaky_relu"):
        return 2.0 * float(getattr(policy, name)) - 1.0
    if name in ("maximum", "max"):
        return 1.0 if policy.max == "first" else 0.0
    if name in ("minimum", "min"):
        return -1.0 if policy.max == "first" else 0.0
    if name == "sort":
        return -1.0 if policy.sort == "first" else 0.0
    if name == "clip":
        lower = meta.ordinal == 0 and meta.params.get("lo") is not None
        s = float(policy.clip)
        return 2.0 * s - 1.0 if lower else 1.0 - 2.0 * s
    return None
