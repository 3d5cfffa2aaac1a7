"""The stationarity test's distance as a merit of points (:meth:`.oracle.Oracle.merit`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..abs_normal.stationarity import StationarityReport

if TYPE_CHECKING:
    from .oracle import Oracle

__all__ = ["StationarityMerit"]


class StationarityMerit:
    """x -> 0 where :func:`kinkgrad.stationarity` at (radius, tol) certifies x, else its
    distance (inf where it has none or it is not finite); memoised by point."""

    def __init__(self, oracle: Oracle, radius: float, tol: float) -> None:
        self.oracle, self.radius, self.tol = oracle, radius, tol
        self._known: dict[bytes, float] = {}

    def record(self, x: np.ndarray, rep: StationarityReport) -> None:
        """Take a test already made at x (its verdict at the same radius and tol)."""
        d = 0.0 if rep.verdict == "stationary" else (
            float(rep.distance) if rep.distance is not None else np.inf)
        self._known[x.tobytes()] = d if np.isfinite(d) else np.inf

    def __call__(self, x: np.ndarray) -> float:
        if x.tobytes() not in self._known:
            self.record(x, self.oracle.stationarity(x, self.radius, self.tol))
        return self._known[x.tobytes()]
