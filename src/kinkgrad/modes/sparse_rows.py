"""Many rows of a reverse sweep at the cost of few: compressed seeding with measured supports.

The row of a seed (a unit cotangent at one entry of one slot) is the cotangent that reaches
the kept slots, i.e. one row of the Jacobian of that entry with respect to the kept values.
One batched reverse sweep with r seeds costs r sweeps and holds r dense cotangents of every
value: O(r x program size), quadratic when there is a row per switch and a switch per
variable (a chained function at n = 10^4: 5.7 s per stationarity test).

**Compression.** When the rows of a group G have pairwise disjoint supports, ONE sweep seeded
at all of G returns their sum, and each row is read off on its own columns (Curtis, Powell
and Reid's idea, applied to rows). The supports are not known in advance; they are measured
by NaN propagation: a quiet NaN survives every product (by 0 too) and every sum, so a sweep
seeded with NaN at a set S of rows is NaN at (a superset of) the union of their supports.
With B = ceil(log2 |G|), the 2B NaN sweeps "rows of G whose bit b is 1" and "... is 0" tell
for every column whether no row of G reaches it, exactly one does (its index is read from
the bits), or two or more do (they differ in some bit b, so both sweeps of bit b reach it).
A group without a shared column is disjoint, and its numeric sweep is exact: a column owned
by row i receives no contribution of another row j (that contribution would have carried
j's NaN there), so the sum IS row i there, the same floating-point operations plus exact
zeros. A nonzero on a column no NaN reached would contradict this; the group then falls
back to plain sweeps.

**Groups.** Seeds are grouped by slot and, within a slot, by the residue of their entry
mod 4 (vectorized programs put neighbouring switches at neighbouring entries), or, in a
slot with two or more axes, by their parities along every axis (an image stencil's) when
all those groups are disjoint, else by the index along the first axis (one sample of a
batch); a group that
shares a column is split in two (residues mod 8, 16, ...). Plain batched sweeps take the
rows of shared groups of at most ``_SMALL`` rows, of a level of tests that would cost more
than half the plain sweeps of the rows it tests or take the probes past 1/8 of the rows
(so a miss costs at most 1/8 more than plain sweeps), and every row when a sample of rows
shows dense supports (compression cannot pay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._core.csr import dense_to_csr
from .sweeps import reverse_sweep

__all__ = ["RowStats", "bit_probes", "group_owners", "owners", "plain_rows", "probe_count",
           "reverse_rows"]

_MIN_ROWS = 32  # fewer seeds: plain batched sweeps (measuring supports cannot pay)
_GROUPS = 4  # first guess: residue classes mod 4 within each seed slot
_SMALL = 4  # a shared group this small gets plain sweeps (2 log2 4 + 1 = 5 rows > 4)
_SAMPLE = 8  # rows whose supports are measured one by one to detect dense rows
_BUDGET = 8  # NaN probes beyond the sample: at most 1/8 of the rows (the cost of a miss)
_BARREN = 2  # consecutive levels without a disjoint group: the residue guess is not working
_DENSE = 0.125  # median sampled support above this fraction of the columns: all plain
_SWEEP_FLOATS = 1 << 25  # float64 entries one batched sweep may hold (256 MiB)


@dataclass
class RowStats:
    """What :func:`reverse_rows` spent: ``rows`` asked, sweep rows run (NaN probes,
    compressed numeric rows, plain rows) and the number of disjoint groups found."""

    rows: int = 0
    probe_rows: int = 0
    compressed_rows: int = 0
    plain_rows: int = 0
    groups: int = 0

    @property
    def sweep_rows(self) -> int:
        return self.probe_rows + self.compressed_rows + self.plain_rows


class _Sweeper:
    """Batched reverse sweeps whose rows are sums of seeds, in chunks that fit the memory
    bound; returns each kept slot's cotangents as dense (rows, size) arrays."""

    def __init__(self, eqns: list, vals: list, slots: np.ndarray, entries: np.ndarray,
                 keep: list[int], policy: Any, selections: dict | None,
                 columns: list[np.ndarray | None] | None = None) -> None:
        self.eqns, self.vals, self.policy, self.selections = eqns, vals, policy, selections
        self.slots, self.entries, self.keep = slots, entries, keep
        self.columns = columns if columns is not None else [None] * len(keep)
        self.sizes = [int(np.size(vals[k])) if c is None else int(c.size)
                      for k, c in zip(keep, self.columns)]
        per_row = sum(int(np.size(v)) for v in vals if v is not None)
        self.chunk = int(max(1, min(1024, _SWEEP_FLOATS // max(per_row, 1))))

    def run(self, rows: list[np.ndarray], fill: float) -> list[np.ndarray]:
        """Sweep rows (each an array of seed ids, seeded with ``fill``); per kept slot an
        array (len(rows), size), or for NaN seeds (probes) its ``isnan`` mask (a NaN probe's
        values are read only as reached / not reached: 1 byte, not 8, per entry; 956 probes
        of a 10^5-item max held 3 GB of float rows)."""
        probe = bool(np.isnan(fill))
        out = [np.zeros((len(rows), s), bool if probe else float) for s in self.sizes]
        for lo in range(0, len(rows), self.chunk):
            part = rows[lo: lo + self.chunk]
            for dst, got in zip(out, self._chunk(part, fill)):
                if got is not None:
                    dst[lo: lo + len(part)] = np.isnan(got) if probe else got
        return out

    def singles(self, ids: np.ndarray, fill: float = 1.0) -> list[np.ndarray]:
        """:meth:`run` with one seed per row: the seeds ``ids`` each on their own."""
        return self.run([ids[i: i + 1] for i in range(ids.size)], fill)

    def _chunk(self, rows: list[np.ndarray], fill: float) -> list[np.ndarray | None]:
        r = len(rows)
        which = np.concatenate([np.full(len(ids), k) for k, ids in enumerate(rows)])
        ids = np.concatenate(rows)
        seeds: dict[int, np.ndarray] = {}
        for slot in np.unique(self.slots[ids]):
            on = self.slots[ids] == slot
            arr = np.zeros((r,) + tuple(np.shape(self.vals[slot])))
            arr.reshape(r, -1)[which[on], self.entries[ids[on]]] = fill
            seeds[int(slot)] = arr
        # NaN probes: NaN in, NaN out, no error state to report (numeric sweeps unchanged)
        quiet = {"invalid": "ignore"} if np.isnan(fill) else {}
        with np.errstate(**quiet):
            ct = reverse_sweep(self.eqns, self.vals, seeds, self.policy, keep=set(self.keep),
                               selections=self.selections)
        got: list[np.ndarray | None] = []
        for slot, cols in zip(self.keep, self.columns):
            c = ct.get(slot)
            if c is None:
                got.append(None)
                continue
            C = np.broadcast_to(c, (r,) + tuple(np.shape(self.vals[slot]))).reshape(r, -1)
            got.append(C if cols is None else C[:, cols])
        return got


def plain_rows(eqns: list, vals: list, slots: np.ndarray, entries: np.ndarray,
               keep: list[int], policy: Any, selections: dict | None = None
               ) -> list[np.ndarray]:
    """The same rows as :func:`reverse_rows`, dense (one array (rows, size) per kept slot),
    by plain batched sweeps: for a handful of rows, where sparse matrices cost more than
    the sweep."""
    sw = _Sweeper(eqns, vals, np.asarray(slots, np.int64), np.asarray(entries, np.int64),
                  keep, policy, selections)
    return sw.singles(np.arange(sw.slots.size))


def reverse_rows(eqns: list, vals: list, slots: np.ndarray, entries: np.ndarray,
                 keep: list[int], policy: Any, selections: dict | None = None,
                 on_rows: Callable[[int], Any] | None = None,
                 columns: list[np.ndarray | None] | None = None
                 ) -> tuple[list[sp.csr_matrix], RowStats]:
    """The rows of the seeds (unit cotangent at flat entry ``entries[i]`` of slot
    ``slots[i]``) at the kept slots: per kept slot a CSR matrix (len(slots), size), equal to
    what one batched reverse sweep with those seeds gives (see the module docstring).

    Args:
        eqns, vals: the program and its values.
        slots, entries: the seeds, one per row.
        keep: the slots whose cotangents are read (the columns).
        columns: per kept slot, the flat entries read (None: all); only those are columns.
        policy, selections: as for :func:`~kinkgrad.modes.sweeps.reverse_sweep`.
        on_rows: called with the number of rows done, as they are done (a progress bar).
    """
    slots = np.asarray(slots, dtype=np.int64)
    entries = np.asarray(entries, dtype=np.int64)
    r = slots.size
    sw = _Sweeper(eqns, vals, slots, entries, keep, policy, selections, columns)
    stats = RowStats(rows=r)
    if r < _MIN_ROWS and r <= sw.chunk:  # a few rows: one plain sweep, CSR straight from it
        stats.plain_rows = r
        got = sw.singles(np.arange(r))
        if on_rows is not None:
            on_rows(r)
        return [sp.csr_matrix(C) for C in got], stats
    parts: list[list] = [[] for _ in keep]
    plain: list[np.ndarray] = []
    found: list[tuple[np.ndarray, list]] = []
    try:
        if r < _MIN_ROWS or _dense(sw, stats):
            plain.append(np.arange(r))
        else:
            found, rest = _disjoint_groups(sw, stats)
            plain.extend(rest)
    except (ArithmeticError, ValueError, np.linalg.LinAlgError):
        # NOTE: no rule is known to reject a NaN cotangent; one that did (a linear solve
        # checking its right-hand side) leaves every row to the plain sweeps
        found, plain = [], [np.arange(r)]
    _compressed(sw, found, parts, stats, plain)
    if on_rows is not None and found:
        on_rows(r - sum(g.size for g in plain))
    ids = np.concatenate(plain) if plain else np.zeros(0, np.int64)
    if not found and np.array_equal(ids, np.arange(r)):  # NOTE: every row plain, in order
        return _in_order(sw, r, stats, on_rows), stats  # (dense rows: MXHILB's tests)
    for lo in range(0, ids.size, sw.chunk):
        block = ids[lo: lo + sw.chunk]
        stats.plain_rows += block.size
        for k, C in enumerate(sw.singles(block)):
            flat = np.flatnonzero(C)
            i, j = np.divmod(flat, C.shape[1])
            parts[k].append((block[i], j, C.reshape(-1)[flat]))
        if on_rows is not None:
            on_rows(block.size)
    mats = []
    for k, size in enumerate(sw.sizes):
        if parts[k]:
            rows, cols, data = (np.concatenate(p) for p in zip(*parts[k]))
        else:
            rows = cols = np.zeros(0, np.int64)
            data = np.zeros(0)
        mats.append(sp.csr_matrix((data, (rows, cols)), shape=(r, size)))
    return mats, stats


def _in_order(sw: _Sweeper, r: int, stats: RowStats, on_rows: Callable[[int], Any] | None
              ) -> list[sp.csr_matrix]:
    """Rows 0 .. r - 1 by plain batched sweeps, each chunk's CSR built from its dense
    cotangents (:func:`~kinkgrad._core.csr.dense_to_csr`) and stacked, with no (row,
    column, value) triples sorted back into rows: the 254 tests of a bundle run on MXHILB
    at n = 1000, 27 -> 18 s."""
    blocks: list[list[sp.csr_matrix]] = [[] for _ in sw.sizes]
    for lo in range(0, r, sw.chunk):
        block = np.arange(lo, min(lo + sw.chunk, r))
        stats.plain_rows += block.size
        for k, C in enumerate(sw.singles(block)):
            blocks[k].append(dense_to_csr(C))
        if on_rows is not None:
            on_rows(block.size)
    return [sp.vstack(b, format="csr") if b else sp.csr_matrix((0, size))
            for b, size in zip(blocks, sw.sizes)]


def _dense(sw: _Sweeper, stats: RowStats) -> bool:
    """Whether sampled rows have supports so large that no useful group is disjoint (the
    median: a tournament's few top-level rows reach everything, its many others two columns)."""
    r = sw.slots.size
    pick = np.unique(np.linspace(0, r - 1, min(_SAMPLE, r)).astype(np.int64))
    got = sw.singles(pick, np.nan)
    stats.probe_rows += pick.size
    total = sum(sw.sizes)
    support = sum(np.count_nonzero(C, axis=1) for C in got)
    return bool(np.median(support) > _DENSE * max(total, 1))


def probe_count(size: int) -> int:
    """NaN sweeps that test a group of ``size`` rows: two per bit of a local index."""
    return 2 * max(1, int(np.ceil(np.log2(size))))


def bit_probes(group: np.ndarray) -> list[np.ndarray]:
    """The NaN probes that test ``group``: per bit b of a local index, the members whose bit
    b is 1, then those whose bit b is 0 (:func:`owners` reads them in this order)."""
    local = np.arange(group.size)
    out = []
    for b in range(probe_count(group.size) // 2):
        on = (local >> b) & 1 == 1
        out.extend((group[on], group[~on]))
    return out


def _disjoint_groups(sw: _Sweeper, stats: RowStats
                     ) -> tuple[list[tuple[np.ndarray, list]], list[np.ndarray]]:
    """Groups proven disjoint, each with its column owners per kept slot (local index,
    -1 where no row of the group reaches), and the rows left to plain sweeps.

    A group is the seeds of one slot whose entries are q mod m (m = ``_GROUPS`` first; for
    a slot of two or more axes, first the seeds of one leading index: a sample of a batch,
    whose units touch disjoint weights of their layer); a shared group is split into q and
    q + m mod 2m (entries, not positions among the seeds: a subset of a chained function's
    switches keeps their spacing). A level of tests runs
    only while it costs at most half the plain sweeps of the rows it tests, and all levels
    together at most 1/``_BUDGET`` of the rows, and not after ``_BARREN`` levels in a row
    without a disjoint group (a batch of a ReLU network: residue groups of its switches mix
    the samples of a unit, which share the unit's weights, until the modulus passes the
    width; 6,048 probes for 8,193 rows before these caps, 256 after)."""
    budget = max(4 * _SAMPLE, sw.slots.size // _BUDGET)
    pending: list[tuple[np.ndarray, int]] = []
    found: list[tuple[np.ndarray, list]] = []
    for slot in np.unique(sw.slots):
        ids = np.flatnonzero(sw.slots == slot)
        shape = np.shape(sw.vals[slot])
        if len(shape) >= 2 and shape[0] > 1:  # one group per leading index (a sample),
            # unless the groups of equal parities along every axis are disjoint already
            # (an image's stencil: a leading index is a row, whose neighbours share pixels;
            # 8,192 plain rows of total variation at 64 x 64 before, 160 probes after)
            at = np.unravel_index(sw.entries[ids], shape)
            parity = sum((a % 2) << k for k, a in enumerate(at))
            whole = _whole(sw, stats, [ids[parity == q] for q in np.unique(parity)])
            if whole is not None:
                found.extend(whole)
                continue
            lead = sw.entries[ids] // (int(np.prod(shape)) // shape[0])
            pending.extend((ids[lead == q], 1) for q in np.unique(lead))
        else:
            pending.extend((ids[sw.entries[ids] % _GROUPS == q], _GROUPS)
                           for q in range(_GROUPS))
    plain: list[np.ndarray] = []
    barren = 0  # consecutive levels in which no tested group was disjoint
    while pending:
        found.extend((g, [None] * len(sw.keep)) for g, _ in pending if g.size == 1)
        test = [(g, m) for g, m in pending if g.size > 1]
        cost = sum(probe_count(g.size) for g, _ in test)
        if 2 * cost > sum(g.size for g, _ in test) or stats.probe_rows + cost > budget \
                or barren >= _BARREN:
            plain.extend(g for g, _ in test)
            break
        rows = [probe for g, _ in test for probe in bit_probes(g)]
        got = sw.run(rows, np.nan) if rows else []
        stats.probe_rows += len(rows)
        pending = []
        barren += 1
        for (g, m), owned in zip(test, group_owners([g for g, _ in test], got)):
            if owned is not None:
                found.append((g, owned))
                barren = 0
            elif g.size <= _SMALL:
                plain.append(g)
            else:
                lo = sw.entries[g] % (2 * m) < m
                pending.extend((part, 2 * m) for part in (g[lo], g[~lo]) if part.size)
    return found, plain


def _whole(sw: _Sweeper, stats: RowStats, groups: list[np.ndarray]
           ) -> list[tuple[np.ndarray, list]] | None:
    """The groups with their owners when every one of them is disjoint (one level of NaN
    probes, counted), else None."""
    if any(g.size < 2 for g in groups) or \
            2 * sum(probe_count(g.size) for g in groups) > sum(g.size for g in groups):
        return None
    rows = [probe for g in groups for probe in bit_probes(g)]
    got = sw.run(rows, np.nan)
    stats.probe_rows += len(rows)
    owned = group_owners(groups, got)
    return None if any(o is None for o in owned) else list(zip(groups, owned))


def group_owners(groups: list[np.ndarray], got: list[np.ndarray]) -> list[list | None]:
    """Per group, :func:`owners` of its stretch of the NaN probes ``got`` (per kept slot,
    the isnan masks of every group's :func:`bit_probes`, in the groups' order)."""
    out, at = [], 0
    for g in groups:
        b = probe_count(g.size)
        out.append(owners([C[at: at + b] for C in got], g.size))
        at += b
    return out


def owners(probes: list[np.ndarray], size: int) -> list[np.ndarray] | None:
    """Per kept slot, the owner (local index) of every column from a group's NaN probes
    (their isnan masks; rows: bit 0 set, bit 0 clear, bit 1 set, ...), -1 where none
    reaches; None when some column is reached by two rows (or the bits name no row of the
    group)."""
    result = []
    for nan in probes:
        ones, zeros = nan[0::2], nan[1::2]
        if np.any(ones & zeros):
            return None
        reached = np.any(ones | zeros, axis=0)
        own = (ones * (1 << np.arange(ones.shape[0]))[:, None]).sum(axis=0)
        if np.any(own[reached] >= size):
            return None
        result.append(np.where(reached, own, -1))
    return result


def _compressed(sw: _Sweeper, found: list[tuple[np.ndarray, list]], parts: list[list],
                stats: RowStats, plain: list[np.ndarray]) -> None:
    """One numeric sweep per disjoint group; each column's value goes to its owner."""
    if not found:
        return
    got = sw.run([g for g, _ in found], 1.0)
    stats.compressed_rows += len(found)
    stats.groups += len(found)
    for t, (g, owned) in enumerate(found):
        rows = []
        for C, own in zip(got, owned):
            v = C[t]
            j = np.flatnonzero(v)
            if own is None:  # a single row owns every column
                rows.append((np.full(j.size, g[0]), j, v[j]))
                continue
            if np.any(own[j] < 0):  # a value where no NaN went: not disjoint after all
                rows = None
                break
            rows.append((g[own[j]], j, v[j]))
        if rows is None:
            plain.append(g)
            continue
        for k, trip in enumerate(rows):
            parts[k].append(trip)
