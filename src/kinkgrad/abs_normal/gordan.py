"""Gordan certificates of unrealised partial signatures, reused across an enumeration.

A partial signature is unrealised (to first order) when no d has u_j . d > 0 for all its
unit signed rows u_j = sigma_j W_j / ||W_j||; :func:`.realise.realised` proves it by a
*certificate*, a convex combination y of some of those rows with
||sum_j y_j u_j||_1 <= ``DEPENDENT`` (Gordan's alternative, to rounding): for every d in the
box -1 <= d <= 1,

    min_j u_j . d  <=  sum_j y_j u_j . d  <=  ||sum_j y_j u_j||_1 ||d||_inf  <=  DEPENDENT,

and every set of rows that contains them is unrealised as well, without an LP. In a
depth-first enumeration the same rows recur under many prefixes (a sorting network's
comparisons: x_a < x_b and x_b < x_c forbid x_c < x_a whatever else was decided), so one
certificate prunes many later nodes (a tie of ten sorted entries in R^3: 26,078 of 26,942
infeasible LPs).

Rows are matched by their values rounded to ``_DIGITS`` digits, and a candidate certificate
is re-evaluated on the current rows before it prunes, so a match within rounding can only
cost an LP, never a wrong pruning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from .lp import MARGIN
from .realise import DEPENDENT, realised
from .tournament import signature_rows

__all__ = ["GordanCache", "RealisedPatterns", "row_key"]

_DIGITS = 10  # rows equal to this many digits are looked up as the same row


def row_key(u: np.ndarray) -> bytes:
    """A 16-byte key of a unit row (rounded; -0.0 and 0.0 alike): a digest, not the row, so
    that thousands of certificates at large n stay small (a collision could only cost an
    LP: certificates are re-evaluated on the rows before they prune)."""
    return hashlib.blake2b((np.round(u, _DIGITS) + 0.0).tobytes(), digest_size=16).digest()


class GordanCache:
    """Certificates indexed by each of their rows (see the module docstring)."""

    def __init__(self) -> None:
        self._by_row: dict[bytes, dict[frozenset, tuple[list[bytes], np.ndarray]]] = {}
        self.pruned = 0

    def refutes(self, keys: list[bytes], U: np.ndarray) -> bool:
        """Whether a stored certificate lies among the rows U (keys their row keys) and
        contains the last one (a certificate among the others would have pruned the parent
        node already)."""
        return keys[-1] in self._by_row and self._among(keys[-1:], keys, U)

    def refutes_set(self, keys: list[bytes], U: np.ndarray) -> bool:
        """Whether a stored certificate lies among the rows U (any of them; for row sets
        that are not a search's prefixes)."""
        return self._among(set(keys), keys, U)

    def _among(self, via: Iterable[bytes], keys: list[bytes], U: np.ndarray) -> bool:
        """A certificate stored under a key in ``via`` whose rows are all among U and still
        combine to within DEPENDENT of 0 there."""
        present, seen = set(keys), set()
        where: dict[bytes, int] | None = None
        for k in via:
            for name, (cert_keys, y) in self._by_row.get(k, {}).items():
                if name in seen or not name <= present:
                    continue
                seen.add(name)
                if where is None:
                    where = {c: j for j, c in enumerate(keys)}
                if float(np.abs(y @ U[[where[c] for c in cert_keys]]).sum()) <= DEPENDENT:
                    self.pruned += 1
                    return True
        return False

    def learn(self, keys: list[bytes], U: np.ndarray, y: np.ndarray) -> None:
        """Store the certificate y (a convex combination of the rows U, keys their row keys,
        from :func:`.realise.realised`), on its support, if it is one."""
        support = np.flatnonzero(y > 0.0)
        if not support.size:
            return
        y = y[support] / float(y[support].sum())
        if not float(np.abs(y @ U[support]).sum()) <= DEPENDENT:
            return
        cert_keys = [keys[j] for j in support]
        name = frozenset(cert_keys)
        for k in cert_keys:
            self._by_row.setdefault(k, {})[name] = (cert_keys, y)


class RealisedPatterns:
    """Whether full signatures sigma of a block (A, K; ``levels`` of K as in
    :func:`.tournament.signature_margin`) are realised (:func:`.realise.realised` on that
    function's rows), answered without an LP where a direction an earlier LP found enters
    the piece (some d in the box with every unit row u_j . d > MARGIN) or a stored
    certificate lies among the rows. An undecided pattern counts as unrealised and sets
    ``failed``. Listing a block's 2^m patterns one LP each
    (a random nested abs/max program with 12 switches at a degenerate point: 2,052 LPs,
    2 s), most of them are answered so."""

    def __init__(self, A: np.ndarray, K: np.ndarray, levels: list[np.ndarray]) -> None:
        self.A, self.K, self.levels = A, K, levels
        self.certificates = GordanCache()
        self.directions = np.zeros((A.shape[1], 0))
        self.lps = 0
        self.failed = False  # a pattern undecided or an LP failed: some False is not proven

    def __call__(self, sigma: np.ndarray) -> bool:
        R = signature_rows(self.A, self.K, sigma, self.levels)
        R = R / np.linalg.norm(R, axis=1, keepdims=True)
        if self.directions.shape[1] and (
                np.min(R @ self.directions, axis=0, initial=np.inf) > MARGIN).any():
            return True
        keys = [row_key(r) for r in R]
        if self.certificates.refutes_set(keys, R):
            return False
        self.lps += 1
        entered, found = realised(R)
        if entered:
            self.directions = np.column_stack([self.directions, found])
            return True
        if entered is False:
            self.certificates.learn(keys, R, found)
        else:  # NOTE: rows nearly dependent (undecided) or a failed LP
            self.failed = True
        return False
