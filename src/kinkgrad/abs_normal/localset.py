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
* a **k-way max (or min)**: a block whose switches are all comparisons of ``max``/``min``
  over an axis or ``maximum``/``minimum`` (the tournament of the abs form, or a chain the
  user wrote) is a binary tree: every comparison's output enters its parent with the sign
  of the side it lies on (parent = the first later switch of the block depending on it).
  Whatever the signs, the block's output is the item of one leaf of the tree, so outer is
  the t = m_b + 1 leaf ("winner") gradients, not 2^{m_b} signatures; the tree read from K is
  checked against sampled signatures and the block is treated generically if one misses;
* any other block of at most ``_ENUM`` switches: all 2^{m_b} patterns; larger ones have no
  outer set (the answers that need it say "undecided").

The **inner** set g0 + sum_b conv(inner_b), with inner_b the block values realised by some
direction (an LP on the block's rows; all of them when the block's rows are independent),
lies in the Clarke subdifferential when the combinations of per-block pieces are realised
together. Two conditions prove it, and either makes the description exact:

* **independent blocks**: rank(A) = sum_b rank(A_b). Then for directions d_b realising each
  block's piece there is one d with A_b d = A_b d_b for all b (the blocks' row spaces are
  independent), and a block's signs depend only on A_b d.
* **convex blocks**: a single switch with bhat_i > 0 (|z| entering f with a positive
  weight), or a max tournament whose output enters f with a positive weight (min: negative).
  Then f'(x; .) = g0 . d + sum_b phi_b(d) is convex, its subdifferential at 0 is
  g0 + sum_b conv(outer_b), and that set is contained in the Clarke subdifferential of f at
  x (a piece with interior in the model is realised by f), so inner = outer = Clarke.

