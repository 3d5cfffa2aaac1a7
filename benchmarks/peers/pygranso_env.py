"""PyGRANSO in its own virtual environment, for ``benchmarks/optimize.py``.

PyGRANSO 1.2.0 (the PyTorch port of GRANSO by Buyun Liang, Tim Mitchell and Ju Sun) declares no
dependencies in its wheel but imports ``torch``, ``numpy`` (1.x era code), ``scipy``, ``osqp``
(its QP solver) and, unconditionally, ``gurobipy`` (plus ``tkinter`` from the standard library,
through a stray import). It cannot share kinkgrad's environment (kinkgrad runs on NumPy 2), so
:func:`ensure_env` builds a separate venv, by default ``.venv-pygranso`` at the repository root
(git-ignored), and :func:`run_pygranso` runs ``pygranso_runner.py`` with that venv's Python.

Install recipe (exact pins, in this order; torch first so nothing else can pull another build):

1. ``python -m venv .venv-pygranso``
2. ``pip install torch==2.13.0``: the CPU build that lies on this machine's disk (never a bare
   ``torch`` or a range, which would fetch a multi-GB CUDA build);
3. ``pip install numpy==1.26.4 scipy==1.15.3 osqp==1.1.3 gurobipy==13.0.3 torch==2.13.0``;
4. ``pip install --no-deps pygranso==1.2.0``;
5. an import check, then a stamp file that records the recipe: later calls return at once while
   the stamp matches.

Usage from the repository root::

    python benchmarks/peers/pygranso_env.py                 # build the env (or check it)
    python benchmarks/peers/pygranso_env.py chained-lq 200  # build, then run one problem
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().with_name("pygranso_runner.py")
DEFAULT_ENV = ".venv-pygranso"
STAMP_NAME = "kinkgrad-pygranso-stamp.json"

TORCH_PIN = "torch==2.13.0"
DEP_PINS = ("numpy==1.26.4", "scipy==1.15.3", "osqp==1.1.3", "gurobipy==13.0.3")
PYGRANSO_PIN = "pygranso==1.2.0"
RECIPE = {"torch": TORCH_PIN, "deps": list(DEP_PINS), "pygranso": PYGRANSO_PIN, "version": 1}

# One command in the install may take long (torch is a large wheel, even from a local disk).
_PIP_TIMEOUT = 1800.0

_CHECK = """
import sys
import numpy, scipy, osqp, gurobipy, torch
from pygranso.pygranso import pygranso
from pygranso.pygransoStruct import pygransoStruct
assert numpy.__version__.startswith("1."), "numpy " + numpy.__version__
assert torch.__version__.startswith("2.13.0"), "torch " + torch.__version__
print("python", sys.version.split()[0], "numpy", numpy.__version__, "scipy", scipy.__version__,
      "osqp", osqp.__version__, "gurobipy", gurobipy.__version__, "torch", torch.__version__)
