"""``kinkgrad reproduce``: paper A's claims (arXiv 2206.01730), measured on real runs.

Usage::

    kinkgrad reproduce [--quick] [--out DIR] [--only NAME[,NAME...]]

Experiments (one module each, ``run(out_dir, quick) -> rows``):

``cheap``        the nonsmooth cheap gradient principle: cost-model backward ratio <= bound
                 omega for every program class, and measured T(value+grad) / T(value),
                 p = 10 .. 10^5 (:mod:`.cheap`);
``forward``      forward mode and LD derivatives grow with p, backward mode does not
                 (:mod:`.forward`);
``directional``  k directional derivatives at once vs k passes vs the matrix product, and the
                 reduction matrix product <-> directional derivatives (:mod:`.directional`);
``hardness``     SAT -> linear ReLU network: SAT solver vs MILP vs enumeration, while grad and
                 clarke_grad stay cheap (:mod:`.hardness`);
``relu0``        the ReLU'(0) study of :mod:`kinkgrad.nn.relu0` (:mod:`.relu0`);
``optimize``     kinkgrad.minimize on the ten Haarala-Miettinen-Makela problems (n = 50 in
                 ``--quick``, 200 otherwise), every run with a certified verdict
                 (:mod:`.optimize`).

The command writes ``report.md`` (tables and PNG plots) into the output folder, prints a
summary table and exits with 1 when a check failed (a row whose status is ``FAIL``, e.g. a
model ratio above its bound or a product that does not match NumPy) or an experiment raised,
0 otherwise. An experiment whose dependency is missing from the tree is reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .common import Skipped
from .report import Section, text_table, write_report

__all__ = ["main", "run_experiments", "EXPERIMENTS"]

EXPERIMENTS = ("cheap", "forward", "directional", "hardness", "relu0", "optimize")


def _files(out: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in out.iterdir()
            if p.is_file() and p.suffix in (".png", ".md") and p.name != "report.md"}


def run_one(name: str, out: Path, quick: bool) -> Section:
    """Run one experiment module and collect its rows, plots and notes into a Section."""
    mod = importlib.import_module(f"{__name__}.{name}")
    sec = Section(name=name, title=getattr(mod, "TITLE", name), claim=getattr(mod, "CLAIM", ""),
                  show_rows=getattr(mod, "SHOW_ROWS", True))
    before = _files(out)
    t0 = time.perf_counter()
    try:
        sec.rows = list(mod.run(out, quick=quick))
        sec.state = "FAIL" if sec.failures else "ok"
        try:
            sec.headline = mod.headline(sec.rows)
        except Exception as exc:  # noqa: BLE001 - a headline is cosmetic
            sec.headline = f"(no headline: {type(exc).__name__}: {exc})"
        if hasattr(mod, "notes"):
            sec.notes.append(mod.notes(sec.rows))
    except Skipped as exc:
        sec.state, sec.reason = "skipped", str(exc)
    except Exception as exc:  # noqa: BLE001 - one broken experiment must not hide the others
        sec.state, sec.reason = "error", f"{type(exc).__name__}: {exc}"
        traceback.print_exc(file=sys.stderr)
    sec.seconds = time.perf_counter() - t0
    after = _files(out)
    changed = sorted(n for n, m in after.items() if before.get(n) != m)
    sec.plots = [n for n in changed if n.endswith(".png")]
    sec.notes += [(out / n).read_text(encoding="utf-8") for n in changed if n.endswith(".md")]
    return sec


def run_experiments(names: Sequence[str], out: Path, quick: bool) -> list[Section]:
    """Run the named experiments in order with a progress bar; return their sections."""
    from .._progress import bar as progress

    out.mkdir(parents=True, exist_ok=True)
    sections = []
    bar = progress(list(names), desc="reproduce", unit="experiment", lines="step")
    for name in bar:
        bar.set_postfix_str(name)
        sections.append(run_one(name, out, quick))
    bar.close()
    return sections


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kinkgrad reproduce",
        description="Reproduce paper A (arXiv 2206.01730): cheap gradient principle, forward "
                    "vs backward mode, directional derivatives and matrix products, NP-hardness "
                    "of two subgradients, and the ReLU'(0) study. Writes report.md and PNGs.")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (about 2 minutes on 2 cores)")
    parser.add_argument("--out", default="reproduce-out", type=Path,
                        help="output folder for report.md and the plots (default: %(default)s)")
    parser.add_argument("--only", default=None, metavar="NAME[,NAME...]",
                        help="run only these experiments: " + ", ".join(EXPERIMENTS))
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kinkgrad reproduce``; returns the exit status."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    names = list(EXPERIMENTS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in EXPERIMENTS]
        if unknown:
            print(f"kinkgrad reproduce: unknown experiment(s) {', '.join(unknown)}; choose from "
                  f"{', '.join(EXPERIMENTS)}", file=sys.stderr)
            return 2
    from .. import __version__

    out: Path = args.out
    try:  # NOTE: before any experiment runs (a traceback from the first one's plot, before)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"kinkgrad reproduce: cannot create the output folder {out}: {exc.strerror}; "
              "pass --out a writable folder.", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    sections = run_experiments(names, out, args.quick)
    total = time.perf_counter() - t0
    header = (f"kinkgrad {__version__}, numpy {np.__version__}, Python "
              f"{platform.python_version()}, {os.cpu_count()} CPUs ({platform.machine()}); "
              f"mode: {'quick' if args.quick else 'full'}; experiments: {', '.join(names)}; "
              f"total {total:.1f} s.")
    write_report(out / "report.md", sections, header)
    from .report import summary_table

    print()
    print(text_table(summary_table(sections), max_width=110))
    print(f"\nreport: {out / 'report.md'} ({total:.1f} s)")
    bad = [s.name for s in sections if s.state in ("FAIL", "error")]
    if bad:
        print(f"FAILED: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0
