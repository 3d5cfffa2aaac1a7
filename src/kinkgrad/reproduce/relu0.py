"""Experiment ``relu0``: the ReLU'(0) study of :mod:`kinkgrad.nn.relu0`.

Calls ``kinkgrad.nn.relu0.run(out_dir, quick)``, which trains the same network in float16,
float32 and float64 with relu'(0) = 0 and = 1 over several seeds, counts the kinks hit, measures
how far the two conservative gradients differ on the same batch, writes its PNG plot and a
Markdown snippet into ``out_dir``, and returns its table rows (context: Bertoin, Bolte,
Gerchinovitz, Pauwels, NeurIPS 2021, on the numerical influence of ReLU'(0)). The runner picks
up the PNG and the snippet from the folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .common import Skipped

NAME = "relu0"
TITLE = "The choice of ReLU'(0) in low precision"
CLAIM = """Beyond paper A (the question of Bertoin et al. 2021): the conservative
gradient depends on the choice relu'(0) in [0, 1] only at kinks, which are hit rarely in float64
and often in low precision. The study trains the same network with relu'(0) = 0 and = 1 in
three precisions and reports kink counts, gradient differences and test accuracy. The tables,
the comparison with the paper's findings and the plot below are the study's own report."""
SHOW_ROWS = False  # the study's Markdown snippet renders its rows


def _relu0() -> Any:
    try:
        from kinkgrad.nn import relu0
    except ImportError as exc:
        raise Skipped(f"kinkgrad.nn.relu0 (src/kinkgrad/nn/relu0.py) is not available: {exc}"
                      ) from exc
    return relu0


def rows_of(result: Any) -> list[dict]:
    """The table rows inside the study's result (a dict holding a list of row dicts, or the
    list itself)."""
    if isinstance(result, list):
        return [dict(r) for r in result]
    if isinstance(result, dict):
        for key in ("rows", "table", "results"):
            if isinstance(result.get(key), list):
                return [dict(r) for r in result[key]]
        lists = [v for v in result.values() if isinstance(v, list) and v
                 and all(isinstance(r, dict) for r in v)]
        if lists:
            return [dict(r) for r in lists[0]]
    raise TypeError(f"kinkgrad.nn.relu0.run returned {type(result).__name__} without a list of "
                    "row dicts")


def run(out_dir: Path, quick: bool = False) -> list[dict]:
    """Run the study and return its rows (its PNG and snippet are written by the study)."""
    relu0 = _relu0()
    return rows_of(relu0.run(Path(out_dir), quick))


def headline(rows: list[dict]) -> str:
    """Share of mini-batches that hit a kink, per precision (relu'(0) = 0 runs)."""
    parts = [f"{r['dtype']} {r['kink_batches_pct']:.1f}%" for r in rows
             if r.get("relu0") == 0 and "kink_batches_pct" in r]
    if not parts:
        return f"{len(rows)} configurations"
    return "mini-batches hitting a ReLU kink: " + ", ".join(parts)
