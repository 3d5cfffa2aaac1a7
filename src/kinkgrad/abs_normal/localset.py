"""The Clarke subdifferential as a sum of small hulls: blocks of coupled switches, k-way max.

Reduce the abs-normal form at x to its relevant active switches (:mod:`.active`:
z' = A d + K|z'|, g(sigma) = g0 + bhat Sigma (I - K Sigma)^{-1} A). Split them into *blocks*,
the connected components of the coupling K (switch i depends on |z_j|). K has no entry
between blocks, so (I - K Sigma)^{-1} is block diagonal and every selection gradient splits:

    g(sigma) = g0 + sum_b h_b(sigma_b),   h_b(s) = (s * bhat_b) (I - K_b S)^{-1} A_b.

Every limiting gradient at x is some g(sigma) (near x, f is one of its selection functions
on each open piece), so the Clarke subdifferential lies in the **outer** set
g0 + sum_b conv(outer_b), where outer_b holds the values of h_b over all sign patterns of the
block. Per block:

* a single switch: outer = {+bhat_i A_i, -bhat_i A_i}; both realised (A_i != 0);
* a **k-way max (or min)**: a block whose comparisons (switches of ``max``/``min`` over an
  axis, or of ``maximum``/``minimum``: the tournament of the abs form or a chain the user
  wrote) form a binary tree: a comparison's output enters its parent with the sign of the
  side it lies on (parent = the first later comparison depending on it). Whatever the
  signs, the block's output is the item of one leaf, so outer holds t = m + 1 leaf
  ("winner") values, not 2^m signatures. A leaf's item may itself hold a few switches of
  its own (max of |.|, as in an inf-norm): then each leaf contributes its own patterns. The
  tree read from K (entries s 2^-depth, bhat_root 2^-depth) is checked exactly, and the value
  of sampled full signatures (all of them for small blocks) must be its leaf's; otherwise
  the block is treated generically;
* a **tie class of a sort** (m tied entries of one row, m(m - 1)/2 comparators): every
  signature routes the class by a permutation, so outer holds the m! ordering values
  (:mod:`.sort_block`), all realised when the block's rows have rank m - 1; above m = 7
  (up to 40) the block carries an assignment oracle instead (outer None, see
  :mod:`.sort_oracle_min`); a tie a radius made (near-tied entries, comparators moved onto
  their kinks, up to 20 entries) gets one from the routing of derivatives
  (:mod:`.sort_near`);
* any other block of at most ``_ENUM`` switches: all 2^m patterns; larger ones have no outer
  set (the answers that need it say "undecided").

The **inner** set g0 + sum_b conv(inner_b), with inner_b the block values realised by some
direction (LPs on the block's rows; all of them when the block's rows are independent),
lies in the Clarke subdifferential when the combinations of per-block pieces are realised
together. Two conditions prove it, and either makes the description exact:

* **independent blocks**: rank(A) = sum_b rank(A_b). Then for directions d_b realising each
  block's piece there is one d with A_b d = A_b d_b for all b (the blocks' row spaces are
  independent), and a block's signs depend only on A_b d.
* **convex blocks**: a single switch with bhat_i > 0 (|z| entering f with a positive
  weight), or a tournament with every bhat_j > 0 (max entering f with a positive weight, min
  with a negative one; leaf switches entering their item convexly). Then f'(x; .) =
  g0 . d + sum_b phi_b(d) is convex, its subdifferential at 0 is g0 + sum_b conv(outer_b),
  and that set is contained in the Clarke subdifferential of f at x (a piece with interior
  in the model is realised by f), so inner = outer = Clarke.

Without either condition only the outer set is proven; the Clarke subdifferential may be
smaller (the pieces of different blocks may exclude each other), and degenerate points may
hide pieces that only a second-order curve realises.

Blocks store their candidates on the columns their rows touch (``cols``): a chained
problem's block lives on two coordinates whatever n is. A k-way max/min too large for dense
arrays is read sparse (:mod:`._sparse_tournament`, values relative to one leaf's); many small
blocks of one structure are described together (:mod:`._batched_blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix, issparse, vstack

from .._core.program import Var
from ._batched_blocks import batched_tournaments
from ._block_rows import BlockRows, BlockTooLarge
from ._sparse_tournament import (
    entered_signatures,
    reader_levels,
    relative_values,
    sparse_tournament,
    sparse_weights,
    unique_rows,
)
from .active import ActiveModel
from .gordan import RealisedPatterns
from .lp import rounded_entries
from .sort_block import sort_oracle, sort_orderings
from .sort_near import near_oracle
from .tournament import (
    MAX_PRODUCERS,
    MIN_PRODUCERS,
    block_value,
    components,
    leaves_entered,
    pure_roles,
    tournament,
    winner,
)

__all__ = ["Block", "BlockTooLarge", "LocalSet", "local_set", "piecewise_linear"]

_ENUM = 12  # largest generic block whose 2^m patterns are listed
_ENUM_REALISED = 720  # most sort-tie orderings tested one by one for a realising direction
_LEAF_LPS = 256  # most leaves of a non-convex k-way block tested one by one (an LP each)
_LINEAR = {"add", "sub", "neg", "broadcast_to", "concatenate", "cumsum", "getitem", "reshape",
           "stack", "sum", "transpose", "where", "abs"}


@dataclass
class Block:
    """A connected component of the coupling between active switches.

    Attributes:
        members: positions in the reduced model (program order).
        kind: ``"switch"``, ``"k-way max"``, ``"k-way min"``, ``"sort tie"``,
            ``"enumerated"`` or ``"large"``.
        cols: the columns (flat coordinates of x) the block's rows touch.
        outer: (t, len(cols)) block values h_b over all patterns (a scipy CSR matrix for a
            block read sparse; None for a large block, or a convex one whose leaves are too
            dense to hold: its inner set is then the mean of its leaves).
        inner: (t', len(cols)) block values in the block's Clarke set: realised by some
            direction for this block alone, or, in a convex block, every leaf (a dominated
            one is in the hull, not a limiting gradient); signatures in ``signatures`` (a
            CSR matrix for a block read sparse).
        convex: the block's piece of f'(x; .) is convex (see the module docstring).
        complete: conv(inner) = conv(outer) is proven for the block.
        tested: (sort ties) every ordering was tested for a realising direction, so on a
            piecewise-linear program the inner values are the whole set.
        oracle: for a tie class of a sort too large to list, its
            :class:`~.sort_block.SortOracle` (the minimum of <h, u> over the whole block).
        shift, slack: a k-way max/min too large for dense arrays holds its values as
            scipy CSR rows relative to ``shift`` (the first leaf's value, added to the local
            set's g0): value = shift + row + e with ||e|| <= slack (entries within the
            rounding bound of their own sums dropped, :mod:`._sparse_tournament`).
    """

    members: np.ndarray
    kind: str
    cols: np.ndarray
    outer: np.ndarray | None
    inner: np.ndarray
    convex: bool = False
    complete: bool = False
    signatures: list = field(default_factory=list, repr=False)
    oracle: Any = None  # a SortOracle: the block's hull is all orderings (outer left None)
    tested: bool = False  # every ordering of a listed sort tie was tested for realisation
    shift: np.ndarray | None = None  # (sparse blocks) h_b values = shift + rows, see below
    slack: float = 0.0


@dataclass
class LocalSet:
    """The Clarke subdifferential at x as g0 + sum of block hulls (see the module docstring).

    Attributes:
        model: the reduced active-switch model.
        g0: (n,) the gradient with abs'(0) = 0 at every active switch (plus the shifts of
            blocks held relative to a leaf, see :class:`Block`).
        blocks: the blocks.
        independent: rank(A) = sum of the blocks' ranks (or a single block).
        inner_exact: the inner set is contained in the Clarke subdifferential.
        exact: inner = Clarke = outer.
        linear: the active switches are piecewise-linear functions of x near x
            (:func:`piecewise_linear`), so first-order realisation is complete.
        slack: every point of the described sets lies within this distance of the true
            one (0 unless a sparse block dropped rounding-level entries).
    """

    model: ActiveModel
    g0: np.ndarray
    blocks: list[Block]
    independent: bool
    inner_exact: bool
    exact: bool
    linear: bool = False
    slack: float = 0.0

    @property
    def has_outer(self) -> bool:
        return all(b.outer is not None for b in self.blocks)

    def outer_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(cols, candidates) per block: the outer set is g0 + sum of their hulls."""
        return [(b.cols, b.outer) for b in self.blocks]  # type: ignore[misc]

    def inner_blocks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(cols, candidates) per block of the inner set."""
        return [(b.cols, b.outer if b.convex and b.outer is not None else b.inner)
                for b in self.blocks]


# ---------------------------------------------------------------------------- algebra
def _unique(rows: list[np.ndarray], sigs: list) -> tuple[np.ndarray, list]:
    """Distinct rows (each entry to 40 bits of its own size, :func:`.lp.rounded_entries`),
    first occurrences, in order."""
    if not rows:
        return np.zeros((0, 0)), []
    R = np.array(rows)
    # NOTE: a floor of 1 merged every candidate of a function scaled by 1e-12 into one (a
    # wrong "not stationary"); 11 digits of the largest entry merged (1, -1, 0) beside
    # (0, 0, 2^40) with (0, 0, 0) (a list of a 3-way max's leaves called complete without 0)
    seen: dict[bytes, int] = {}
    for i, r in enumerate(rounded_entries(R)):
        seen.setdefault(r.tobytes(), i)
    idx = sorted(seen.values())
    return R[idx], [sigs[i] for i in idx]


def _rank(A: np.ndarray, strict: bool) -> int:
    """Row rank of A with unit rows: strict counts singular values <= 1e-6 as zero (never
    over-estimates); loose counts only those <= 1e-13 (never under-estimates, in practice)."""
    norms = np.linalg.norm(A, axis=1) if A.size else np.zeros(A.shape[0])
    live = norms > 0
    if not live.any():
        return 0
    U = A[live] / norms[live, None]
    sv = np.linalg.svd(U, compute_uv=False)
    return int(np.count_nonzero(sv > (1e-6 if strict else 1e-13)))


# ---------------------------------------------------------------------------- blocks
def _sampled_pieces(A: np.ndarray, K: np.ndarray, rng: np.random.Generator
                    ) -> list[np.ndarray]:
    """Signatures entered along random directions +-d (realised: a few pieces of a big
    block, :func:`._sparse_tournament.entered_signatures`)."""
    return list(entered_signatures(A, K, rng))


_SPARSE_BLOCK = 4_000_000  # entries above which a k-way max/min block is described sparse
def _block(model: ActiveModel, members: np.ndarray, producers: list[str],
           rng: np.random.Generator, data: tuple, memo: dict) -> Block:
    cols, A, K, bhat = data
    if members.size == 1:  # a lone switch
        b = float(bhat[0])
        outer = np.outer((b, -b), A[0])
        return Block(members, "switch", cols, outer, outer, b > 0, True,
                     [np.ones(1), -np.ones(1)])
    m = members.size
    full_rank = None

    def independent_rows() -> bool:
        nonlocal full_rank
        if full_rank is None:
            full_rank = _rank(A, strict=True) == m
        return full_rank

    is_max = np.array([p in MAX_PRODUCERS for p in producers])
    is_min = np.array([p in MIN_PRODUCERS for p in producers])
    for kind, T in (("k-way max", np.flatnonzero(is_max)), ("k-way min", np.flatnonzero(is_min))):
        if T.size == 0 or (kind == "k-way max" and is_min.any()):
            continue
        S = np.flatnonzero(~(is_min if kind == "k-way min" else is_max))
        tour = tournament(A, K, bhat, T, S, rng, memo)
        if tour is None:
            break
        leaves, convex, values = tour
        outer, leaves = _unique(list(values), leaves)
        if convex:
            real = list(range(len(leaves)))
        elif S.size == 0:
            real = [i for i in range(len(leaves))
                    if independent_rows() or winner(outer, i, bhat[T[-1]])]
        elif independent_rows():  # leaves with switches of their own, not convex
            real = list(range(len(leaves)))
        elif len(leaves) <= _LEAF_LPS:  # an LP each proposes a direction entering the leaf
            found = leaves_entered(A, K, leaves, rng)
            sigs = found + _sampled_pieces(A, K, rng)
            inner, sigs = _unique([block_value(A, K, bhat, s) for s in sigs], sigs)
            return Block(members, kind, cols, outer, inner.reshape(-1, cols.size), False,
                         len(found) == len(leaves), sigs)
        else:  # NOTE: too many for an LP each: the leaves entered along sampled directions
            sigs = _sampled_pieces(A, K, rng)
            inner, sigs = _unique([block_value(A, K, bhat, s) for s in sigs], sigs)
            return Block(members, kind, cols, outer, inner.reshape(-1, cols.size), False,
                         False, sigs)
        return Block(members, kind, cols, outer, outer[real], convex,
                     convex or len(real) == len(leaves), [leaves[i] for i in real])
    if all(p == "sort" for p in producers):
        found = sort_orderings(model, members, A, K, bhat)
        if found is not None:
            outer, groups, complete = found
            if complete:  # every ordering is entered along some direction
                return Block(members, "sort tie", cols, outer, outer, False, True,
                             [g[0] for g in groups])
            real, budget = [], _ENUM_REALISED  # a value is realised when one ordering is
            realised = RealisedPatterns(A, K, reader_levels(K))
            for v, g in enumerate(groups):
                for s in g:
                    if budget == 0:
                        break
                    budget -= 1
                    if realised(s):
                        real.append((v, s))
                        break
            if real:
                inner, sigs = outer[[v for v, _ in real]], [s for _, s in real]
            else:
                sigs = _sampled_pieces(A, K, rng)
                inner, sigs = _unique([block_value(A, K, bhat, s) for s in sigs], sigs)
            return Block(members, "sort tie", cols, outer, inner.reshape(-1, cols.size), False,
                         len(real) == len(groups), sigs,
                         tested=bool(real) and budget > 0 and not realised.failed)
        orc = sort_oracle(model, members, A, K, bhat, rng)
        if orc is None:  # a tie a radius made (moved comparators): token routing
            orc = near_oracle(model, members, A, K, bhat, rng)
        if orc is not None:  # inner: orderings that minimise random directions when all
            # are entered, else the pieces entered along random directions
            sigs = []
            if orc.complete:
                found = [orc.argmin(rng.standard_normal(cols.size))[:2] for _ in range(4)]
                sigs = [s for _, s in found if s is not None]
            if not sigs:
                sigs = _sampled_pieces(A, K, rng)
            inner, sigs = _unique([block_value(A, K, bhat, s) for s in sigs], sigs)
            return Block(members, "sort tie", cols, None, inner.reshape(-1, cols.size), False,
                         False, sigs, orc)
    if m > _ENUM:
        sigs = _sampled_pieces(A, K, rng)
        inner, sigs = _unique([block_value(A, K, bhat, s) for s in sigs], sigs)
        return Block(members, "large", cols, None, inner.reshape(-1, cols.size), False, False,
                     sigs)
    pats = [np.array(p) for p in product((1.0, -1.0), repeat=m)]
    outer, _ = _unique([block_value(A, K, bhat, s) for s in pats], pats)
    realised = RealisedPatterns(A, K, reader_levels(K))  # signature_margin's LP, mostly without it
    real = [s for s in pats if independent_rows() or realised(s)]
    inner, sigs = _unique([block_value(A, K, bhat, s) for s in real], real)
    inner = inner.reshape(-1, cols.size)
    return Block(members, "enumerated", cols, outer, inner, False,
                 bool(full_rank) or len(inner) == len(outer), sigs)


def _sparse_block(members: np.ndarray, producers: list[str], rng: np.random.Generator,
                  data: tuple) -> Block | None:
    """A k-way max/min block too large for dense arrays, described sparse
    (:mod:`._sparse_tournament`); None when it is not one."""
    cols, A, K, bhat = data
    roles = pure_roles(producers)
    if roles is None:
        return None
    kind, T, S = roles
    found = sparse_tournament(A, K, bhat, T, S, rng)
    if found is None:
        return None
    sigs, convex, W = found
    try:
        shift, D, slack = relative_values(W, A)
    except BlockTooLarge:
        if not convex:
            raise
        # NOTE: a convex block's leaves are all limiting gradients, so their mean is one:
        # it is the block's inner set, with no outer set (MXHILB at 0: the mean is 0)
        mean = np.asarray(np.asarray(W.mean(axis=0)) @ A).reshape(1, -1)
        return Block(members, kind, cols, None, mean, True, False, [])
    outer, sigs = unique_rows(D, sigs)
    if convex:
        return Block(members, kind, cols, outer, outer, True, True, sigs, shift=shift,
                     slack=slack)
    from ._sparse_rank import sparse_rank

    if sparse_rank(A)[0] == members.size:  # independent rows: every leaf is entered
        return Block(members, kind, cols, outer, outer, False, True, sigs, shift=shift,
                     slack=slack)
    # NOTE: no LP per leaf (each over all columns): the inner set is the leaves entered
    # along sampled directions, relative to the same first leaf
    full = entered_signatures(A, K, rng)
    both = vstack([W[:1], sparse_weights(K, bhat, full)]).tocsr()
    _, inner, slack2 = relative_values(both, A)
    inner, entered = unique_rows(inner[1:], csr_matrix(full))
    return Block(members, kind, cols, outer, inner, False, False, entered, shift=shift,
                 slack=max(slack, slack2))


def piecewise_linear(exp: Any, switches: np.ndarray) -> bool:
    """Are the given switching variables piecewise-linear functions of x near x?

    A slot is *curved* when some non-affine operation (anything but the affine primitives,
    ``abs``, comparisons, mul/matmul/einsum with one traced operand, conv2d with a constant image
    or kernel (the bias enters additively), div with a constant divisor) lies
    between it and x. When no given switch is curved, z is piecewise linear near x, equals
    its first-order model there, and a signature of those switches is realised iff it is
    realised to first order: enumerating first-order pieces is then complete."""
    curved: set[int] = set()
    for e in exp.eqns:
        ins = [i for i in e.inputs if type(i) is Var]
        name = e.prim.name
        affine = (name in _LINEAR or e.prim.is_switch or not ins
                  or (name in ("mul", "matmul", "einsum", "tensordot") and len(ins) == 1)
                  or (name == "conv2d" and not (type(e.inputs[0]) is Var
                                                and type(e.inputs[1]) is Var))
                  or (name == "div" and type(e.inputs[1]) is not Var))
        if not affine or any(i.index in curved for i in ins):
            curved.add(e.out.index)
    slots = set(exp.z_seeds(switches)[0].tolist())
    return not (slots & curved)


def local_set(model: ActiveModel, seed: int = 0) -> LocalSet:
    """Blocks, their outer and inner candidates, and which descriptions are exact."""
    rng = np.random.default_rng(seed)
    red = model.reduced()
    producers = [m.producer for m in red.metas()]
    comps = components(red.K_sparse)
    rows = BlockRows(red, comps)
    memo: dict = {}  # tournament structures checked once (tournament.tournament)
    blocks: list = [None] * len(comps)

    def ordinary(b: int) -> Block:
        comp = comps[b]
        prods = [producers[int(i)] for i in comp]
        blk = None
        if comp.size * (red.A_sparse.shape[1] + comp.size) > _SPARSE_BLOCK and \
                rows.entries(b) > _SPARSE_BLOCK:
            blk = _sparse_block(comp, prods, rng, rows.sparse(b))
        blocks[b] = blk or _block(red, comp, prods, rng, rows.block(b), memo)
        return blocks[b]

    for b, (kind, cols, outer, sigs) in batched_tournaments(rows, comps, producers, memo,
                                                             ordinary).items():
        blocks[b] = Block(comps[b], kind, cols, outer, outer, True, True, sigs)
    for b in range(len(comps)):
        if blocks[b] is None:
            ordinary(b)
    convex = all(b.convex for b in blocks)
    independent = len(blocks) <= 1
    if not independent and not convex:
        from ._sparse_rank import sparse_rank

        total = sparse_rank(red.A_sparse)[0]  # never above the true rank
        independent = total >= sum(  # (a sparse block: its size, never below its rank)
            1 if b.kind == "switch" else min(b.members.size, b.cols.size) if issparse(
                b.outer) or (b.outer is None and b.oracle is None) else _rank(
                red.A_sparse[b.members].toarray(), strict=False)
            for b in blocks)
    inner_exact = convex or independent
    linear = piecewise_linear(model.exp, red.active)
    moved = np.asarray(model.exp.z())[red.active] != 0  # near-active, off their kinks
    for b in blocks:
        if linear and b.tested and not b.complete and not moved[b.members].any():
            # NOTE: every ordering of a listed sort tie was tested for a realising direction;
            # on a piecewise-linear program first-order realisation is realisation, so the
            # realised values are the block's whole set (as the enumeration of _decide); not
            # for comparators a radius moved: pieces between their kinks (ball_pieces)
            b.outer, b.complete = b.inner, True
    # NOTE: exact needs every block's outer set (a convex block too dense to hold has none)
    complete = all((b.complete or b.convex) and b.outer is not None for b in blocks)
    g0 = red.g0.copy()
    for b in blocks:
        if b.shift is not None:
            g0[b.cols] += b.shift
    return LocalSet(red, g0, blocks, independent, inner_exact, inner_exact and complete,
                    linear, sum(b.slack for b in blocks))
