"""A guaranteed Clarke gradient at the price of a gradient, and lexicographic derivatives.

``clarke_grad`` runs ONE forward sweep along a random direction d in ``mode="lex"`` (every
active kink takes the side that d enters) keeping the selections, then ONE reverse sweep with
exactly those selections. The reverse sweep then differentiates the smooth selection function
of the piece that d enters, so the result is that piece's gradient: a limiting (Bouligand)
gradient, hence an element of the Clarke subdifferential. Its model cost is
(function + JVP + VJP) / (function + VJP) times that of ``grad``, independent of the
dimension.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core import pytree
from .._core.program import Var
from ..backends import on_numpy
from ..cost import program_cost
from ..errors import KinkgradError, ShapeError
from ..kinks import KinkPolicy, resolve_policy
from ..modes._discard import guarded_reverse
from ..modes._nonfinite import require_finite
from ..modes.sweeps import forward_sweep
from ._flat import FlatSpec, other_arguments, scalar_output, trace_at, underflow_is_not_an_error
from .directional import parse_directions, tangent_outputs
from .ties import kink_counts

__all__ = ["ClarkeInfo", "clarke_grad", "ld_derivative"]


@dataclass
class ClarkeInfo:
    """How :func:`clarke_grad` resolved the kinks.

    Attributes:
        directions: the (n, K) matrix of directions used, flat order of x (K = 1 unless a
            tie needed more).
        kinks: active kink entries met by the forward sweep.
        ties: active kinks left unresolved by the first direction (a zero directional
            derivative of their switching variable).
        resolved: kink entries whose side was decided by some direction.
        unresolved: entries still tied after the last direction (their switching variable is
            identically zero to first order on the piece; their choice does not change g).
        cost_ratio: model cost (function + JVPs of all forward sweeps + VJP) / (function +
            VJP of ``grad``); 1 + JVP/(function + VJP) when one direction suffices.
        sweeps: forward sweeps run (2 when a tie made it try a second direction).
        nodes: per nonsmooth node with kinks, (node name, primitive, kinks, unresolved).
    """

    directions: np.ndarray = field(repr=False)
    kinks: int = 0
    ties: int = 0
    resolved: int = 0
    unresolved: int = 0
    cost_ratio: float = 1.0
    sweeps: int = 1
    nodes: list = field(default_factory=list)

    @property
    def num_directions(self) -> int:
        return int(self.directions.shape[1])


def _status(tr: Any, tan: dict, k: int) -> tuple[int, int, list]:
    """(active kinks, unresolved, per-node rows) after a lex sweep with k directions."""
    from .._core.program import _var_name

    total = still = 0
    rows = []
    for eqn in tr.eqns:
        if not eqn.prim.nonsmooth or eqn.prim.is_switch:
            continue
        ts = [tan.get(i.index) if type(i) is Var else None for i in eqn.inputs]
        if all(t is None for t in ts):
            continue  # does not depend on x
        args = eqn.args(tr.vals)
        res = kink_counts(eqn, args, tr.vals[eqn.out.index], ts, k)
        if res is None:  # an unknown nonsmooth primitive: count its kinks, assume resolved
            _, n_k = eqn.prim.select(resolve_policy(None), args, tr.vals[eqn.out.index],
                                     eqn.params)
            res = (n_k, 0)
        if res[0]:
            rows.append((_var_name(eqn.out.index), eqn.prim.name, res[0], res[1]))
        total, still = total + res[0], still + res[1]
    return total, still, rows


@on_numpy
@underflow_is_not_an_error
def clarke_grad(f: Callable, x: Any, seed: Any = None, policy: KinkPolicy | None = None
                ) -> tuple[Any, ClarkeInfo]:
    """A limiting (Bouligand) gradient of a scalar abs-smooth program, hence a Clarke gradient.

    Algorithm: draw a random direction d_1 (uniform in a cube, ``seed``); one forward sweep in
    ``mode="lex"`` with ``keep_selections=True`` resolves every active kink by the sign of its
    switching variable's directional derivative along d_1; one reverse sweep with exactly
    those selections returns the gradient of the selection function active on the open piece
    that x + t d_1 enters for small t > 0. If some active switch has a zero derivative along
    d_1, further random directions d_2, d_3, ... are added lexicographically (a forward
    sweep with K directions; the first direction with a nonzero derivative decides), until a
    new direction resolves nothing more (or K = n).

    Why the result is still exact: with probability one a random direction gives a nonzero
    derivative to every switch whose derivative row on the current piece is nonzero. A switch
    still tied after a direction that resolved nothing new therefore has a zero row: it stays
    zero to first order on the piece, contributes sigma_i * 0 to every later switch and to the
    gradient, and the choice the policy makes there cannot change g. On an open cone of
    directions around d_1 + eps d_2 + ... the directional derivative f'(x; .) is then linear
    with gradient g, and such a g is the gradient of an essentially active selection function,
    i.e. an element of the B-subdifferential (Khan and Barton's lexicographic derivatives,
    Nesterov's lexicographic differentiation) and so of the Clarke subdifferential.

    Kink convention: the policy is consulted only for ties that no direction resolves, where it
    does not change the result.

    Rounding: the kinks' sides and the smooth steps' derivatives are read at the computed
    values, as backward AD reads them. Where those lost their digits to cancellation
    (|x1| + x0 ((1e12 + x2) - 1e12): g0 = 0.30005 for f's 0.3; a switching value of 8e-17
    as computed and -1e-17 in f) g is that of the computed program, not of f; nothing is
    checked here (at the cost of a wider replay, :func:`kinkgrad.certify` and
    :func:`kinkgrad.in_clarke` check it).

    Args:
        f: scalar function written with ``kinkgrad.numpy``.
        x: the point, an array or a pytree of arrays.
        seed: seed (or ``numpy.random.Generator``) for the random directions.
        policy: kink policy for unresolved ties.

    Returns:
        ``(g, info)``: g shaped like x, an element of the Clarke subdifferential (with
        probability one over the directions), and a :class:`ClarkeInfo`.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> g, info = kinkgrad.clarke_grad(lambda x: knp.relu(x) - knp.relu(-x), np.float64(0))
        >>> float(g), info.kinks, info.num_directions     # plain grad gives 0 here
        (1.0, 2, 1)
    """
    pol = resolve_policy(policy)
    if not (seed is None or isinstance(seed, (int, np.integer, np.random.Generator))) or \
            isinstance(seed, bool):
        raise KinkgradError(
            f"clarke_grad: seed={type(seed).__name__} must be None, an int or a "
            "numpy.random.Generator; to differentiate with respect to one argument of a "
            "function of several, close over the others: clarke_grad(lambda x: f(x, y), x)."
        )
    if isinstance(seed, (int, np.integer)) and seed < 0:
        raise KinkgradError(f"clarke_grad: seed={seed}; pass an integer >= 0, None or a "
                            "numpy.random.Generator.")
    tr = trace_at(f, x, "clarke_grad")
    out, _ = scalar_output(tr, "clarke_grad")
    spec = FlatSpec(tr)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    lex = resolve_lex(tr, spec, _random_directions(rng, 1, spec.n), pol, rng)
    dirs, sels, still, rows = lex.dirs, lex.sels, lex.still, lex.rows
    kinks, ties, pushed, sweeps = lex.kinks, lex.ties, lex.pushed, lex.sweeps
    ct: dict = {}
    if out is not None:
        seedv = {out.index: np.ones(out.shape, dtype=out.dtype)}
        ct = guarded_reverse(tr, seedv, pol, "clarke_grad", sels, set(spec.slots))
    rep = program_cost(tr.program())
    jvp = rep.forward_pass - rep.function
    ratio = (rep.backward + pushed * jvp) / max(rep.backward, 1)
    info = ClarkeInfo(directions=dirs.T, kinks=kinks, ties=ties, resolved=kinks - still,
                      unresolved=still, cost_ratio=float(ratio), sweeps=sweeps, nodes=rows)
    g = spec.tree_from_slots(ct)
    require_finite(tr, pytree.flatten(g)[0] + [np.asarray(v) for v in tr.out_values()],
                   "clarke_grad", "gradient")
    return g, info


@dataclass
class LexResolution:
    """A lexicographic forward sweep that resolved as many kinks as directions can."""

    dirs: np.ndarray  # (K, n) directions used, first the given ones
    sels: dict  # the selections of every equation, for a reverse sweep
    kinks: int  # active kink entries
    ties: int  # left unresolved by the given directions
    still: int  # left unresolved by all directions (zero rows: they cannot change g)
    rows: list  # per-node (name, primitive, kinks, unresolved)
    pushed: int  # tangents pushed through the program in all sweeps
    sweeps: int  # forward sweeps run


def resolve_lex(tr: Any, spec: FlatSpec, dirs: np.ndarray, pol: KinkPolicy,
                rng: np.random.Generator) -> LexResolution:
    """Lex sweep along ``dirs`` (K, n), adding random directions while they resolve more ties
    (see :func:`clarke_grad` for why the ties left then cannot change the gradient)."""
    k = dirs.shape[0]
    tan, sels = _lex(tr, spec, dirs, pol)
    kinks, ties, rows = _status(tr, tan, k)
    still, pushed, sweeps = ties, k, 1
    while still and dirs.shape[0] < spec.n:
        more = np.vstack([dirs, _random_directions(rng, 1, spec.n)])
        tan2, sels2 = _lex(tr, spec, more, pol)
        pushed, sweeps = pushed + more.shape[0], sweeps + 1
        _, still2, rows2 = _status(tr, tan2, more.shape[0])
        if still2 >= still:
            break  # the new direction resolved nothing: the remaining ties have zero rows
        dirs, sels, still, rows = more, sels2, still2, rows2
    return LexResolution(dirs, sels, kinks, ties, still, rows, pushed, sweeps)


def piece_gradient(tr: Any, spec: FlatSpec, out: Any, d: np.ndarray, pol: KinkPolicy,
                   rng: np.random.Generator) -> np.ndarray:
    """The gradient (flat, float64) of the piece that x + t d enters (ties d leaves are
    resolved by random directions): a limiting gradient of the scalar output ``out``."""
    lex = resolve_lex(tr, spec, np.asarray(d, np.float64).reshape(1, spec.n), pol, rng)
    if out is None:
        return np.zeros(spec.n)
    seedv = {out.index: np.ones(out.shape, dtype=out.dtype)}
    ct = guarded_reverse(tr, seedv, pol, "clarke_grad", lex.sels, set(spec.slots))
    return spec.join([ct.get(s) for s in spec.slots])


def _random_directions(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """k directions uniform in the cube [-1, 1]^n: any distribution with a density makes the
    "with probability one" arguments hold, and this one is the cheapest to draw."""
    d = rng.random((k, n))
    d -= 0.5
    return d


def _lex(tr: Any, spec: FlatSpec, dirs: np.ndarray, pol: KinkPolicy) -> tuple[dict, dict]:
    tangents = {slot: leaf for slot, leaf in zip(spec.slots, spec.split(dirs))}
    return forward_sweep(tr.eqns, tr.vals, tangents, pol, mode="lex", keep_selections=True)


@on_numpy
@underflow_is_not_an_error
def ld_derivative(f: Callable, x: Any, M: Any, policy: KinkPolicy | None = None,
                  batch_axis: int = -1) -> Any:
    """The lexicographic directional derivative f'(x; M) = [f^(0)(m_1), ..., f^(K-1)(m_K)].

    One forward sweep in ``mode="lex"`` with the K columns of M as tangents: a single
    selection shared by all columns, each kink resolved by the first column that gives its
    switching variable a nonzero derivative (Nesterov; Khan and Barton's vector forward mode).
    For an abs-smooth (piecewise differentiable) f the result equals J_L M, where J_L is the
    Jacobian of the selection function active on the lexicographic piece x + t_1 m_1 + t_2 m_2
    + ... (t_1 >> t_2 >> ... > 0). When M is square and nonsingular, J_L = f'(x; M) M^{-1} is
    an element of the B-subdifferential, hence of the Clarke Jacobian.

    Args:
        f: function written with ``kinkgrad.numpy`` (any output structure).
        x: the point (array or pytree).
        M: directions, shaped like x with a trailing axis K, or flat (n, K): the columns
            m_1, ..., m_K (:mod:`kinkgrad.modes.directions`); full rank (rank min(n, K)).
        policy: used only for ties no column resolves (the value does not depend on it).
        batch_axis: 0 when the directions are the rows of M (shape (K, n)); the result then
            has K first.

    Returns:
        f'(x; M) shaped like f's output with a trailing axis K.

    Raises:
        ShapeError: M is not full rank.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> kinkgrad.ld_derivative(lambda x: knp.abs(x[0]) + x[1], np.zeros(2), np.eye(2))
        array([1., 1.])
    """
    if policy is not None and not isinstance(policy, KinkPolicy):
        raise other_arguments("ld_derivative", "policy", policy, "a KinkPolicy")
    pol = resolve_policy(policy)
    tr = trace_at(f, x, "ld_derivative")
    spec = FlatSpec(tr)
    dirs, batched = parse_directions(spec, M, "ld_derivative", batch_axis)
    k = dirs.shape[0]
    if not batched:
        dirs = dirs.reshape(1, spec.n)
    rank = int(np.linalg.matrix_rank(dirs))
    if rank < min(spec.n, k):
        raise ShapeError(f"ld_derivative: the direction matrix has rank {rank} < min(n, K) = "
                         f"{min(spec.n, k)}; pass full-rank directions (lexicographic "
                         "derivatives need them).")
    tan, _ = _lex(tr, spec, dirs, pol)
    res = tangent_outputs(tr, tan, k, True, batch_axis)
    require_finite(tr, pytree.flatten(res)[0], "ld_derivative", "derivative", tan)
    return res
