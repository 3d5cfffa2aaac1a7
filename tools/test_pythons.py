"""Run the test suite on every Python interpreter found (3.10 and later), each in its own
virtual environment ``.venv-py3.X`` with ``pip install -e '.[dev]'``.

PyTorch is not installed there (only the CPU build for the main ``.venv`` is pinned), so the
torch bridge (``tests/interop``) is left out and the torch-dependent tests skip. The sweep's
in-place writes depend on CPython's reference counts, and NumPy/SciPy releases differ per
Python: this is the check that the package works where ``requires-python`` says it does.

Usage: ``python tools/test_pythons.py [PYTHON ...]`` (default: ``python3.X`` on PATH and
``~/.pyenv/versions/3.X*/bin/python``). Prints one line per interpreter and exits non-zero when
one fails. ``make test-pythons`` runs it.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_MINOR = 10


def version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    major, minor = map(int, out.split())
    return major, minor


def discover() -> list[str]:
    """One interpreter per minor version >= 3.10: PATH first, then pyenv's."""
    found: dict[tuple[int, int], str] = {}
    candidates = [shutil.which(f"python3.{m}") for m in range(MIN_MINOR, 20)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python")))
    for python in candidates:
        if python is None:
            continue
        v = version_of(python)
        if v is not None and v[0] == 3 and v[1] >= MIN_MINOR and v not in found:
            found[v] = python
    return [found[v] for v in sorted(found)]


def run(cmd: list[str], log: str) -> int:
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT).returncode


def check(python: str) -> tuple[str, bool, str]:
    major, minor = version_of(python) or (0, 0)
    name = f"{major}.{minor}"
    venv = os.path.join(ROOT, f".venv-py{name}")
    log = os.path.join(venv + ".log")
    open(log, "w").close()
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py) and run([python, "-m", "venv", venv], log):
        return name, False, f"could not create {venv} (see {log})"
    if run([py, "-m", "pip", "install", "-q", "--upgrade", "pip"], log) or run(
            [py, "-m", "pip", "install", "-q", "-e", ".[dev]"], log):  # as the Makefile does
        return name, False, f"pip install failed (see {log})"
    versions = subprocess.run(
        [py, "-c", "import numpy, scipy, platform; print(platform.python_version(), "
         "numpy.__version__, scipy.__version__)"], capture_output=True, text=True).stdout.split()
    code = run([py, "-m", "pytest", "tests", "--ignore=tests/interop", "-p", "no:cacheprovider",
                "-rfE"], log)
    with open(log) as fh:
        tail = fh.read().splitlines()[-200:]
    summary = next((line for line in reversed(tail)
                    if re.search(r"\d+ (passed|failed)", line)), "no summary (see the log)")
    what = f"Python {versions[0]}, NumPy {versions[1]}, SciPy {versions[2]}" \
        if len(versions) == 3 else name
    return name, code == 0, f"{what}: {summary.strip('= ')}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pythons", nargs="*", help="interpreters (default: all found)")
    args = ap.parse_args(argv)
    pythons = args.pythons or discover()
    if not pythons:
        print("test_pythons: no Python 3.10+ interpreter found", file=sys.stderr)
        return 2
    ok = True
    for python in pythons:
        t0 = time.perf_counter()
        name, passed, line = check(python)
        ok &= passed
        print(f"{'ok  ' if passed else 'FAIL'} {name:5s} {time.perf_counter() - t0:6.0f} s  {line}",
              flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
