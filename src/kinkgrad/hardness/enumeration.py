"""Exact enumeration of the limiting (Bouligand) gradients at 0 of a linear ReLU network.

For ``F(x) = M_L relu(... relu(M_1 x))`` an activation pattern ``(D_1, ..., D_{L-1})`` fixes, layer
by layer, the preactivations as linear functions of ``x``: ``z_1 = A_1 x`` with ``A_1 = M_1`` and
``A_{i+1} = M_{i+1} D_i A_i``. The pattern is *realised on an open cone* iff there is ``x`` with
``s_j (A_i x)_j > 0`` for every neuron ``j`` whose row ``(A_i)_j`` is nonzero, where ``s_j = +1``
if ``D_i[j] = 1`` and ``-1`` otherwise (neurons with a zero row are identically 0 on the cone
and their choice does not change ``F``). By positive homogeneity, strict feasibility is the LP
feasibility of ``s_j (A_i x)_j >= 1``. On that cone ``F`` is linear with gradient ``A_L``
(a ``1 x n`` row). Every such cone has 0 in its closure, so the limiting gradients of ``F`` at 0
are exactly the gradients of the realised patterns, and the Clarke subdifferential at 0 is their
convex hull. All ``A_i`` are integer matrices, so gradients are exact and deduplicated exactly.

The search is a depth-first search over neurons with pruning:

* a neuron whose row is a positive or negative multiple of an already constrained row has a
  forced sign (no LP);
* the current cone's interior point ``x`` (from the last LP) decides one branch for free, so only
  the opposite branch needs an LP (HiGHS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..abs_normal.lp import proven_infeasible, solve_lp
from .network import LinearReLUNetwork

__all__ = ["LimitingGradients", "limiting_gradients_at_zero"]

_INT_GUARD = 2**50


@dataclass
class LimitingGradients:
    """Result of :func:`limiting_gradients_at_zero`.

    Attributes:
        gradients: ``(k, n)`` int64 array of the distinct limiting gradients found.
        points: ``(k, n)`` float array; ``points[i]`` lies in an open cone where ``grad F``
            equals ``gradients[i]``.
        complete: True iff the search was exhaustive (then ``gradients`` is the full set).
        reason: ``"exhausted"``, ``"limit"`` (LP budget reached) or ``"stop_after"``.
        n_lps: Number of LPs solved.
        n_patterns: Number of realised full activation patterns visited.
        n_forced: Number of neuron signs decided without an LP or a witness test.
    """

    gradients: np.ndarray
    points: np.ndarray
    complete: bool
    reason: str
    n_lps: int = 0
    n_patterns: int = 0
    n_forced: int = 0
    stats: dict[str, int] = field(default_factory=dict)


@dataclass
class _State:
    layer: int
    j: int
    A: np.ndarray
    d: np.ndarray
    cons: list[np.ndarray]
    keys: dict[bytes, int]
    x: np.ndarray

    def branch(self) -> _State:
        return _State(
            self.layer, self.j, self.A, self.d.copy(), list(self.cons), dict(self.keys), self.x
        )

    def fix(self, row: np.ndarray, key: bytes, sgn: int, s: int) -> None:
        self.d[self.j] = 1 if s > 0 else 0
        self.cons.append(s * row)
        self.keys[key] = s * sgn
        self.j += 1


def _normalise(row: np.ndarray) -> tuple[bytes, int]:
    """Return (key, sgn) with ``row = sgn * c * key_row``, ``c > 0``, ``key_row`` primitive."""
    nz = row[row != 0]
    g = math.gcd(*(int(v) for v in np.abs(nz)))
    sgn = 1 if nz[0] > 0 else -1
    return (row // (sgn * g)).tobytes(), sgn


def _feasible(cons: list[np.ndarray], n: int) -> np.ndarray | None:
    """Return ``x`` with ``c . x >= 1`` for every ``c`` in ``cons``, or None if infeasible
    (HiGHS directly, :func:`kinkgrad.abs_normal.lp.solve_lp`: through SciPy's ``linprog``
    the argument checks cost more than these small solves)."""
    k = len(cons)
    out = solve_lp(np.zeros(n), np.asarray(cons, dtype=np.float64), np.ones(k),
                   np.full(k, np.inf), np.full(n, -np.inf), np.full(n, np.inf))
    if out is not None:
        return out[0]
    if proven_infeasible():
        return None
    raise RuntimeError("HiGHS failed on a feasibility LP of the enumeration")


def limiting_gradients_at_zero(
    net: LinearReLUNetwork,
    limit: int | None = 100_000,
    stop_after: int | None = None,
    seed: int | None = 0,
) -> LimitingGradients:
    """Enumerate the distinct limiting gradients of ``F`` at 0 (exact, exponential worst case).

    Args:
        net: The network.
        limit: Maximum number of LPs; when reached the search stops with ``complete=False``.
        stop_after: Stop (``complete=False``, ``reason="stop_after"``) once this many distinct
            gradients are known; ``2`` decides "two Clarke subgradients" early.
        seed: Seed for the initial interior point (any point is interior when nothing is
            constrained yet).

    Returns:
        A :class:`LimitingGradients`.
    """
    mats = net.weights
    hidden = mats[:-1]
    n = net.n_inputs
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(n)
    width0 = hidden[0].shape[0] if hidden else 0
    stack = [_State(0, 0, mats[0], np.zeros(width0, dtype=np.int64), [], {}, x0)]
    found: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
    n_lps = n_patterns = n_forced = 0
    reason = "exhausted"

    def budget_left() -> bool:
        return limit is None or n_lps < limit

    while stack and reason == "exhausted":
        st = stack.pop()
        while True:
            if st.layer == len(hidden):
                n_patterns += 1
                g = st.A[0]
                found.setdefault(g.tobytes(), (g.copy(), st.x))
                if stop_after is not None and len(found) >= stop_after:
                    reason = "stop_after"
                break
            if st.j == hidden[st.layer].shape[0]:
                st.A = mats[st.layer + 1] @ (st.d[:, None] * st.A)
                if st.A.size and np.abs(st.A).max() > _INT_GUARD:
                    raise OverflowError("integer preactivation forms too large for int64")
                st.layer += 1
                st.j = 0
                nxt = hidden[st.layer].shape[0] if st.layer < len(hidden) else 0
                st.d = np.zeros(nxt, dtype=np.int64)
                continue
            row = st.A[st.j]
            if not row.any():
                st.j += 1  # identically zero on this cone: the choice is irrelevant
                continue
            key, sgn = _normalise(row)
            if key in st.keys:
                n_forced += 1
                st.fix(row, key, sgn, st.keys[key] * sgn)
                continue
            v = float(row @ st.x)
            tol = 1e-7 * (np.abs(row).sum() * (np.abs(st.x).max() + 1.0))
            if abs(v) > tol:
                s_free = 1 if v > 0 else -1
                candidates = [-s_free]
            else:
                s_free = 0
                candidates = [1, -1]
            feasible_branches: list[tuple[int, np.ndarray]] = []
            for s in candidates:
                if not budget_left():
                    reason = "limit"
                    break
                n_lps += 1
                y = _feasible([*st.cons, s * row], n)
                if y is not None:
                    feasible_branches.append((s, y))
            if reason == "limit":
                break
            for s, y in feasible_branches[1:] if s_free == 0 else feasible_branches:
                other = st.branch()
                other.x = y
                other.fix(row, key, sgn, s)
                stack.append(other)
            if s_free != 0:
                st.fix(row, key, sgn, s_free)
            elif feasible_branches:
                s, y = feasible_branches[0]
                st.x = y
                st.fix(row, key, sgn, s)
            else:  # pragma: no cover - the current cone is open, so one side is feasible
                raise RuntimeError("both sides of a hyperplane infeasible on an open cone")
    if not found:
        grads = np.zeros((0, n), dtype=np.int64)
        points = np.zeros((0, n))
    else:
        grads = np.array([g for g, _ in found.values()], dtype=np.int64).reshape(-1, n)
        points = np.array([p for _, p in found.values()], dtype=np.float64).reshape(-1, n)
    if reason == "stop_after" and not stack:
        reason = "exhausted"  # the last pending branch was the one that reached stop_after
    complete = reason == "exhausted"
    return LimitingGradients(
        gradients=grads,
        points=points,
        complete=complete,
        reason=reason,
        n_lps=n_lps,
        n_patterns=n_patterns,
        n_forced=n_forced,
        stats={"n_lps": n_lps, "n_patterns": n_patterns, "n_forced": n_forced},
    )