"""


class PygransoEnvError(RuntimeError):
    """Building or checking the PyGRANSO environment failed."""


def _env_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def _python_of(env: Path) -> Path:
    return env / "bin" / "python"


def _run(cmd: list[str], what: str, timeout: float = _PIP_TIMEOUT) -> str:
    """Run ``cmd``, echoing it; raise :class:`PygransoEnvError` naming ``what`` on failure."""
    shown = " ".join("<check script>" if "\n" in c else c for c in cmd)
    print("[pygranso-env] $", shown, flush=True)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PygransoEnvError(f"{what}: timed out after {timeout:.0f} s: {shown}") from exc
    except OSError as exc:
        raise PygransoEnvError(f"{what}: could not start {cmd[0]}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-4000:]).strip()
        raise PygransoEnvError(
            f"{what} failed (exit {proc.returncode}): {shown}\n--- output tail ---\n{tail}"
        )
    print(f"[pygranso-env]   ok ({time.perf_counter() - t0:.1f} s)", flush=True)
    return proc.stdout


def ensure_env(path: str | os.PathLike[str] = DEFAULT_ENV) -> str:
    """Create (once) the PyGRANSO venv at ``path`` and return its Python interpreter's path.

    ``path`` is relative to the repository root unless absolute. A stamp file inside the venv
    records the install recipe; while it matches, this returns at once. Raises
    :class:`PygransoEnvError` saying which step failed.
    """
    env = _env_dir(path)
    python = _python_of(env)
    stamp = env / STAMP_NAME
    if python.exists() and stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("recipe") == RECIPE:
                return str(python)
        except (OSError, ValueError):
            pass
        print(f"[pygranso-env] stamp in {env} is stale or unreadable: reinstalling", flush=True)

    t0 = time.perf_counter()
    print(f"[pygranso-env] building the PyGRANSO environment in {env}", flush=True)
    if not python.exists():
        # sys.executable may itself be a venv's Python: venv then builds on its base interpreter.
        _run([sys.executable, "-m", "venv", str(env)], "creating the venv", timeout=300)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    _run(pip + [TORCH_PIN], f"installing {TORCH_PIN}")
    # torch is named again so that the resolver keeps exactly this build.
    _run(pip + [*DEP_PINS, TORCH_PIN], "installing PyGRANSO's runtime dependencies")
    _run(pip + ["--no-deps", PYGRANSO_PIN], f"installing {PYGRANSO_PIN}")
    versions = _run(
        [str(python), "-c", _CHECK],
        "importing pygranso in the new venv (tkinter, from the standard library, is needed too)",
        timeout=300,
    ).strip()
    print(f"[pygranso-env]   {versions}", flush=True)
    seconds = time.perf_counter() - t0
    stamp.write_text(
        json.dumps({"recipe": RECIPE, "versions": versions, "build_seconds": round(seconds, 1)})
        + "\n"
    )
    print(f"[pygranso-env] ready in {seconds:.0f} s: {python}", flush=True)
    return str(python)


def run_pygranso(
    problem: str,
    n: int,
    maxit: int | None = None,
    timeout: float | None = None,
    *,
    seed: int | None = None,
    threads: int | None = 1,
    env_path: str | os.PathLike[str] = DEFAULT_ENV,
) -> dict[str, Any]:
    """Minimize one test problem with PyGRANSO in its venv; return the runner's JSON record.

    Never raises for a failed run: on a failed environment, a crash, a timeout (``timeout``
    seconds of wall clock for the whole subprocess) or unreadable output it returns a dict
    with ``problem``, ``n`` and an ``error`` key. ``threads`` caps torch's and BLAS's threads
    in the subprocess (``None`` leaves them alone).
    """
    base: dict[str, Any] = {"problem": problem, "n": n, "solver": "pygranso"}
    try:
        python = ensure_env(env_path)
    except PygransoEnvError as exc:
        return {**base, "error": f"environment: {exc}"}
    cmd = [python, str(RUNNER), "--problem", problem, "--n", str(n)]
    if maxit is not None:
        cmd += ["--maxit", str(maxit)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the runner must not see kinkgrad's tree
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**base, "error": f"timeout after {timeout} s", "seconds": timeout}
    except OSError as exc:
        return {**base, "error": f"could not start the runner: {exc}"}
    wall = time.perf_counter() - t0
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    record: Any = None
    if lines:
        try:
            record = json.loads(lines[-1])
        except ValueError:
            record = None
    if not isinstance(record, dict):
        tail = (proc.stdout[-1500:] + "\n" + proc.stderr[-1500:]).strip()
        return {
            **base,
            "error": f"runner exit {proc.returncode} without a JSON result line: {tail}",
            "seconds": wall,
        }
    if proc.returncode != 0 and "error" not in record:
        record["error"] = f"runner exit {proc.returncode}: {proc.stderr[-1500:].strip()}"
    record.setdefault("solver", "pygranso")
    record["subprocess_seconds"] = round(wall, 3)
    return record


def _main(argv: list[str]) -> int:
    try:
        python = ensure_env()
    except PygransoEnvError as exc:
        print(f"[pygranso-env] ERROR: {exc}", file=sys.stderr)
        return 1
    print(python)
    if len(argv) >= 2:
        maxit = int(argv[2]) if len(argv) >= 3 else None
        print(json.dumps(run_pygranso(argv[0], int(argv[1]), maxit=maxit)))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
