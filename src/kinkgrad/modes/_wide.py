"""f's forward values replayed in a wider precision: the truth its computed values are
checked against (:func:`kinkgrad.rounding_error`'s measured error, and the set-valued tests'
checks in :mod:`kinkgrad.abs_normal._forward_rounding`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._traced import Traced

__all__ = ["as_float64", "nonzero_float64", "wide_errors", "wide_values"]

_WIDER = {np.dtype(np.float16): np.dtype(np.float64), np.dtype(np.float32): np.dtype(np.float64),
          np.dtype(np.float64): np.dtype(np.longdouble)}
_HEAVY = 2_000_000  # operations of one step above which long double runs too slowly
_SLICED_BITS = 160  # most bits of each operand (from its row's largest) the float64 slices hold
_LONG_BITS = np.finfo(np.longdouble).nmant  # 63 for x86's extended precision, 112 for quad
_UNDERFLOW = float(np.finfo(np.float64).smallest_subnormal)  # a rounding's least error bound


def _size(shape: tuple) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _row_scales(a: np.ndarray, b: np.ndarray, per_row: bool) -> tuple[np.ndarray, np.ndarray]:
    """Powers of 2 at least the largest |entry| of each row of ``a`` and each column of ``b``
    (a product of matrices, ``per_row``), or of each operand (1 where it is all zeros)."""
    if per_row:
        ma = np.max(np.abs(a), axis=-1, keepdims=True)
        mb = np.max(np.abs(b), axis=-2 if b.ndim > 1 else 0, keepdims=True)
    else:
        ma, mb = np.max(np.abs(a)), np.max(np.abs(b))
    return (np.ldexp(np.ones_like(ma), np.frexp(ma)[1]),
            np.ldexp(np.ones_like(mb), np.frexp(mb)[1]))


def _slices(r: np.ndarray, bits: int, count: int) -> list[np.ndarray]:
    """``count`` float64 arrays whose sum is the long double ``r`` (|r| < 1) up to
    2^-(bits count - 1): slice i is the remainder rounded to a multiple of 2^-(bits i) by
    adding and subtracting 1.5 2^(p - bits i) (each step exact in long double's p + 1 bits),
    an integer times 2^-(bits i) of size at most 2^bits. Fewer where the remainder is 0
    (float64 operands: their 53 bits from each row's largest), and None for a slice of
    zeros: the dropped ones are exactly 0."""
    # NOTE: an operand exact in float64 is cut in float64 (:func:`_narrowed`): the same
    # quantum 2^-(bits i) (ulp of sigma), the same rounding, so the same slices
    one, p = r.dtype.type(1), np.finfo(r.dtype).nmant
    out: list[np.ndarray | None] = []
    for i in range(1, count + 1):
        sigma = one.dtype.type(1.5) * np.ldexp(one, p - bits * i)
        piece = (r + sigma) - sigma
        r = r - piece
        out.append(piece.astype(np.float64) if np.any(piece) else None)
        if not np.any(r):
            break
    return out


def _narrowed(a: np.ndarray) -> np.ndarray:
    """``a`` as float64 where that is exact (a float64 operand widened: its scaling and
    slicing then run in float64's SIMD instead of long double's x87), else ``a``."""
    if a.dtype == np.float64:
        return a
    n = a.astype(np.float64)
    return n if np.array_equal(n, a) else a


def _scaled(a: np.ndarray, scale: np.ndarray, wide: Any) -> np.ndarray:
    """a / scale (powers of 2): exact, in long double (``wide``) where float64 would lose an
    entry to underflow (2^-80 in a row holding 2^1000: 2^-1081)."""
    with np.errstate(under="ignore"):  # NOTE: what the check below catches
        out = a / scale
        lost = out.dtype == np.float64 and not np.array_equal(out * scale, a)
    if lost:
        return np.asarray(wide) / scale
    return out


def _sliced_product(e: Any, args: list, out_shape: tuple) -> tuple[np.ndarray, Any] | None:
    """A bilinear step (``prim.bilinear``: a product of matrices, a contraction, a
    convolution) of long double operands, to long double's accuracy with float64 BLAS (the
    splitting of Ozaki et al.): each operand, scaled by powers of 2 (per row and column of a
    product of matrices), is cut into float64 slices of t bits, with 2 t + log2 K <= 53 for
    sums of K products, so that every product of two slices, and each of its partial sums,
    is exact in float64 whatever the order of the sums. The products of the slices whose
    weights reach 2^-T are added in long double: the dropped products and the operands'
    remainders add at most (count + 2) K 2^-T times the row's and the column's largest
    entries, with T chosen to bring that below 2^-64 K (|a| |b|) at every nonzero entry of
    |a| |b| (T at most 160: entries of |a| |b| above 2^-88 of the largest ones; the others
    are the product of the operands rounded to float64). With the unit roundoff of each
    entry. None where an operand is not finite or K exceeds 2^33."""
    a, b = (_narrowed(np.asarray(x)) for x in args)
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return None
    terms = e.prim.cost([a.shape, b.shape], out_shape, e.params) / (2 * max(_size(out_shape), 1))
    bits = (53 - int(np.ceil(np.log2(max(terms, 1.0) + 1.0)))) // 2
    if bits < 10:
        return None
    per_row = e.prim.name == "matmul"
    sa, sb = _row_scales(a, b, per_row)
    a, b = _scaled(a, sa, args[0]), _scaled(b, sb, args[1])  # NOTE: each entry below 1
    sizes = np.asarray(e.prim.impl(np.abs(a).astype(np.float64), np.abs(b).astype(np.float64),
                                   **e.params))  # |a| |b| in units of the scales (< 4x off)
    # NOTE: entries with nonzero terms far below their row's and column's largest (2^450 and
    # 2^-470 in one row: |a| |b| underflows) are beyond the slices: their float64 product
    # (unchecked), not 0
    terms_in = np.asarray(e.prim.impl((a != 0).astype(np.float64), (b != 0).astype(np.float64),
                                      **e.params)) > 0
    beyond = terms_in & (sizes < 2.0 ** (72 - _SLICED_BITS))
    small = float(np.min(sizes, initial=np.inf, where=terms_in & ~beyond))
    # NOTE: (count + 2) 2^-T <= 2^-66 small for count <= 14 (bits >= 10, T <= 160)
    count = -(-min(_SLICED_BITS, 72 + int(np.ceil(-np.log2(small)))) // bits) if np.isfinite(
        small) else 0
    pa, pb = _slices(a, bits, count), _slices(b, bits, count)
    total = np.zeros(out_shape, np.longdouble)
    for level in range(count + 1, 1, -1):  # NOTE: the smallest first
        for i in range(max(1, level - len(pb)), min(level, len(pa) + 1)):
            sa_i, sb_j = pa[i - 1], pb[level - i - 1]
            if sa_i is not None and sb_j is not None:  # NOTE: a slice of zeros adds 0
                total += np.asarray(e.prim.impl(sa_i, sb_j, **e.params), np.longdouble)
    scale = np.matmul(sa, sb) if per_row else sa * sb
    total = total * scale
    if np.any(beyond):  # NOTE: with float64's unit roundoff (their error is float64's)
        plain = np.asarray(e.prim.impl(*(np.asarray(x, np.float64) for x in args), **e.params))
        total[beyond] = plain[beyond]
        return total, np.where(beyond, _unit(np.float64), _unit(np.longdouble))
    return total, _unit(np.longdouble)


def _heavy(e: Any, args: list, v0: Any) -> bool:
    """A step whose long double replay would run far slower than its float64 one: above
    ``_HEAVY`` operations and more than 16 per entry in and out (a product of matrices, which
    BLAS runs in float64 only); elementwise steps and reductions replay in long double."""
    shapes = [np.shape(a) for a in args]
    ops = e.prim.cost(shapes, np.shape(v0), e.params)
    return ops > _HEAVY and ops > 16 * (sum(_size(s) for s in shapes) + _size(np.shape(v0)))


def _wide_step(e: Any, args: list, v0: Any) -> tuple[Any, float]:
    """One step of :func:`wide_values`: the primitive on the wide arguments; a heavy
    bilinear step of long double operands by :func:`_sliced_product`; a step without a wide
    rule (scipy's special functions) or another heavy one on them rounded to float64, then
    widened (not checked: its replay has the computed value's own rounding). With the unit
    roundoff of the precision it ran in."""
    wide = _WIDER.get(np.dtype(np.result_type(v0)), np.dtype(np.float64))
    heavy = wide != np.float64 and _heavy(e, args, v0)
    if heavy and e.prim.bilinear and len(args) == 2 and all(
            np.result_type(a).kind == "f" for a in args):  # NOTE: constants widen exactly
        got = _sliced_product(e, [np.asarray(a, wide) for a in args], np.shape(v0))
        if got is not None:
            return got
    if wide != np.float64 and not heavy:
        try:
            v = np.asarray(e.prim.impl(*args, **e.params))
            if v.dtype == wide:
                return v, _unit(wide)
        except (TypeError, ValueError, NotImplementedError):
            pass
    narrow = [np.asarray(a, np.float64) if np.result_type(a).kind == "f" else a for a in args]
    return np.asarray(e.prim.impl(*narrow, **e.params)).astype(wide), _unit(np.float64)


def _unit(dtype: Any) -> float:
    return float(np.finfo(dtype).eps) / 2


def wide_values(tr: Traced, units: dict[int, Any] | None = None,
                at: dict[int, np.ndarray] | None = None, upto: int | None = None) -> list:
    """f's forward values recomputed from the same inputs in a wider precision (float16 and
    float32 steps in float64, float64 steps in long double where it is wider), comparisons
    and indices kept as computed (the same branches): the truth the computed values are
    checked against. Long double is float64 on some platforms (arm64): float64 programs are
    then checked against themselves. Heavy products of matrices of float64 programs are
    computed from float64 slices (:func:`_sliced_product`), other heavy steps in float64.
    ``units``: filled with the unit roundoff each step's replay ran in, by its output slot
    (per entry where a heavy product's entries ran in two precisions). ``at``: other input
    values (by slot, in the wide precision) to replay f's program at; ``upto``: the number
    of equations replayed (all)."""
    vals = tr.vals
    wide = list(vals)
    for v in tr.in_vars:
        x = vals[v.index]
        if np.result_type(x).kind == "f":
            wide[v.index] = np.asarray(x).astype(_WIDER.get(np.dtype(np.result_type(x)),
                                                            np.dtype(np.float64)))
    for slot, x in (at or {}).items():
        wide[slot] = x
    with np.errstate(all="ignore"):  # NOTE: as the program's own values did, or inf
        for e in tr.eqns[:upto]:
            v0 = vals[e.out.index]
            if np.result_type(v0).kind == "f":
                wide[e.out.index], unit = _wide_step(e, e.args(wide), v0)
                if units is not None:
                    units[e.out.index] = unit
    return wide


def nonzero_float64(z_w: np.ndarray) -> np.ndarray:
    """The replay's switching values in float64, an entry that is not 0 kept off 0 (float64's
    least subnormal, with its sign): 1e300 relu(x0 1e-200 1e-200) at x0 = 1 has z = 1e-400 in
    long double, and its kink, 1 away, looked hit in both precisions."""
    z64 = np.asarray(z_w, np.float64)
    lost = (z64 == 0) & (z_w != 0)
    return np.where(lost, _UNDERFLOW * np.asarray(np.sign(z_w), np.float64), z64) if np.any(lost) \
        else z64


def as_float64(a: Any) -> Any:
    """A float array or scalar in float64 (others as they are)."""
    return np.asarray(a, np.float64) if np.result_type(a).kind == "f" else a


def wide_errors(tr: Traced, units: dict[int, Any], policy: Any, k: int = 8
                ) -> dict[int, Any]:
    """The first-order error of :func:`wide_values` along k random roundings: tangents (a
    leading axis of k) of one forward sweep in which every step's result is perturbed by its
    rounding's bound (the primitive's ``rounding`` rule, r with |fl(op) - op| <= u r: |out|,
    or a sum's or a product's terms, sum_k |a_k| |b_k| times their count's roundings) in the
    replay's unit roundoff (``units``) times random signs, the kinks taking ``policy``'s
    derivatives (their full slopes, for a size). The sum 2^70 + 1 - 2^70 - 1/2 is -1/2 in
    long double and 1/2 exactly, and its tangents are about 2^70 2^-64; (c + t) - c at
    c = 1e16 gets about u c.

    Each step's error is bounded; their sum over the steps is sampled, E[(e . s)^2] =
    ||e||^2 over the signs s, where the error itself is a signed sum at most their l1 norm:
    an estimate, not a bound (Iri's estimate of rounding errors by automatic
    differentiation, sampled), low by up to the square root of the number of steps that
    round the same way."""
    from .sweeps import _jvp_rules

    rng = np.random.default_rng(0)
    vals, tan = tr.vals, {}
    pool = np.unpackbits(np.frombuffer(rng.bytes(1 << 17), np.uint8)).view(bool)

    def signs(r: np.ndarray) -> np.ndarray:
        # NOTE: random windows of one pool of 2^20 random signs (fresh bits per entry cost
        # a third of the sweep on a 784-256-256-10 net)
        n = k * r.size
        start = int(rng.integers(pool.size))
        bits = np.resize(np.roll(pool, -start), n) if n > pool.size - start \
            else pool[start:start + n]
        return np.where(bits.reshape((k,) + r.shape), r, -r)

    with np.errstate(all="ignore"):  # NOTE: sizes; an overflow to inf is one too
        for e in tr.eqns:
            v0 = vals[e.out.index]
            if np.result_type(v0).kind != "f" or not e.prim.differentiable:
                continue
            args = e.args(vals)
            r = e.prim.rounding([as_float64(a) for a in args], as_float64(v0), e.params)
            # NOTE: + an underflow's error (at most float64's least subnormal, long double's
            # far less): a product that underflowed to 0 in both precisions has |out| = 0,
            # and x0 1e-300^17 1e300^17 is x0 (1 + 1e-15) in f
            moved = None if r is None else signs(units.get(e.out.index, 0.0) * np.broadcast_to(
                np.abs(np.asarray(r, np.float64)), np.shape(v0)) + _UNDERFLOW)
            ts = [tan.get(i.index) if hasattr(i, "index") else None for i in e.inputs]
            t = None
            if any(t is not None for t in ts):
                t = _jvp_rules(e, policy, args, v0, ts, "policy")[2]
            if t is not None and moved is not None:
                t = np.broadcast_to(t, moved.shape) + moved
            elif t is None:
                t = moved
            if t is not None:
                tan[e.out.index] = t
    return tan
