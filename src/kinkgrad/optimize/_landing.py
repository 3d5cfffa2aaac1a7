"""An end point moved onto the coordinate kinks it lies within the verdict's radius of.

A method driven by gradients (the bundle method, gradient sampling) ends near its kinks, not
on them: a lasso's zero coefficients come out ~1e-11, within the radius at which the point
is certified but not 0. :func:`land_end_point` moves such coordinates onto their kinks
exactly (:meth:`AbsLinearModel.land_on_coordinate_kinks`, kinks z_i = x_j - c of one
coordinate) and keeps the moved point when f does not grow beyond rounding and
:func:`kinkgrad.stationarity` certifies it at the same radius and tolerance. Moving those
coordinates also moves the smooth part's gradient on the others (X^T X times a step of
~1e-8 on 918 coordinates of a lasso at n = 1000: the moved point was "not stationary"), so
where the moved point is not certified, at most five abs-linear finishing steps from it
(:func:`._stall_finish.abs_linear_finish`, whose steps keep the kinks they reach)
re-optimise the other coordinates, and their end point is kept on the same terms.
Otherwise the method's own end point is returned, with its verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._abs_linear_model import model_at
from .common import CONVERGED, MethodResult
from .oracle import BudgetExhausted, Oracle

if TYPE_CHECKING:
    from ..abs_normal.stationarity import StationarityReport

__all__ = ["land_end_point"]

_STEPS = 5  # abs-linear finishing steps from the moved point, at most


def land_end_point(oracle: Oracle, out: MethodResult, radius: float, tol: float
                   ) -> tuple[MethodResult, StationarityReport]:
    """(end point, its verdict at ``radius``): the method's, or the one moved onto its
    coordinate kinks (module docstring). Only certified (CONVERGED) ends are moved; the
    forms and tests this takes are counted, the final verdict is not."""
    from ._stall_finish import abs_linear_finish as finish

    def verdict(x: np.ndarray) -> StationarityReport:
        return oracle.stationarity(x, radius, tol, counted=False)

    def moved(result: MethodResult, rep: StationarityReport
              ) -> tuple[MethodResult, StationarityReport]:
        try:  # the test at the method's point was a search step, not the final verdict
            oracle.charge(first)
        except BudgetExhausted:
            pass
        return result, rep

    first = verdict(out.x)  # NOTE: a kink within the radius is an active switch there, so
    #                         without any the form (n + s gradients) is not built
    if out.status != CONVERGED or radius <= 0.0 or first.num_active == 0:
        return out, first
    allowance = oracle.allowance(out.fun)
    try:
        model, _ = model_at(oracle, out.x, 3e7)
        if model is None or not model.s:
            return out, first
        x = out.x + model.land_on_coordinate_kinks(np.zeros_like(out.x), within=radius)
        if np.array_equal(x, out.x):
            return out, first
        fx = oracle.value(x)
        if not fx <= out.fun + allowance:
            return out, first
        rep = verdict(x)
        if rep.verdict == "stationary":
            return moved(MethodResult(x, fx, out.nit, out.status, out.message, out.radius), rep)
        distance = oracle.merit(radius, tol)  # the finishing steps' merit, as the bundle's
        distance.record(x, rep)
        fin = finish(oracle, x, fx, tol=tol, monitor=lambda z, f, k: distance(z) == 0.0,
                     maxiter=_STEPS, merit=distance)  # the first certified point ends them
    except BudgetExhausted:
        return out, first
    if fin.nit and fin.fun <= out.fun + allowance:
        rep = verdict(fin.x)
        if rep.verdict == "stationary":
            return moved(MethodResult(fin.x, fin.fun, out.nit + fin.nit, out.status,
                                      f"{out.message} Then moved onto the coordinate kinks "
                                      f"within the radius and {fin.nit} abs-linear step(s).",
                                      out.radius), rep)
    return out, first
