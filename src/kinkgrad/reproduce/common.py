"""Helpers shared by the experiments: timing, skipping, status strings and plotting.

Timing takes the median of interleaved rounds (every contender once per round), so that load
from other processes on the machine affects all contenders alike; ratios of such medians are
what the experiments report. The experiments time with BLAS limited to one thread
(:func:`single_thread`): on a small shared machine a multithreaded BLAS call waits for a busy
core and the same matrix-vector product takes 1 ms or 8 ms from one call to the next. Timings
are measurements, never assertions.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Skipped", "interleaved", "single_thread", "status", "is_failure", "pyplot", "fmt_p"]


class Skipped(Exception):  # noqa: N818 - it is a signal, not an error
    """Raised by an experiment that cannot run here (a module it needs is missing); the
    message says why, and the report shows the section as skipped."""


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int = 5, warmup: int = 1,
                min_time: float = 0.0, max_repeat: int = 200) -> dict[str, float]:
    """Median wall time in seconds of each function, timed in interleaved rounds.

    Args:
        fns: contenders by name.
        repeat: minimum number of rounds.
        warmup: untimed calls of each contender first.
        min_time: keep adding rounds (up to ``max_repeat``) until the slowest contender has
            accumulated at least this many seconds, so that fast calls are timed over many
            repetitions.
        max_repeat: upper bound on the number of rounds.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    rounds = 0
    while rounds < repeat or (rounds < max_repeat
                              and max(sum(v) for v in times.values()) < min_time):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        rounds += 1
    return {k: statistics.median(v) for k, v in times.items()}


def single_thread() -> contextlib.AbstractContextManager:
    """Context manager limiting BLAS (and OpenMP) to one thread while timing; a no-op when
    threadpoolctl is not installed."""
    return blas_threads(1)


def blas_threads(threads: int) -> contextlib.AbstractContextManager:
    """Context manager limiting BLAS (and OpenMP) to ``threads`` threads while timing; a
    no-op when threadpoolctl is not installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(threads)


def status(ok: bool, why: str = "") -> str:
    """``"ok"`` or ``"FAIL: why"`` (rows with a FAIL status make ``reproduce`` exit 1).

    Examples:
        >>> status(True), status(False, "ratio 6 > bound 5")
        ('ok', 'FAIL: ratio 6 > bound 5')
    """
    return "ok" if ok else f"FAIL: {why}" if why else "FAIL"


def is_failure(row: dict) -> bool:
    """Whether a result row records a failed check."""
    return str(row.get("status", "ok")).startswith("FAIL")


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fmt_p(p: int) -> str:
    """An input dimension as 10, 1e3, 1e5 when it is a power of ten.

    Examples:
        >>> fmt_p(10), fmt_p(100_000), fmt_p(3_000)
        ('10', '1e5', '3000')
    """
    s = str(int(p))
    if p >= 1000 and s.strip("0") == "1":
        return f"1e{len(s) - 1}"
    return s


def section_script(section: Any, doc: str, argv: list[str] | None = None) -> None:
    """The command line of a ``benchmarks/`` wrapper around one reproduce section: run it,
    print its table(s), notes and headline, and list the PNG plots it wrote."""
    import argparse
    from pathlib import Path

    from .report import split_tables, text_table

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--out", type=Path, default=Path("benchmarks") / "out",
                        help="folder for the PNG plots (default: benchmarks/out)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.time()
    rows = section.run(args.out, quick=args.quick)
    for name, table in split_tables(rows).items():
        print(f"\n{name or section.TITLE}\n")
        print(text_table(table, max_width=72))
    if hasattr(section, "notes"):
        print("\n" + section.notes(rows))
    print(f"\n{section.headline(rows)}")
    new = sorted(p.name for p in args.out.glob("*.png") if p.stat().st_mtime >= start)
    print(f"plots in {args.out}: " + ", ".join(new))
