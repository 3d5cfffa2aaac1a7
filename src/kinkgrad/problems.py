"""The ten large-scale nonsmooth test problems of Haarala, Miettinen and Mäkelä, and Karmitsa.

``get(name, n)`` returns a :class:`Problem`: the objective ``f`` (written with
``kinkgrad.numpy``, so every kinkgrad transformation traces it; vectorised, no loop over i),
the starting point ``x0``, the optimal value ``f_star``, a minimiser ``x_star`` where one is
known in closed form, and the convexity flag. Below, indices are 1-based, a = (x_1..x_{n-1}),
b = (x_2..x_n), and every chained sum runs over i = 1..n-1 (a_i = x_i, b_i = x_{i+1}).

=====================  =========================================================  ========
name (convexity)       f(x); x0                                                   f*
=====================  =========================================================  ========
maxq (convex)          max_i x_i^2; x_i = i (i <= floor(n/2)), -i otherwise        0
mxhilb (convex)        max_i |sum_j x_j / (i + j - 1)|; x_i = 1                    0
chained-lq (convex)    sum max{-a_i - b_i, -a_i - b_i + (a_i^2 + b_i^2 - 1)};      -(n-1)√2
                       x_i = -0.5
chained-cb3-1 (convex) sum max{a_i^4 + b_i^2, (2-a_i)^2 + (2-b_i)^2,               2(n-1)
                       2 exp(-a_i + b_i)}; x_i = 2
chained-cb3-2 (convex) max{sum(a_i^4 + b_i^2), sum((2-a_i)^2 + (2-b_i)^2),          2(n-1)
                       sum 2 exp(-a_i + b_i)}; x_i = 2
active-faces           max{g(-sum_i x_i), max_i g(x_i)}, g(y) = ln(|y| + 1);        0
                       x_i = 1
brown2                 sum (|a_i|^(b_i^2 + 1) + |b_i|^(a_i^2 + 1));                 0
                       x_i = -1 (i odd), 1 (i even)
chained-mifflin2       sum (-a_i + 2 (a_i^2 + b_i^2 - 1) + 1.75 |a_i^2 + b_i^2 - 1|);   see below
(convex, see below)    x_i = -1
chained-crescent-1     max{sum(a_i^2 + (b_i-1)^2 + b_i - 1),                        0
                       sum(-a_i^2 - (b_i-1)^2 + b_i + 1)}; x_i = -1.5 (i odd), 2 (even)
chained-crescent-2     sum max{a_i^2 + (b_i-1)^2 + b_i - 1,                         0
                       -a_i^2 - (b_i-1)^2 + b_i + 1}; x0 as chained-crescent-1
=====================  =========================================================  ========

Minimisers: x* = 0 (maxq, mxhilb, active-faces, brown2, both crescents: t1 = a^2 + b^2 - b
and t2 = 3b - a^2 - b^2, summed or not, are never both negative (3b < a^2 + b^2 < b is
impossible) and both vanish at 0),
x* = 1 (both CB3), x*_i = 1/√2 (chained LQ: in floating point no kink is exactly active
there). Chained Mifflin 2 has no closed-form minimiser; its f* is published only for
n = 50, 200, 1000 (-34.795, -140.86, -706.55, rounded, from Karmitsa's report), elsewhere None.

References:
    M. Haarala, K. Miettinen, M. M. Mäkelä, "New limited memory bundle method for large-scale
    nonsmooth optimization", Optim. Methods Softw. 19(6) (2004) 673-692.
    N. Karmitsa, "Test problems for large-scale nonsmooth minimization", Reports of the
    Department of Mathematical Information Technology, University of Jyväskylä, B 4/2007.

Checked against (formula and starting point of every problem): the Fortran test set
``tnsunc.f`` (N. Haarala 2003, subroutines STARTX and FUNC; LMBM distribution, copy in the
GitHub repository wilmerhenao/LMBM) and F. E. Curtis's NonOpt C++ classes
(frankecurtis/NonOpt, ``NonOpt/problems/{MaxQ, MxHilb, ChainedLQ, ChainedCB3_1, ChainedCB3_2,
ActiveFaces, BrownFunction_2, ChainedMifflin_2, ChainedCrescent_1, ChainedCrescent_2}.cpp``).
Both agree with the table above. Notes where they say more than a bare formula:

* maxq accepts odd n: both references fill x0 with the integer division n/2 (x_i = i for
  i <= floor(n/2)), so this module does too instead of rejecting odd n.
* chained Mifflin 2: NonOpt's header only says "for n = 50, approx. -35.0"; the values above
  are the table's, kept as published (rounded), never to be compared to 1e-10. Both
  references call the problem nonconvex, but it is convex: each term is -a_i + h(y_i) with
  y_i = a_i^2 + b_i^2 - 1 convex and h(y) = 2y + 1.75|y| = max{0.25 y, 3.75 y} convex and
  nondecreasing, so ``convex`` is True here. (Solving the convex epigraph form
  min sum(-a_i + s_i), s_i >= 0.25 y_i, s_i >= 3.75 y_i with SciPy's SLSQP gives -34.79518,
  -140.86071 and -706.54601 for n = 50, 200, 1000: the published values, rounded.)
* active-faces is evaluated as ln(1 + max{|sum_i x_i|, max_i |x_i|}) (``knp.log1p``): equal
  to the definition because ln(1 + t) is increasing, more accurate near the minimiser 0.
* brown2 at a zero base: |t|^s with the traced exponent s = (other)^2 + 1 >= 1 is
  ``knp.power(knp.abs(t), s)``. At t = 0 the partial in s is 0 (0**s vanishes for s > 0) and
  the partial in |t| is s 0^(s-1): 0 for s > 1, 1 for s = 1 (so at x = 0 the abs-normal form
  sees f = sum |x_i| + ... to first order, and x* = 0 is certified stationary). The function
  is not abs-smooth at (t, s) = (0, 1) (s |t|^(s-1) has no limit there); kinkgrad's local
  model there is the one of |t|, which contains 0 in its subdifferential at the minimiser.
* mxhilb uses the Hilbert matrix as a read-only strided view of its 2n - 1 distinct entries
  (H_ij = c_{i+j-1}, c_k = 1/k), so n = 10^4 costs 160 kB, not 800 MB; each evaluation is
  O(n^2), as in the references.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import numpy as knp
from .errors import KinkgradError

__all__ = ["NAMES", "Problem", "describe", "get"]

NAMES: tuple[str, ...] = (
    "maxq", "mxhilb", "chained-lq", "chained-cb3-1", "chained-cb3-2", "active-faces",
    "brown2", "chained-mifflin2", "chained-crescent-1", "chained-crescent-2",
)

_MIFFLIN2_F_STAR = {50: -34.795, 200: -140.86, 1000: -706.55}


@dataclass(frozen=True)
class Problem:
    """One test problem of a given dimension.

    Attributes:
        name: The canonical name (one of :data:`NAMES`).
        n: The number of variables.
        f: The objective: a function of one flat float64 array of length n, returning a
            scalar, written with ``kinkgrad.numpy`` (so ``kinkgrad.grad(p.f)`` works).
        convex: Whether f is convex.
        f_star: The optimal value, or None where none is published.
        title: The problem's name in the references.
    """

    name: str
    n: int
    f: Callable[[Any], Any] = field(repr=False)
    convex: bool
    f_star: float | None
    title: str
    _x0: np.ndarray = field(repr=False)
    _x_star: np.ndarray | None = field(repr=False)

    @property
    def x0(self) -> np.ndarray:
        """The published starting point (a fresh float64 array on every access)."""
        return self._x0.copy()

    @property
    def x_star(self) -> np.ndarray | None:
        """A minimiser (a fresh float64 array), or None where no closed form is known."""
        return None if self._x_star is None else self._x_star.copy()


# --- the objectives (a = x[:-1], b = x[1:]) -------------------------------------------------
def _maxq(x: Any) -> Any:
    return knp.max(x * x)


def _mxhilb(n: int) -> Callable[[Any], Any]:
    # H[i, j] = 1 / (i + j + 1) (0-based) is the window i of c = (1, 1/2, .., 1/(2n-1)).
    hilbert = sliding_window_view(1.0 / np.arange(1.0, 2.0 * n), n)

    def mxhilb(x: Any) -> Any:
        return knp.max(knp.abs(knp.matmul(hilbert, x)))

    return mxhilb


def _chained_lq(x: Any) -> Any:
    a, b = x[:-1], x[1:]
    s = -a - b
    return knp.sum(knp.maximum(s, s + (a * a + b * b - 1.0)))


def _cb3_terms(x: Any) -> tuple[Any, Any, Any]:
    a, b = x[:-1], x[1:]
    a2 = a * a
    return (a2 * a2 + b * b, knp.square(2.0 - a) + knp.square(2.0 - b),
            2.0 * knp.exp(b - a))


def _chained_cb3_1(x: Any) -> Any:
    t1, t2, t3 = _cb3_terms(x)
    return knp.sum(knp.maximum(knp.maximum(t1, t2), t3))


def _chained_cb3_2(x: Any) -> Any:
    t1, t2, t3 = _cb3_terms(x)
    return knp.maximum(knp.maximum(knp.sum(t1), knp.sum(t2)), knp.sum(t3))


def _active_faces(x: Any) -> Any:
    return knp.log1p(knp.maximum(knp.abs(knp.sum(x)), knp.max(knp.abs(x))))


def _brown2(x: Any) -> Any:
    a, b = x[:-1], x[1:]
    return knp.sum(knp.power(knp.abs(a), b * b + 1.0) + knp.power(knp.abs(b), a * a + 1.0))


def _chained_mifflin2(x: Any) -> Any:
    a, b = x[:-1], x[1:]
    y = a * a + b * b - 1.0
    return knp.sum(-a + 2.0 * y + 1.75 * knp.abs(y))


def _crescent_terms(x: Any) -> tuple[Any, Any]:
    a, b = x[:-1], x[1:]
    q = a * a + knp.square(b - 1.0)
    return q + b - 1.0, -q + b + 1.0


def _chained_crescent_1(x: Any) -> Any:
    t1, t2 = _crescent_terms(x)
    return knp.maximum(knp.sum(t1), knp.sum(t2))


def _chained_crescent_2(x: Any) -> Any:
    t1, t2 = _crescent_terms(x)
    return knp.sum(knp.maximum(t1, t2))


# --- starting points (i = 1..n) ---------------------------------------------------------------
def _idx(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64)


def _alternating(n: int, odd: float, even: float) -> np.ndarray:
    return np.where(np.arange(1, n + 1) % 2 == 1, odd, even).astype(np.float64)


def _x0_maxq(n: int) -> np.ndarray:
    i = _idx(n)
    return np.where(i <= n // 2, i, -i)


@dataclass(frozen=True)
class _Spec:
    title: str
    convex: bool
    build: Callable[[int], Callable[[Any], Any]]
    x0: Callable[[int], np.ndarray]
    f_star: Callable[[int], float | None]
    x_star: Callable[[int], np.ndarray | None]
    x0_text: str
    f_star_text: str


def _same(fn: Callable[[Any], Any]) -> Callable[[int], Callable[[Any], Any]]:
    return lambda n: fn


def _const(v: float) -> Callable[[int], np.ndarray]:
    return lambda n: np.full(n, v, dtype=np.float64)


_ZERO = _const(0.0)
_CRESCENT_X0 = "-1.5 (i odd), 2 (i even)"

_SPECS: dict[str, _Spec] = {
    "maxq": _Spec("Generalization of MAXQ", True, _same(_maxq), _x0_maxq, lambda n: 0.0, _ZERO,
                  "i (i <= n/2), -i", "0"),
    "mxhilb": _Spec("Generalization of MXHILB", True, _mxhilb, _const(1.0), lambda n: 0.0,
                    _ZERO, "1", "0"),
    "chained-lq": _Spec("Chained LQ", True, _same(_chained_lq), _const(-0.5),
                        lambda n: -(n - 1) * math.sqrt(2.0), _const(1.0 / math.sqrt(2.0)),
                        "-0.5", "-(n-1) sqrt(2)"),
    "chained-cb3-1": _Spec("Chained CB3 I", True, _same(_chained_cb3_1), _const(2.0),
                           lambda n: 2.0 * (n - 1), _const(1.0), "2", "2(n-1)"),
    "chained-cb3-2": _Spec("Chained CB3 II", True, _same(_chained_cb3_2), _const(2.0),
                           lambda n: 2.0 * (n - 1), _const(1.0), "2", "2(n-1)"),
    "active-faces": _Spec("Number of active faces", False, _same(_active_faces), _const(1.0),
                          lambda n: 0.0, _ZERO, "1", "0"),
    "brown2": _Spec("Nonsmooth generalization of Brown function 2", False, _same(_brown2),
                    lambda n: _alternating(n, -1.0, 1.0), lambda n: 0.0, _ZERO,
                    "-1 (i odd), 1 (i even)", "0"),
    "chained-mifflin2": _Spec("Chained Mifflin 2", True, _same(_chained_mifflin2),
                              _const(-1.0), _MIFFLIN2_F_STAR.get, lambda n: None, "-1",
                              "-34.795 (n=50), -140.86 (200), -706.55 (1000)"),
    "chained-crescent-1": _Spec("Chained crescent I", False, _same(_chained_crescent_1),
                                lambda n: _alternating(n, -1.5, 2.0), lambda n: 0.0, _ZERO,
                                _CRESCENT_X0, "0"),
    "chained-crescent-2": _Spec("Chained crescent II", False, _same(_chained_crescent_2),
                                lambda n: _alternating(n, -1.5, 2.0), lambda n: 0.0, _ZERO,
                                _CRESCENT_X0, "0"),
}
assert tuple(_SPECS) == NAMES


def _frozen(v: np.ndarray | None) -> np.ndarray | None:
    if v is None:
        return None
    v = np.array(v, dtype=np.float64)
    v.flags.writeable = False
    return v


def get(name: str, n: int) -> Problem:
    """The test problem ``name`` in dimension ``n``.

    Args:
        name: One of :data:`NAMES` (case and ``_`` versus ``-`` are not significant).
        n: The number of variables, an integer >= 2 (odd n is allowed for maxq, as in the
            references: x0 then uses floor(n/2)).

    Returns:
        The :class:`Problem`.

    Raises:
        KinkgradError: For an unknown name or an n that is not an integer >= 2.
    """
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else None
    if key not in _SPECS:
        raise KinkgradError(
            f"problems.get: unknown problem {name!r}; use one of {', '.join(NAMES)}."
        )
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise KinkgradError(
            f"problems.get: n must be an integer >= 2 (the test set states every problem for "
            f"n >= 2: the chained ones need a pair x_i, x_(i+1)), got {n!r}; pass e.g. "
            f"problems.get({key!r}, 1000)."
        )
    n = int(n)
    spec = _SPECS[key]
    f_star = spec.f_star(n)
    try:
        x0, x_star = _frozen(spec.x0(n)), _frozen(spec.x_star(n))
    except MemoryError:  # NOTE: a raw MemoryError traceback from the CLI before
        raise KinkgradError(f"problems.get: n = {n} does not fit in memory ({8 * n / 1e9:.3g} "
                            "GB per float64 point); pass a smaller n.") from None
    return Problem(name=key, n=n, f=spec.build(n), convex=spec.convex,
                   f_star=None if f_star is None else float(f_star), title=spec.title,
                   _x0=x0, _x_star=x_star)


def describe() -> str:
    """A plain-text table of the problems: name, convexity, x0 and f*.

    Returns:
        One header line and one line per problem, in the order of :data:`NAMES`.
    """
    rows = [("name", "convex", "x0_i", "f*")]
    rows += [(k, "yes" if s.convex else "no", s.x0_text, s.f_star_text)
             for k, s in _SPECS.items()]
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:3], widths)) + "  " + r[3] for r in rows
    )
