"""The set at a radius > 0 where near-active switches sit off their kinks: the moved
model's bounds (:mod:`.stationarity`'s ``_moved_bounds``) checked against the ball's own
first-order pieces (:mod:`.ball_pieces`; the module docstring of :mod:`.stationarity` says
what each proves)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .ball_pieces import ball_inner, ball_pieces, meet_in_ball, own_gradient
from .localset import LocalSet
from .minnorm import min_norm

__all__ = ["on_the_ball"]

_ENUM_BALL = 20  # at most this many switches: the ball's pieces enumerated
_MEET_NNZ = 100_000  # "not stationary" models of at most this many entries: meeting tested


def on_the_ball(ls: LocalSet, moved_set: tuple, moved: int, radius: float, tol: float,
                rng: np.random.Generator, why: Callable) -> tuple:
    """(outer MinNorm or None, a proven point, its norm, exact, the reason or None) of the
    ball's set from the moved model's ``moved_set`` = (outer MinNorm, point, norm, exact);
    ``moved`` switches off their kinks; ``why(ls, outer, exact)`` words a local set."""
    low, point, upper, exact = moved_set
    model = ls.model
    if low is not None and min(low.lower, upper) > tol:  # NOTE: the outer set holds the
        # ball's; the moved model's inner element is in it where the moved kinks meet within
        # the ball (LSQR, for models of at most _MEET_NNZ entries), else x's own gradient is
        if model.A_sparse.nnz <= _MEET_NNZ and meet_in_ball(model, radius, dense=False) \
                is not None:
            return low, point, upper, exact, None
        g, off = own_gradient(model)
        return low, point, float(np.linalg.norm(g)) if off else np.inf, False, None
    # NOTE: the moved model's pieces need not be met by the ball (ball_pieces' docstring):
    # the moved model where its kinks meet within the ball (LSQR), pieces at checked points of
    # the ball, the meeting point again by an SVD, then the ball's pieces enumerated
    head = f"{why(ls, None, False).split(';')[0]}, {moved} of them near-active off their kinks"
    if upper <= tol and meet_in_ball(model, radius, dense=False) is not None:
        return low, point, upper, exact, None  # NOTE: the model is that of a point of the ball
    p2, u2, k = ball_inner(model, radius, tol, point, rng)
    if u2 <= tol:
        return low, p2, u2, False, (f"{head}: an element of the hull of f's first-order pieces "
                                    f"at {k} checked points of the ball")
    if upper <= tol and meet_in_ball(model, radius) is not None:
        return low, point, upper, exact, None
    if model.m <= _ENUM_BALL and not ls.slack:
        bp = ball_pieces(model, radius)
        if bp is not None and bp.outer.shape[0]:
            zero = np.zeros(ls.g0.size)
            low = min_norm(zero, [bp.outer], tol)
            inner = min_norm(zero, [bp.inner], tol) if bp.inner.shape[0] else None
            point, upper = (inner.point, inner.upper) if inner is not None else (zero, np.inf)
            reason = (f"{head}: the {bp.outer.shape[0]} piece(s) of the ball's first-order "
                      f"model with their offsets kept, {bp.inner.shape[0]} with a checked point "
                      "of the ball" + (" (all: the set is described exactly)" if bp.complete
                                       else ""))
            return low, point, upper, bp.complete and low is not None, reason
    return low, p2, u2, False, (f"{why(ls, low, exact)}; {moved} near-active switch(es) off "
                                "their kinks, which cannot meet within the ball (first order): "
                                "the proven elements are f's first-order pieces at "
                                f"{k} checked points of the ball")
