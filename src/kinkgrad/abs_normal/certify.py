"""Is the vector plain backward mode returns a Clarke gradient? A certificate, no enumeration.

Write the program in abs-normal form (:mod:`.expand`) and reduce it to its m active switches
(:mod:`.active`: z' = A d + K|z'|, g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A). With the
policy's choice at every kink expressed as abs'(0) = c_i in [-1, 1] at each active switch,
backward mode returns g(c), a product-measure average of the selection gradients g(sigma)
with weights prod_i (1 + sigma_i c_i)/2 (what backward AD returns at kinks). It is a Clarke
gradient whenever every signature with positive weight is realised. Active switches that
cannot change any selection gradient (zero derivative on every piece, or no path to f) are
set aside first (``ActiveModel.relevant``); those a forward pass of masks proves inert (a CNN
batch's max-pool windows tied among dead ReLUs, :mod:`.inert`) never even get a seed in the
model's reverse sweep. Two sufficient conditions are then checked,
cheapest first:

(a) LIKQ (linear independence kink qualification): A has full row rank. Then every signature
    compatible with x is realised, so backward mode returns a Clarke gradient for ANY choices
    at kinks. A comes from one batched reverse sweep seeded at the m active switches; its
    rank is counted block by block over the connected components of its sparsity pattern
    (:mod:`._sparse_rank`: the same threshold as one dense test, never a higher count).
(b) The grouped condition for batches. Group the active switches by the program node that
    produced them (a neuron's copies across a batch sit in one node) and by their choice c.
    Members of a group share c (kinkgrad's policies are deterministic and agnostic). If no
    member of a group with |c| < 1 depends on another member (no path through K), g(t) is
    multilinear in one variable t_G per group, so g(c) is a convex combination of the
    group-uniform vertices; groups with c = +-1 are pinned at that vertex. It then suffices
    that every group sign pattern is realised (an LP each). A structural shortcut realises
    all patterns at once: if, group by group in program order, some direction moves every
    member the same way while leaving all earlier groups' switches fixed (dense ReLU layers
    with biases: that group's own biases), scaling the later groups' directions up realises
    any group pattern. Groups whose members depend on each other are split into single
    switches (still correct, more patterns).

If neither holds the report says why and names the offending switching variables; the
vector may or may not be a Clarke gradient then (:func:`kinkgrad.in_clarke` decides on small
programs). Soundness: a certified vector always lies in the Clarke subdifferential.

The paper's own condition (Baumgärtner and Bethke, arXiv 2407.09639) could not be read here
beyond its abstract; (a) and (b) are the project's own sufficient conditions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np

from .._core.checks import is_int
from ..backends import on_numpy
from ..cost import program_cost
from ..errors import KinkgradError
from ..kinks import KinkPolicy, resolve_policy
from . import _flat
from . import active as _active
from ._flat import FlatSpec, other_arguments, scalar_output, trace_at, underflow_is_not_an_error
from ._forward_rounding import ForwardRounding
from ._membership import in_inner_blocks
from ._sparse_rank import dominant_sparse, reaches, sparse_rank
from .active import ActiveModel, policy_choice
from .inert import inert_switches
from .lp import MARGIN, margin, nonzero_rows, row_terms
from .where_ties import plain_ad_vector
from .zero_norms import expand_flat_norms

__all__ = ["CertifyReport", "KinkGroup", "certify"]

_LP_ENTRIES = 20_000_000  # largest constraint matrix (rows x n) handed to the LP shortcut
_BLOCKS_M = 4000  # active switches up to which the block condition (k-way max) is tried
_DENSE = False  # True: the dense reference path (m x n A, one Gram eigh, one lstsq)


@dataclass
class KinkGroup:
    """Active switches produced by one program node with one choice c at 0."""

    node: str
    primitive: str
    choice: float
    members: list[int]
    dependent: bool = False

    @property
    def fixed(self) -> bool:
        return abs(self.choice) == 1.0


@dataclass
class CertifyReport:
    """Outcome of :func:`certify`.

    Attributes:
        certified: the vector backward mode returns is guaranteed to be a Clarke gradient.
        reason: which condition certified it, or why none did.
        condition: ``"no kinks"``, ``"inert kinks"`` (none can change the gradient),
            ``"blocks"`` (inside the proven sum of the blocks' pieces, see
            :mod:`.localset`),
            ``"LIKQ"``, ``"grouped"``, ``"none"`` or ``"undecided"`` (too large to decide:
            more than ``max_kinks`` switches to seed, or sign-pattern LPs past their size
            bound; the reason says what to do).
        active_kinks: number m of active switching variables of the abs-normal form.
        rank: rank of the active switching Jacobian A (LIKQ holds iff rank == m); a lower
            bound when ``rank_exact`` is False, -1 when not computed.
        offending: names of the switching variables that break the conditions.
        cost_ratio: model cost of the certificate's sweeps relative to ``grad``.
        gradient: the vector plain backward mode returns (shaped like x).
        kinks: names of the active switching variables (formed on first access, from
            ``kink_names``).
        groups: the kink groups of condition (b).
        patterns: sign patterns checked by LP.
        policy: the kink policy that defines the vector.
    """

    certified: bool
    reason: str
    condition: str
    active_kinks: int
    rank: int
    offending: list[str]
    cost_ratio: float
    gradient: Any
    kink_names: Callable[[], list[str]] | None = field(default=None, repr=False)
    groups: list[KinkGroup] = field(default_factory=list)
    patterns: int = 0
    policy: KinkPolicy | None = None
    rank_exact: bool = True

    @functools.cached_property
    def kinks(self) -> list[str]:
        """Names of the active switching variables (formed on first access: a CNN batch has
        thousands, and formatting them costs more than the certificate)."""
        return [] if self.kink_names is None else list(self.kink_names())

    def __bool__(self) -> bool:
        return self.certified

    def _rank_text(self) -> str:
        if self.rank < 0:
            return "not computed"
        return str(self.rank) if self.rank_exact else f">= {self.rank}"

    def __str__(self) -> str:
        head = "CERTIFIED" if self.certified else "NOT certified"
        lines = [f"{head} ({self.condition}): {self.reason}",
                 f"  active kinks {self.active_kinks}, rank {self._rank_text()}, cost "
                 f"ratio {self.cost_ratio:.2f}"]
        if self.offending:
            shown = ", ".join(self.offending[:8])
            more = f" and {len(self.offending) - 8} more" if len(self.offending) > 8 else ""
            lines.append(f"  offending: {shown}{more}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- helpers
def _rank(A: np.ndarray) -> tuple[int, list[int]]:
    """Row rank of A and the rows that take part in a linear dependency.

    The rows are scaled to unit length (the rank does not change), then the Gram matrix
    U U^T (one BLAS-3 product, m x m) is diagonalised: its eigenvalues are the squared
    singular values. A singular value below 1e-6 (eigenvalue below 1e-12, far above the
    rounding level m * eps) counts as zero: a conservative test, never a false LIKQ. The
    offending rows are those with weight in a null vector (and zero rows)."""
    m = A.shape[0]
    if m == 0:
        return 0, []
    norms = np.linalg.norm(A, axis=1)
    live = np.flatnonzero(norms > 0)
    bad = set(np.flatnonzero(norms == 0).tolist())
    if live.size == 0:
        return 0, sorted(bad)
    U = A[live] / norms[live, None]
    lam, V = np.linalg.eigh(U @ U.T)
    null = lam <= 1e-12 * max(float(lam[-1]), 1.0)
    rank = int(live.size - np.count_nonzero(null))
    if null.any():
        involved = np.any(np.abs(V[:, null]) > 1e-6, axis=1)
        bad.update(live[involved].tolist())
    return rank, sorted(int(i) for i in bad)


def _groups(model: ActiveModel, c: np.ndarray) -> list[KinkGroup]:
    metas = model.metas()
    exp = model.exp
    from .._core.program import _var_name

    index: dict[tuple, KinkGroup] = {}
    for k, (meta, ck) in enumerate(zip(metas, c)):
        key = (meta.origin, float(ck))
        if key not in index:
            orig = exp.original.eqns[meta.origin]
            index[key] = KinkGroup(_var_name(orig.out.index), orig.prim.name, float(ck), [])
        index[key].members.append(k)
    groups = list(index.values())
    K = model.K_sparse
    for g in groups:
        mem = np.array(g.members)
        if np.all(np.diff(mem) == 1):  # contiguous: paths between members stay inside
            g.dependent = bool(K[mem[0]:mem[-1] + 1, mem[0]:mem[-1] + 1].nnz)
        else:
            g.dependent = reaches(K, mem)
    return groups


def _blocks(model: ActiveModel, groups: list[KinkGroup]) -> list[np.ndarray]:
    """Contiguous runs of each group without internal coupling (else single switches),
    in program order."""
    owner = np.empty(model.m, int)
    for gi, g in enumerate(groups):
        owner[g.members] = gi
    new = np.r_[True, owner[1:] != owner[:-1]] if model.m else np.zeros(0, bool)
    run = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    C = model.K_sparse.tocoo()
    coupled = np.zeros(starts.size, bool)
    coupled[run[C.row][run[C.row] == run[C.col]]] = True
    blocks: list[np.ndarray] = []
    for k, (lo, hi) in enumerate(zip(starts, np.r_[starts[1:], model.m])):
        if coupled[k]:
            blocks.extend(np.array([i]) for i in range(lo, hi))
        else:
            blocks.append(np.arange(lo, hi))
    return blocks


def _dominant(model: ActiveModel, blocks: list[np.ndarray]) -> bool:
    """Every block moved by a direction that fixes all earlier blocks (see module doc)."""
    A = model.A
    done = np.zeros(model.m, bool)
    for blk in blocks:
        R = A[blk]
        if not np.any(R != 0, axis=1).all():  # NOTE: rows of A are read as they are
            return False
        E = A[done]
        free = ~np.any(E != 0, axis=0) if E.size else np.ones(A.shape[1], bool)
        ok = False
        if free.any():
            y, *_ = np.linalg.lstsq(R[:, free], np.ones(len(blk)), rcond=None)
            ok = bool(np.all(R[:, free] @ y >= 0.5))
        if not ok and (len(blk) + E.shape[0]) * A.shape[1] <= _LP_ENTRIES:
            t, _ = margin(R, E)
            ok = t > MARGIN
        if not ok:
            return False
        done[blk] = True
    return True


def _pattern_check(model: ActiveModel, groups: list[KinkGroup], c: np.ndarray, limit: int
                   ) -> tuple[bool | None, int, list[int]]:
    """Realise every pattern of the free units; (all realised? None: too many, LPs, bad)."""
    units = []
    for g in groups:
        if not g.fixed:
            units.extend([g.members] if not g.dependent else [[k] for k in g.members])
    if 2 ** len(units) > limit:
        return None, 0, [k for u in units for k in u]
    count = 0
    for signs in product((1.0, -1.0), repeat=len(units)):
        sigma = np.array(c, dtype=np.float64)
        for s, u in zip(signs, units):
            sigma[u] = s
        W = model.W(sigma)
        rows = nonzero_rows(W, row_terms(model.A_sparse, model.K_sparse, sigma, W))
        count += 1
        t, _ = margin(sigma[rows, None] * W[rows])
        if t <= MARGIN:
            return False, count, list(np.flatnonzero(rows))
    return True, count, []


# ---------------------------------------------------------------------------- certify
@on_numpy
@underflow_is_not_an_error
def certify(f: Callable, x: Any, policy: KinkPolicy | None = None, limit: int = 256,
            max_kinks: int = 50_000, progress: bool | str = "auto") -> CertifyReport:
    """Decide whether plain backward mode's vector at x is a Clarke gradient, without
    enumerating the subdifferential.

    The vector is ``kinkgrad.grad(f, policy=policy)(x)`` under the kink policy in force (or
    ``policy``). It is certified by (a) LIKQ, which certifies every choice at kinks, or (b)
    the grouped condition for batches (see the module docstring); a certified vector always
    lies in the Clarke subdifferential, up to :func:`kinkgrad.in_clarke`'s tolerance (an l1
    residual of 1e-7 n times the size of the data), so that in_clarke never rejects it.

    Kink convention: the policy's choice at each kink is written as abs'(0) = c_i of the abs
    form (relu'(0) = s is c = 2 s - 1, max "first" is c = +1, ...); condition (b) needs these
    to reproduce backward mode's vector exactly, which it checks.

    Cost: one batched reverse sweep with one seed per active switch that is not inert (about
    that many gradients), then sparse rank and least-squares tests block by block (linear in
    the nonzeros of A on batches, :mod:`._sparse_rank`).

    Args:
        f: scalar function written with ``kinkgrad.numpy``.
        x: the point (array or pytree, e.g. network parameters as a dict).
        policy: kink policy defining backward mode's choice at kinks.
        limit: most group sign patterns checked one LP each when the structural shortcut of
            (b) does not apply.
        max_kinks: most active switches seeded in the reverse sweep; past it the answer is
            ``"undecided"`` at once (the reason says how to go on).
        progress: a progress bar (stderr) over the reverse sweep on runs longer than a
            second: True, "auto" (only on a terminal: no escape codes in logs) or False.

    Returns:
        A :class:`CertifyReport` (truthy iff certified).

    Raises:
        NotAbsSmoothError: Euclidean norm at 0 (nonzero Jacobian) or a tied comparison:
            not abs-smooth at x.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> rep = kinkgrad.certify(lambda x: knp.relu(x) - knp.relu(-x), np.float64(0))
        >>> rep.certified, rep.active_kinks, rep.rank     # plain AD returns 0, Clarke is {1}
        (False, 2, 1)
        >>> kinkgrad.certify(lambda x: knp.sum(knp.abs(x)), np.zeros(3)).condition
        'LIKQ'
    """
    if policy is not None and not isinstance(policy, KinkPolicy):
        raise other_arguments("certify", "policy", policy, "a KinkPolicy (kinkgrad.kink_policy)")
    for name, v in (("limit", limit), ("max_kinks", max_kinks)):
        if not (is_int(v) and v >= 0):
            raise KinkgradError(f"certify: {name}={v!r}; pass an integer >= 0.")
    pol = resolve_policy(policy)
    tr = trace_at(f, x, "certify")
    out, _ = scalar_output(tr, "certify")
    spec = FlatSpec(tr)
    g_ad = plain_ad_vector(tr, pol)  # NOTE: of the program as written (a tied where)
    exp = expand_flat_norms(tr)
    base = program_cost(tr.program())
    ex = program_cost(exp.traced.program())
    seeds = _seeds(exp, max_kinks)
    if seeds > max_kinks:
        ratio = (base.backward + ex.function) / max(base.backward, 1)
        return CertifyReport(
            False, f"{seeds} active switches would each seed the reverse sweep "
            f"(about {seeds} gradients, dense rows of length {spec.n}), more than max_kinks="
            f"{max_kinks}. Pass a larger max_kinks to run it anyway, certify a smaller batch, "
            "or use kinkgrad.clarke_grad for a Clarke gradient without a certificate.",
            "undecided", int(np.count_nonzero(exp.z() == 0)), -1, [], float(ratio),
            spec.tree(g_ad), None, policy=pol)
    full = ActiveModel(exp, spec, out, progress=progress)
    model = full.reduced()
    ratio = (base.backward + ex.function + full.rows * (ex.backward - ex.function)) / max(
        base.backward, 1)
    forward = ForwardRounding(tr, out)  # NOTE: its one full-slope sweep serves every unit

    def report(ok: bool, cond: str, reason: str, rank: int, bad: list[int], **kw: Any
               ) -> CertifyReport:
        note = (f" ({model.dropped} active switch(es) that cannot change the gradient were "
                "set aside: zero derivative on every piece, or no path to f)"
                if model.dropped else "")
        if ok:  # NOTE: and is the vector known to the tolerance in_clarke decides at?
            moved = forward.beyond(g_ad, _flat.hull_units(forward.gradient_unit(), out,
                                                          spec)[0])
            if moved is None and forward.kinks():
                moved = "but " + forward.kinks_reason()
            if moved is not None or forward.far(spec):
                ok, cond = False, "undecided"
                reason = f"{reason[:-1]}; {moved or 'but ' + forward.far_reason(spec)}"
        return CertifyReport(ok, reason + note, cond, full.m, rank, model.names(bad),
                             float(ratio), spec.tree(g_ad), full.names, policy=pol,
                             rank_exact=exact, **kw)

    m = model.m
    exact = True
    if full.m == 0:
        return report(True, "no kinks", "no active switching variable: f is differentiable "
                      "at x and backward mode returns its gradient.", 0, [])
    if m == 0:
        return report(True, "inert kinks", "no active switching variable can change the "
                      "gradient: f is differentiable along every piece at x with one "
                      "gradient, the one backward mode returns.", 0, [])
    if _DENSE:
        rank, dep = _rank(model.A)
        dependent = functools.partial(list, dep)
    else:
        rank, exact, dependent = sparse_rank(model.A_sparse)
    if rank == m:  # a lower bound that reaches m is the rank
        exact = True
        return report(True, "LIKQ", f"LIKQ holds (the {m} x {spec.n} active switching "
                      "Jacobian has full row rank): every compatible signature is "
                      "realised, so any choice at kinks gives a Clarke gradient.", rank, [])
    lik = (f"LIKQ fails (rank {rank} < {m})" if exact else f"LIKQ is undecided (rank >= "
           f"{rank} of {m}: a block of A is too large for the dense rank test)")
    terms = forward.gradient_unit()  # the size of f's terms (1 for f at unit scale)
    if m <= _BLOCKS_M and in_inner_blocks(full, g_ad, _flat.hull_units(
            terms, out, spec, terms=_flat.terms_size(tr, out, spec, ct=forward.sweep()))[1]):
        return report(True, "blocks", f"{lik}, but the vector lies in the sum of the proven "
                      "pieces of the blocks of coupled switches (a k-way max or min counted as "
                      "one block of its tied entries; the blocks are convex or independent), "
                      "which is contained in the Clarke subdifferential.", rank, [])
    c = [policy_choice(meta, pol) for meta in model.metas()]
    unknown = [k for k, ck in enumerate(c) if ck is None]
    if unknown:
        return report(False, "none", f"{lik} and the choice at 0 of some switches is not "
                      "known for their primitive.", rank, unknown)
    c_arr = np.array(c, dtype=np.float64)
    g_exp = model.gradient(c_arr)
    # NOTE: g_ad comes from backward mode in the program's precision (float16 rounds at ~1e-3),
    # g_exp from the float64 model: compare at a tolerance scaled by the dtype's epsilon.
    eps = max((float(np.finfo(v.dtype).eps) for v in tr.in_vars
               if np.dtype(v.dtype).kind == "f"), default=0.0)
    tol = max(1e-8, 20 * eps)  # NOTE: atol by f's terms, not 1 (1e25 f erred by 2.7e8)
    if not np.allclose(g_exp, g_ad, rtol=tol, atol=tol * (terms + float(np.abs(g_ad).max()))):
        return report(False, "none", f"{lik} and the vector is not the model's gradient "
                      "for one value of abs'(0) per switch (a `where` tied at x follows its "
                      "condition; or a choice such as max='split' over three or more ties), so "
                      "the grouped condition does not apply.", rank, dependent())
    groups = _groups(model, c_arr)
    blocks = _blocks(model, groups)
    if (_dominant(model, blocks) if _DENSE
            else dominant_sparse(model.A_sparse, blocks, _LP_ENTRIES)):
        return report(True, "grouped", f"{lik}, but the {len(groups)} kink group(s) "
                      "(switches of one node with one choice at 0) can be moved one after "
                      "the other by directions that fix the earlier ones, so every group sign "
                      "pattern is realised and the same choice inside each group gives a "
                      "Clarke gradient.", rank, [], groups=groups)
    if not _DENSE and m * spec.n > _LP_ENTRIES:
        return report(False, "undecided", f"{lik}, the structural grouped test fails, and "
                      f"the sign-pattern LPs would need dense {m} x {spec.n} matrices. "
                      "kinkgrad.clarke_grad gives a Clarke gradient without a certificate.",
                      rank, [], groups=groups)
    ok, count, bad = _pattern_check(model, groups, c_arr, limit)
    if ok:
        return report(True, "grouped", f"{lik}, but every sign pattern of the kink groups "
                      f"({count} checked by LP) is realised, and the choice is the same "
                      "inside each group.", rank, [], groups=groups, patterns=count)
    if ok is None:
        return report(False, "none", f"{lik} and the grouped condition would need more than "
                      f"limit={limit} sign patterns checked.", rank, bad, groups=groups)
    return report(False, "none", f"{lik} and a sign pattern that backward mode's choice "
                  "weights is not realised by any direction: the vector may not be a Clarke "
                  "gradient (kinkgrad.clarke_grad gives one that is).", rank, bad,
                  groups=groups, patterns=count)


def _seeds(exp: Any, max_kinks: int) -> int:
    """Number of active switches the reverse sweep would seed (inert ones found by the
    cheap mask pass only when the plain count exceeds ``max_kinks``)."""
    active = exp.z() == 0
    count = int(np.count_nonzero(active))
    if count > max_kinks and _active._PRUNE:
        count -= int(np.count_nonzero(inert_switches(exp)[active]))
    return count