Without either condition only the outer set is proven; the Clarke subdifferential may be
smaller (the pieces of different blocks may exclude each other), and degenerate points may
hide pieces that only a second-order curve realises (see :mod:`.second_order`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
from scipy.linalg import solve_triangular

from .._core.program import Var
from .active import ActiveModel
from .lp import MARGIN, margin, nonzero_rows

__all__ = ["Block", "LocalSet", "local_set", "piecewise_linear"]

_LINEAR = {"add", "sub", "neg", "broadcast_to", "concatenate", "cumsum", "getitem", "reshape",
           "stack", "sum", "transpose", "where", "abs"}

_ENUM = 12  # largest generic block whose 2^m patterns are listed
_MAX_PRODUCERS = {"max", "maximum"}
_MIN_PRODUCERS = {"min", "minimum"}
_CHECKS = 32  # sampled signatures checked against a tournament's leaves


@dataclass
class Block:
    """A connected component of the coupling between active switches.

    Attributes:
        members: positions in the reduced model (program order).
        kind: ``"switch"``, ``"k-way max"``, ``"k-way min"``, ``"enumerated"`` or ``"large"``.
        outer: (t, n) block values h_b over all patterns (None for a large block).
        inner: (t', n) block values realised by some direction for this block alone.
        convex: the block's piece of f'(x; .) is convex (see the module docstring).
        complete: conv(inner) = conv(outer) is proven for the block.
    """

    members: np.ndarray
    kind: str
    outer: np.ndarray | None
    inner: np.ndarray
    convex: bool = False
    complete: bool = False
    signatures: list = field(default_factory=list, repr=False)


@dataclass
class LocalSet:
    """The Clarke subdifferential at x as g0 + sum of block hulls (see the module docstring).

    Attributes:
        model: the reduced active-switch model.
        g0: (n,) the gradient with abs'(0) = 0 at every active switch.
        blocks: the blocks.
        independent: rank(A) = sum of the blocks' ranks.
        inner_exact: the inner set is contained in the Clarke subdifferential.
        exact: inner = Clarke = outer.
        linear: the active switches are piecewise-linear functions of x near x
            (:func:`piecewise_linear`), so first-order realisation is complete.
    """

    model: ActiveModel
    g0: np.ndarray
    blocks: list[Block]
    independent: bool
    inner_exact: bool
    exact: bool
    linear: bool = False

    @property
    def has_outer(self) -> bool:
        return all(b.outer is not None for b in self.blocks)

    def outer_blocks(self) -> list[np.ndarray]:
        return [b.outer for b in self.blocks]  # type: ignore[misc]

    def inner_blocks(self) -> list[np.ndarray]:
        return [b.outer if b.convex else b.inner for b in self.blocks]  # type: ignore[misc]

    def gradient(self, choice: dict[int, np.ndarray]) -> np.ndarray:
        """g(sigma) for a full signature given block by block (position -> signs)."""
        sigma = np.zeros(self.model.m)
        for bi, s in choice.items():
            sigma[self.blocks[bi].members] = s
        return self.model.gradient(sigma)


def _h(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """h(sigma) = (sigma * bhat) (I - K Sigma)^{-1} A for one block."""
    M = np.eye(len(sigma)) - K * sigma[None, :]
    w = solve_triangular(M, sigma * bhat, lower=True, unit_diagonal=True, trans="T")
    return w @ A


def _unique(rows: list[np.ndarray], sigs: list[np.ndarray]) -> tuple[np.ndarray, list]:
    if not rows:
        return np.zeros((0, 0)), []
    R = np.array(rows)
    scale = max(1.0, float(np.max(np.abs(R))))
    _, idx = np.unique(np.round(R / scale, 11), axis=0, return_index=True)
    idx = np.sort(idx)
    return R[idx], [sigs[i] for i in idx]


def _realised(A: np.ndarray, K: np.ndarray, sigma: np.ndarray) -> bool:
    """Some direction gives every switch with a nonzero row the sign sigma (signs 0: free)."""
    W = solve_triangular(np.eye(len(sigma)) - K * sigma[None, :], A, lower=True,
                         unit_diagonal=True)
    scale = float(np.max(np.abs(A), initial=0.0))
    rows = nonzero_rows(W, scale) & (sigma != 0)
    t, _ = margin(sigma[rows, None] * W[rows])
    return t > MARGIN


def _winner(H: np.ndarray, j: int, bhat: np.ndarray) -> bool:
    """Leaf j of a tournament wins strictly along some direction. The leaf values differ by
    beta (grad u_j - grad u_k), beta = 2 bhat_root for max and -2 bhat_root for min, so j
    wins (max: largest derivative; min: smallest) iff sign(bhat_root) (h_j - h_k) . d > 0
    for every other distinct leaf k (one LP). ``bhat`` sign is that of every member."""
    R = np.sign(bhat[-1]) * (H[j] - np.delete(H, j, axis=0))
    rows = nonzero_rows(R, float(np.max(np.abs(H), initial=0.0)))
    t, _ = margin(R[rows])
    return t > MARGIN


def _tournament(A: np.ndarray, K: np.ndarray, bhat: np.ndarray, rng: np.random.Generator
                ) -> tuple[list[np.ndarray], bool] | None:
    """The leaf signatures of a k-way max/min block and whether it is convex (None when K
    and bhat are not exactly those of a tournament tree). A leaf's signature has the signs
    of its root-to-leaf path and 0 elsewhere (those signs do not change the value).

    In the tournament (a + b +- |a - b|)/2 of either orientation, switch j at depth k below
    an ancestor i on i's side s (the sign of sigma_i that selects j's subtree) has
    K[i, j] = s 2^-k, non-descendants have K[i, j] = 0, and bhat_j = bhat_root 2^-depth(j);
    all of it is checked exactly before the leaves are trusted, and so is the value of
    sampled full signatures (each must be some leaf's)."""
    m = len(bhat)
    parent = np.full(m, -1)
    child: dict[tuple[int, int], int] = {}
    for j in range(m):
        later = np.flatnonzero(K[j + 1:, j] != 0)
        if later.size:
            parent[j] = p = j + 1 + int(later[0])
            key = (int(p), int(np.sign(K[p, j])))
            if key in child:
                return None
            child[key] = j
    roots = np.flatnonzero(parent < 0)
    if roots.size != 1:
        return None
    root = int(roots[0])
    depth = np.zeros(m, int)
    for j in range(m - 1, -1, -1):  # parents come later in program order
        if parent[j] >= 0:
            depth[j] = depth[parent[j]] + 1
    want = np.zeros((m, m))
    for j in range(m):
        i, below = parent[j], j
        while i >= 0:
            side = 1.0 if child.get((int(i), 1)) == below else -1.0
            want[i, j] = side * 2.0 ** -(depth[j] - depth[i])
            below, i = i, parent[i]
    scale = max(float(np.max(np.abs(K), initial=0.0)), abs(float(bhat[root])), 1e-300)
    if not (np.allclose(K, want, rtol=0, atol=1e-12 * scale) and np.allclose(
            bhat, bhat[root] * 2.0 ** -depth, rtol=1e-12, atol=1e-12 * scale)):
        return None
    leaves: list[np.ndarray] = []

    def walk(i: int, sigma: np.ndarray) -> None:
        for side in (1, -1):
            s = sigma.copy()
            s[i] = side
            if (i, side) in child:
                walk(child[(i, side)], s)
            else:
                leaves.append(s)

    walk(root, np.zeros(m))
    H = np.array([_h(A, K, bhat, s) for s in leaves])
    hscale = max(1.0, float(np.max(np.abs(H))))
    for _ in range(_CHECKS):
        h = _h(A, K, bhat, rng.choice([-1.0, 1.0], size=m))
        if np.min(np.max(np.abs(H - h), axis=1)) > 1e-9 * hscale:
            return None
    # NOTE: bhat_root = beta/2 for max (f = beta max + ...) and -beta/2 for min; the block's
    # part of f'(x; .) is beta max(...) or beta min(...), convex iff bhat_root > 0 either way.
    return leaves, bool(bhat[root] > 0)


def _kind(producers: set[str]) -> str:
    if producers <= _MAX_PRODUCERS:
        return "k-way max"
    if producers <= _MIN_PRODUCERS:
        return "k-way min"
    return "generic"


def _components(K: np.ndarray) -> list[np.ndarray]:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    m = K.shape[0]
    if m == 0:
        return []
    _, labels = connected_components(csr_matrix(K != 0), directed=True, connection="weak")
    order = np.argsort(labels, kind="stable")
    splits = np.flatnonzero(np.diff(labels[order])) + 1
    return sorted(np.split(order, splits), key=lambda c: int(c[0]))


def _block(model: ActiveModel, members: np.ndarray, producers: set[str],
           rng: np.random.Generator) -> Block:
    A = model.A[members]
    K = model.K[np.ix_(members, members)]
    bhat = model.bhat[members]
    m = members.size
    full_rank = _rank(A, strict=True) == m
    if m == 1:
        outer = np.vstack([bhat[0] * A[0], -bhat[0] * A[0]])
        return Block(members, "switch", outer, outer, bool(bhat[0] > 0), True,
                     [np.ones(1), -np.ones(1)])
    kind = _kind(producers)
    if kind != "generic":
        tour = _tournament(A, K, bhat, rng)
        if tour is not None:
            leaves, convex = tour
            outer, leaves = _unique([_h(A, K, bhat, s) for s in leaves], leaves)
            real = [i for i in range(len(leaves)) if full_rank or _winner(outer, i, bhat)]
            return Block(members, kind, outer, outer[real], convex,
                         convex or len(real) == len(leaves), [leaves[i] for i in real])
    if m > _ENUM:
        sigs = _sampled_pieces(A, K, rng)
        inner, sigs = _unique([_h(A, K, bhat, s) for s in sigs], sigs)
        return Block(members, "large", None, inner.reshape(-1, A.shape[1]), False, False, sigs)
    pats = [np.array(p) for p in product((1.0, -1.0), repeat=m)]
    outer, _ = _unique([_h(A, K, bhat, s) for s in pats], pats)
    real = [s for s in pats if full_rank or _realised(A, K, s)]
    inner, sigs = _unique([_h(A, K, bhat, s) for s in real], real)
    inner = inner.reshape(-1, A.shape[1])
    return Block(members, "enumerated", outer, inner, False,
                 full_rank or len(inner) == len(outer), sigs)


def _sampled_pieces(A: np.ndarray, K: np.ndarray, rng: np.random.Generator,
                    count: int = 16) -> list[np.ndarray]:
    """Signatures entered along random directions (realised; a few pieces of a big block)."""
    out = []
    m = A.shape[0]
    for _ in range(count):
        d = rng.standard_normal(A.shape[1])
        z = np.zeros(m)
        for i in range(m):
            z[i] = A[i] @ d + K[i, :i] @ np.abs(z[:i])
        if np.all(z != 0):
            out.append(np.sign(z))
    return out


def _rank(A: np.ndarray, strict: bool) -> int:
    """Row rank of A with unit rows: strict counts singular values <= 1e-6 as zero (never
    over-estimates); loose counts only those <= 1e-13 (never under-estimates, in practice)."""
    if A.shape[0] == 0:
        return 0
    norms = np.linalg.norm(A, axis=1)
    live = norms > 0
    if not live.any():
        return 0
    U = A[live] / norms[live, None]
    sv = np.linalg.svd(U, compute_uv=False)
    return int(np.count_nonzero(sv > (1e-6 if strict else 1e-13)))


def piecewise_linear(exp: Any, switches: np.ndarray) -> bool:
    """Are the given switching variables piecewise-linear functions of x near x?

    A slot is *curved* when some non-affine operation (anything but the affine primitives,
    ``abs``, comparisons, and mul/matmul/div with one traced operand, divisor constant) lies
    between it and x. When no given switch is curved, z is piecewise linear near x, equals
    its first-order model there, and a signature of those switches is realised iff it is
    realised to first order: enumerating first-order pieces is then complete."""
    curved: set[int] = set()
    for e in exp.eqns:
        ins = [i for i in e.inputs if type(i) is Var]
        name = e.prim.name
        affine = (name in _LINEAR or e.prim.is_switch or not ins
                  or (name in ("mul", "matmul") and len(ins) == 1)
                  or (name == "div" and type(e.inputs[1]) is not Var))
        if not affine or any(i.index in curved for i in ins):
            curved.add(e.out.index)
    slots = {exp.z_slot(exp.locate(int(i))[0]) for i in switches}
    return not (slots & curved)


def local_set(model: ActiveModel, seed: int = 0) -> LocalSet:
    """Blocks, their outer and inner candidates, and which descriptions are exact."""
    rng = np.random.default_rng(seed)
    red = model.reduced()
    metas = red.metas()
    blocks = []
    for comp in _components(red.K):
        producers = {metas[int(i)].producer for i in comp}
        blocks.append(_block(red, comp, producers, rng))
    convex = all(b.convex for b in blocks)
    independent = len(blocks) <= 1
    if not independent and not convex:
        total = _rank(red.A, strict=True)
        independent = total >= sum(_rank(red.A[b.members], strict=False) for b in blocks)
    inner_exact = convex or independent
    complete = all((b.complete or b.convex) and b.outer is not None for b in blocks)
    return LocalSet(red, red.g0.copy(), blocks, independent, inner_exact,
                    inner_exact and (convex or complete),
                    piecewise_linear(model.exp, red.active))
