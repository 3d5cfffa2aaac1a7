"""The limiting gradients at x by enumerating realised signatures, and Clarke membership.

Every limiting (Bouligand) gradient of an abs-smooth f at x is the selection gradient
g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A of a signature sigma of the active switches
that is *realised*: some direction d gives every active switch derivative the sign sigma_i
(an LP, :mod:`.lp`). Conversely every realised sigma gives a limiting gradient. The Clarke
subdifferential is the convex hull of these finitely many vectors.

The enumeration itself, a depth-first search over the switches with one LP per partial
signature at most, is :mod:`.signatures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from scipy.sparse import issparse

from .._core.checks import is_int
from ..backends import on_numpy
from ..errors import KinkgradError, NonFiniteInputError
from ..modes.directions import refuse_nonfinite
from ._flat import (
    FlatSpec,
    full_slope_sweep,
    gradient_unit,
    hull_units,
    other_arguments,
    scalar_output,
    terms_size,
    trace_at,
    underflow_is_not_an_error,
)
from ._forward_rounding import ForwardRounding, moved_unit
from ._membership import EnumerationLimitError, UndecidedError, by_oracles_membership, with_balls
from ._rescale import exponent, gradient_size, scaled_f
from .active import ActiveModel
from .expand import expand
from .localset import LocalSet, local_set
from .lp import in_hull, in_sum_of_hulls, rounded_entries
from .second_order import second_order_pieces
from .signatures import enumerate_signatures
from .tournament import winner
from .zero_norms import expand_flat_norms, split_zero_norms

__all__ = ["Subdifferential", "EnumerationLimitError", "UndecidedError", "subdifferential",
           "in_clarke", "enumerate_signatures"]

_SECOND_ORDER_M = 10  # second-order realisation is tried on models this small


@dataclass
class Subdifferential:
    """The distinct limiting gradients at x (their convex hull is the Clarke subdifferential).

    Attributes:
        gradients: the distinct limiting gradients, each shaped like x.
        matrix: the same as a (k, n) array (flat order of x).
        signatures: for each, one realised signature of the active switches (0 marks a
            switch whose sign does not matter: its derivative row vanishes on that piece, or
            no path leads from it to f).
        active_kinks: number m of active switching variables.
        names: their names.
        partial: True when ``limit`` stopped the enumeration (then ``gradients`` is a subset).
        message: what happened, in words.
        lps: number of linear programs solved.
    """

    gradients: list
    matrix: np.ndarray
    signatures: np.ndarray
    active_kinks: int
    names: list
    partial: bool
    message: str
    lps: int = 0
    _spec: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.gradients)

    def __iter__(self) -> Any:
        return iter(self.gradients)

    def __getitem__(self, i: int) -> Any:
        return self.gradients[i]

    def vertices(self) -> np.ndarray:
        """Rows of ``matrix`` that are extreme points of the hull (one LP each)."""
        keep = []
        for i in range(len(self.matrix)):
            others = np.delete(self.matrix, i, axis=0)
            if not len(others) or not in_hull(others, self.matrix[i], unit=0.0)[0]:
                keep.append(i)
        return self.matrix[keep]


def _model(f: Callable, x: Any, where: str, zero_norms: bool = False, units: bool = True
           ) -> tuple[ActiveModel, FlatSpec]:
    """The active-switch model at x; with ``zero_norms``, that of f with its Euclidean norms
    at 0 frozen, those norms in ``model.zero_norms`` (:mod:`.zero_norms`), and the units of
    the membership tests in ``model.units`` (:func:`._flat.hull_units`)."""
    tr = trace_at(f, x, where)
    out, _ = scalar_output(tr, where)
    spec = FlatSpec(tr)
    ct = full_slope_sweep(tr, out) if zero_norms and units and out is not None else None
    tols = hull_units(gradient_unit(tr, out, ct), out, spec,
                      terms=terms_size(tr, out, spec, ct=ct)) \
        if zero_norms and units else (1.0, 0.0)
    if zero_norms:
        tr0, balls = split_zero_norms(tr, spec, out, 0.0)
        exp = expand(tr0)
    else:
        exp, balls = expand_flat_norms(tr), None
    model = ActiveModel(exp, spec, out)
    model.zero_norms, model.units = balls, tols
    model.forward = ForwardRounding(tr, out, ct)  # NOTE: replayed when an answer asks
    return model, spec


def _strict_leaves(b: Any) -> tuple[np.ndarray, list, bool]:
    """The leaves of a convex k-way max/min block that are limiting gradients: (values,
    signatures, proven). A leaf of a convex max is one iff it wins strictly along some
    direction, i.e. iff it is a vertex of the leaves' hull; ``Block.inner`` holds them all
    (their hull is the block's). A leaf is dropped only when an LP puts it inside the hull of
    the others with no residual; one neither proven a winner nor proven inside is kept, and
    the list is then not proven exact."""
    V, sigs = b.inner, b.signatures
    if issparse(V):  # NOTE: a block too large for dense arrays: its leaves, not sifted
        return V, sigs, not b.convex
    if not (b.convex and b.kind in ("k-way max", "k-way min")) or len(V) < 3:
        return V, sigs, True
    scale = float(np.max(np.abs(V))) or 1.0
    keep, proven = [], True
    for j in range(len(V)):
        wins = winner(V, j, 1.0)  # convex: the block's root sensitivity is positive
        if wins:
            keep.append(j)
            continue
        inside, resid = in_hull(np.delete(V, j, axis=0), V[j])
        if wins is None or not (inside and resid <= 1e-12 * scale):  # NOTE: a cone too
            keep.append(j)  # thin to tell: kept, and the list is not proven
            proven = False
    return V[keep], [sigs[j] for j in keep], proven


def _product(ls: LocalSet, limit: int) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Every sum g0 + sum_b (one candidate of block b) up to ``limit`` of them (valid when
    the blocks are independent: each combination is realised), with its signature, whether
    the list is complete and whether every block's leaves were proven limiting."""
    n, m = ls.g0.size, ls.model.m
    strict = [_strict_leaves(b) for b in ls.blocks]
    exact = all(ok for _, _, ok in strict)
    per = [(b.cols, V, ss) for b, (V, ss, _) in zip(ls.blocks, strict)]
    grads, sigs = [], []
    for combo in product(*[range(v.shape[0]) for _, v, _ in per]):
        if len(grads) >= limit:
            return np.array(grads), _rows(sigs, m), False, exact
        g = ls.g0.copy()
        sg = np.zeros(m)
        for (cols, V, ss), j, blk in zip(per, combo, ls.blocks):
            g[cols] += _dense_row(V, j)
            sg[blk.members] = _dense_row(ss, j)
        grads.append(g)
        sigs.append(sg)
    return np.array(grads).reshape(len(grads), n), _rows(sigs, m), True, exact


def _dense_row(V: Any, j: int) -> np.ndarray:
    return V[j].toarray().ravel() if issparse(V) else V[j]


def _rows(vectors: list, m: int) -> np.ndarray:
    out = np.zeros((len(vectors), m))
    for i, v in enumerate(vectors):
        out[i] = v
    return out


def _second_order(ls: LocalSet, spec: FlatSpec, found: np.ndarray, limit: int
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Outer signatures of a small degenerate model that a second-order curve realises."""
    model = ls.model
    if model.m > _SECOND_ORDER_M:
        return []
    have = {tuple(s) for s in found}
    todo = [np.array(p) for p in product((1.0, -1.0), repeat=model.m) if tuple(p) not in have]
    return second_order_pieces(model, spec, todo[:limit])


def _local(f: Callable, x: Any, where: str, zero_norms: bool = False, units: bool = True
           ) -> tuple[LocalSet, FlatSpec, ActiveModel]:
    full, spec = _model(f, x, where, zero_norms, units)
    return local_set(full), spec, full


def _check_limit(limit: Any, where: str) -> None:
    if not is_int(limit):
        raise other_arguments(where, "limit", limit, "a positive int")
    if limit < 1:
        raise KinkgradError(f"{where}: limit={limit}; pass a positive integer.")


@on_numpy
@underflow_is_not_an_error
def subdifferential(f: Callable, x: Any, limit: int = 1024) -> Subdifferential:
    """The distinct limiting gradients of a scalar abs-smooth f at x.

    The active switches are split into blocks of coupled switches (:mod:`.localset`; a k-way
    max over t tied entries is one block with t candidates). When the blocks are independent
    and each block's pieces are known, every combination of per-block pieces is a limiting
    gradient and they are listed directly. Otherwise the signatures realised to first order
    are enumerated (depth-first over the switches in program order, one LP per partial
    signature, pruning unrealised ones), and on small degenerate models the signatures that
    only a second-order curve realises are added (:mod:`.second_order`). The convex hull of
    the result is the Clarke subdifferential when the list is complete.

    ``partial`` is False only when completeness is *proven*: blocks independent with known
    pieces (LIKQ is a special case), or the enumeration finished and either the local model is
    convex (then the first-order pieces span the Clarke subdifferential) or the active
    switches are piecewise linear in x (then first order is exact). At a degenerate point of
    a curved program a piece may exist only at higher order, so ``partial`` stays True there.

    Exponential in general (paper A: even deciding whether two distinct Clarke gradients
    exist is NP-hard): meant for small programs. ``limit`` caps the number listed.

    Kink convention: none; the result does not depend on the kink policy.

    Returns a :class:`Subdifferential`: limiting gradients (elements of the B-subdifferential).

    Raises:
        NotAbsSmoothError: a Euclidean norm at 0 (nonzero Jacobian) or a tied comparison.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> sub = kinkgrad.subdifferential(lambda x: knp.sum(knp.abs(x)), np.zeros(2))
        >>> sorted(map(tuple, sub.matrix.tolist())), sub.partial
        ([(-1.0, -1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, 1.0)], False)
        >>> cusp = kinkgrad.subdifferential(lambda x: knp.abs(x[0]) - knp.abs(x[0] + x[1]**2),
        ...                                 np.zeros(2))
        >>> sorted(map(tuple, cusp.matrix.tolist())), cusp.partial
        ([(-2.0, 0.0), (0.0, 0.0)], True)
    """
    _check_limit(limit, "subdifferential")
    ls, spec, full = _local(f, x, "subdifferential")
    sub = _listed(ls, spec, full, limit)
    forward = full.forward  # NOTE: the list is the rounded program's, maybe not f's
    why = (forward.kinks() and forward.kinks_reason() or forward.far(spec)
           and forward.far_reason(spec) or forward.moved_reason(spec))
    if why:
        sub.partial = True
        sub.message = f"partial: {why} The list: {sub.message}"
    off = forward.summed(spec, float(np.max(np.abs(sub.matrix), initial=0.0)))
    if off:  # NOTE: terms far above the vectors (_flat.sums_rounding): they lost digits
        sub.message += (f" The vectors are rounded sums of far larger terms: each may be off "
                        f"by up to about {off:.1e} (l2).")
    return sub


def _listed(ls: LocalSet, spec: FlatSpec, full: ActiveModel, limit: int,
            stop: Callable[[np.ndarray], bool] | None = None) -> Subdifferential:
    """:func:`subdifferential` from the local set; ``stop`` as in
    :func:`.signatures.enumerate_signatures` (a stopped list reads as stopped at limit)."""
    model = ls.model
    m = full.m
    lps = 0
    extra = ""
    leaves_proven = True
    if ls.exact and ls.independent:
        G, S_red, complete, leaves_proven = _product(ls, limit)
        proven = complete and leaves_proven
        how = "blocks independent, every combination of their pieces realised"
    else:
        sigs, G, complete, lps = enumerate_signatures(model, limit, stop=stop)
        S_red = _rows(sigs, model.m)
        proven = complete and (ls.exact or ls.linear)
        how = ("the local model is convex: its first-order pieces span the set" if ls.exact
               else "the active switches are piecewise linear in x: first order is exact")
        if complete and not proven:
            more = _second_order(ls, spec, S_red, limit - len(S_red))
            if more:
                G = np.vstack([G, [g for _, g in more]])
                S_red = np.vstack([S_red, [s for s, _ in more]])
                extra = f" ({len(more)} realised only by second-order curves)"
    G, S_red = _distinct_rows(G, S_red)
    S = np.zeros((len(S_red), m))
    S[:, np.searchsorted(full.active, model.active)] = S_red
    if proven:
        msg = (f"complete: {len(G)} distinct limiting gradient(s) of {m} active switch(es), "
               f"{lps} LP(s); {how}.")
    elif not complete and stop is None and len(G) < limit and not (ls.exact and
                                                                  ls.independent):
        msg = (f"partial: {len(G)} limiting gradient(s) of {m} active switch(es); a sign "
               "pattern was left undecided (its switches' rows are so nearly dependent that "
               "its cone is thinner than 1e-9 yet not provably empty, or an LP the solver, "
               "HiGHS, failed to solve), so the list may miss gradients.")
    elif not complete:
        msg = (f"subdifferential: stopped at limit={limit} of {m} active switches; the "
               f"{len(G)} gradient(s) returned are limiting gradients but possibly not all. "
               "Raise limit= for more, or use kinkgrad.in_clarke / kinkgrad.stationarity, "
               "which work on the blocks without listing.")
    elif not leaves_proven:
        msg = (f"partial: {len(G)} gradient(s) of {m} active switch(es); a leaf of a convex "
               "k-way max could be proven neither a strict winner nor inside the hull of the "
               "others (a vertex within rounding of it): it is listed, so one gradient may "
               "not be a limiting one (the hull is the Clarke subdifferential either way).")
    else:
        msg = (f"partial: {len(G)} limiting gradient(s){extra} of {m} active switch(es); the "
               "point is degenerate (LIKQ fails) in a curved program, where pieces realised "
               "only at higher order cannot be excluded.")
    return Subdifferential([spec.tree(g) for g in G], G, S, m, full.names(), not proven,
                           msg, lps, spec)


def _distinct_rows(G: np.ndarray, S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of G that differ beyond rounding: each entry rounded to 40 bits of its own
    size (12 digits; rounded against the largest entry of all, (0, 0, 0) and
    (0.5, -0.5, 0) beside gradients of size 2^40 were one, and at 9 digits (0, 1) and
    (2^-34, 1))."""
    if len(G) == 0:
        return G, S
    _, idx = np.unique(rounded_entries(G), axis=0, return_index=True)
    idx = np.sort(idx)
    return G[idx], S[idx]


@on_numpy
@underflow_is_not_an_error
def in_clarke(f: Callable, x: Any, g: Any, limit: int = 1024) -> bool:
    """Whether g lies in the Clarke subdifferential of a scalar abs-smooth f at x.

    Decided without listing when possible (:mod:`.localset`): g outside the outer set
    g0 + sum of the blocks' candidate hulls (which contains the Clarke subdifferential) is
    proven not a Clarke gradient; inside the inner set (proven pieces) it is one; where the
    two coincide one LP decides; with a sort tie too large to list, the distance from g to
    the set, bounded through the tie's assignment oracle (:mod:`.sort_oracle_min`), decides.
    Otherwise the limiting gradients are listed
    (:func:`subdifferential`) and membership in their hull is one LP; False is then returned
    only when the list is proven complete. A listing by enumeration stops as soon as g lies
    in the hull of the gradients found so far (checked at 16, 32, 64, ... of them).
    Euclidean norms at zero isolated from the active kinks (:mod:`.zero_norms`) add an
    ellipsoid each; g is then tested by its distance to the set (an SOCP).

    Args:
        f: scalar function written with ``kinkgrad.numpy``.
        x: the point (array or pytree).
        g: the vector to test, shaped like x (or flat).
        limit: cap on the listing of limiting gradients.

    Returns:
        True if g is a Clarke gradient of f at x, up to an l1 residual of 1e-7 n times the
        size of the data (g's and the set's largest entries; plus 64 u times the size of
        f's terms, :func:`._flat.hull_units`, for f's own rounding); False only when that is
        proven false: g farther than 1e-7 n times the data's and f's terms' size, and than
        twice the l1 move of f's gradients between its computed values and a replay in a
        wider precision (:mod:`._forward_rounding`: the derivatives are read at computed
        values, which cancellation can leave with few digits). A kink of f at x that the
        computed values miss makes False unproven, one they hit far from f's makes True
        unproven (UndecidedError).

    Raises:
        UndecidedError: membership could not be decided (the reason says why; an
            :class:`EnumerationLimitError` when the listing stopped at ``limit``), or g
            lies between those two distances.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> f = lambda x: knp.relu(x) - knp.relu(-x)
        >>> kinkgrad.in_clarke(f, np.float64(0), 0.0), kinkgrad.in_clarke(f, np.float64(0), 1.0)
        (False, True)
    """
    _check_limit(limit, "in_clarke")
    ls, spec, full = _local(f, x, "in_clarke", zero_norms=True)
    vec = spec.from_tree(g, "in_clarke")
    refuse_nonfinite([vec], "in_clarke", "g")
    e = exponent(gradient_size(full, full.zero_norms))
    scale, forward, spec0 = 1.0, full.forward, spec
    if e is not None:  # NOTE: s f's set is s f's: f / 2^e and g / 2^e, exactly (_rescale);
        units, scale = full.units, math.ldexp(1.0, -e)  # NOTE: f's own units, scaled
        try:
            ls, spec, full = _local(scaled_f(f, e), x, "in_clarke", zero_norms=True,
                                    units=False)
        except NonFiniteInputError as exc:  # NOTE: f's steps times 2^-e overflowed
            raise UndecidedError(
                f"in_clarke: undecided. f's gradients lie near 2^{e}, and the exact "
                f"rescaling f / 2^{e} the test runs on overflows in its sweeps ({exc}); "
                "rescale f so that its gradients lie nearer 1.") from None
        full.units = tuple(u * scale for u in units)
        vec = vec * scale
    if _membership(ls, spec, full, vec, limit):
        if forward.far(spec0):  # NOTE: the model holds pieces f may not have at x
            raise UndecidedError(f"in_clarke: undecided. {forward.far_reason(spec0)}")
        moved = forward.moved_reason(spec0)
        if moved:  # NOTE: inside the model's set, which the rounding moved away from f's
            raise UndecidedError(f"in_clarke: undecided. {moved}")
        return True
    if forward.kinks():  # NOTE: f has kinks at x the model misses: outside is not proven
        raise UndecidedError(f"in_clarke: undecided. {forward.kinks_reason()}")
    # "outside" beyond the rounding of f's terms; is it beyond the move of f's forward
    # values' rounding too (cancellation: the derivatives are read at computed values)?
    loose = moved_unit(forward.move() * scale)
    if loose > full.units[0]:
        full.units = (loose, full.units[1])
        return _membership(ls, spec, full, vec, limit)
    return False


def _membership(ls: LocalSet, spec: FlatSpec, full: ActiveModel, vec: np.ndarray,
                limit: int) -> bool:
    """:func:`in_clarke` on the model: "outside" beyond the tolerance of f's terms
    (``full.units[0]``), "inside" within the relative one (``full.units[1]``)."""
    out = {"unit": full.units[0]}  # NOTE: the two sides' tolerances (lp.hull_tolerance)
    inside = {"unit": full.units[1]}
    if full.zero_norms is not None:  # Euclidean norms at 0 (zero_norms.py)
        return with_balls(ls, full, vec)
    if ls.has_outer:
        near, _ = in_sum_of_hulls(vec, ls.g0, ls.outer_blocks(), **out)
        if not near and not (ls.slack and in_sum_of_hulls(  # NOTE: outside by <= slack
                vec, ls.g0, ls.outer_blocks(), widen=ls.slack, **out)[0]):
            return False
        if near and ls.exact and in_sum_of_hulls(vec, ls.g0, ls.outer_blocks(), **inside)[0]:
            return True
    if ls.inner_exact and in_sum_of_hulls(vec, ls.g0, ls.inner_blocks(), **inside)[0]:
        return True
    decided = by_oracles_membership(ls, vec, full.units)
    if decided is not None:
        return decided
    sub = _listed(ls, spec, full, limit, stop=lambda G: in_hull(G, vec, **inside)[0])
    if in_hull(sub.matrix, vec, **inside)[0]:
        return True
    if not sub.partial and not in_hull(sub.matrix, vec, **out)[0]:
        return False
    if not sub.partial:
        raise UndecidedError(
            "in_clarke: undecided. g lies outside the hull of the limiting gradients by more "
            "than their own size's tolerance but less than the rounding of the terms they "
            "were summed from or the move of the forward values' rounding "
            "(lp.hull_tolerance, _forward_rounding): nothing is proven.")
    if sub.message.startswith("subdifferential: stopped"):
        raise EnumerationLimitError(f"in_clarke: undecided. {sub.message}")
    raise UndecidedError(f"in_clarke: undecided. g lies in a set that contains the Clarke "
                         f"subdifferential but not in the hull of the proven pieces. "
                         f"{sub.message}")
