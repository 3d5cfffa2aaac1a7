"""in_clarke's decisions beside the listing: Euclidean norms at zero (an SOCP distance) and
sort ties too large to list (their assignment oracles); the undecided errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import KinkgradError
from .active import ActiveModel
from .localset import BlockTooLarge, LocalSet, local_set
from .lp import hull_tolerance, in_sum_of_hulls
from .sort_oracle_min import by_oracles, realised, with_oracles
from .zero_norms import ball_bounds, switch_origins

__all__ = ["UndecidedError", "EnumerationLimitError", "with_balls", "by_oracles_membership",
           "in_inner_blocks"]


class UndecidedError(KinkgradError):
    """A set-valued question could not be decided soundly (e.g. ``in_clarke`` at a
    degenerate point of a curved program, where a piece realised only at higher order cannot
    be excluded). The message says what was proven.

    Fix: ask a question the certificate can answer (``kinkgrad.stationarity`` gives bounds),
    or move to a nearby point where LIKQ holds.
    """


class EnumerationLimitError(UndecidedError):
    """The enumeration of realised signatures reached its ``limit`` before an answer.

    Fix: pass a larger ``limit=`` (the work grows with the number of realised signatures,
    up to 2^m for m active kinks), or use :func:`kinkgrad.certify` / ``clarke_grad``, which
    do not enumerate.
    """


def _absmax(V: Any) -> float:
    return float(abs(V).max()) if V.shape[0] * V.shape[1] else 0.0


def with_balls(ls: LocalSet, full: ActiveModel, g: np.ndarray) -> bool:
    """in_clarke where Euclidean norms are at 0: the distance from g to the set of
    :mod:`.zero_norms` (an SOCP); False when its proven lower bound exceeds the LP path's
    tolerance (1e-7 relative), True when a proven element lies within it."""
    balls = full.zero_norms
    if balls.coupled(switch_origins(full.exp, full.active)):
        raise UndecidedError(f"in_clarke: undecided. {balls.q} Euclidean norm(s) at zero are "
                             "fed or read by active kinks or by each other "
                             "(kinkgrad.abs_normal.zero_norms).")
    M, _ = balls.terms()
    sizes = [float(np.max(np.abs(g), initial=0.0)), float(np.max(np.abs(ls.g0), initial=0.0)),
             float(np.max(np.abs(M.data), initial=0.0))]
    tol, tight = (hull_tolerance(sizes, 1, unit=u) for u in full.units)
    low, _, upper, _, why = ball_bounds(ls, balls, shift=g, tol=tight)
    if low is not None and low.lower > tol:
        return False
    if upper <= tight:
        return True
    raise UndecidedError(f"in_clarke: undecided. The distance from g to the set lies in "
                         f"[{0.0 if low is None else low.lower:.3e}, {upper:.3e}] ({why}).")


def by_oracles_membership(ls: Any, vec: np.ndarray, units: tuple[float, float]) -> bool | None:
    """Membership when a block is a sort tie too large to list (its assignment oracle,
    :mod:`.sort_oracle_min`): the distance from g to the set, bounded without trusting the
    QP, with the threshold of :func:`.lp.in_sum_of_hulls` (an l1 residual of 1e-7 scale n).
    None when there is no such block or the bounds straddle the threshold."""
    if not by_oracles(ls):
        return None
    n = vec.size
    sizes = [float(np.max(np.abs(vec), initial=0.0)), float(np.max(np.abs(ls.g0), initial=0.0)),
             max(_absmax(b.inner if b.oracle is not None else b.outer) for b in ls.blocks)]
    thr, tight = (hull_tolerance(sizes, n, unit=u) for u in units)
    mn = with_oracles(ls.g0 - vec, ls.blocks, tight / np.sqrt(max(n, 1)))
    if mn is None:
        return None
    if mn.lower - ls.slack > thr:  # every point of the set is farther (l1 >= 2-norm)
        return False
    if realised(ls) and mn.upper * np.sqrt(max(n, 1)) <= tight:  # (inf if fitted values)
        return True
    return None


def in_inner_blocks(model: ActiveModel, g: np.ndarray, unit: float) -> bool:
    """g in g0 + sum of the blocks' inner hulls, when that set is proven Clarke (one LP;
    within the tolerance under which "inside" holds: ``unit``, :func:`._flat.hull_units`;
    :func:`.certify`'s block condition)."""
    try:
        ls = local_set(model)
    except BlockTooLarge:  # not described: membership not proven
        return False
    g = np.asarray(g, np.float64)
    return ls.inner_exact and in_sum_of_hulls(g, ls.g0, ls.inner_blocks(), unit=unit)[0]
