"""The ``kinkgrad`` command: ``--version``, ``info``, ``train``, ``reproduce``, ``hardness``,
``minimize``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

__all__ = ["main", "info_table"]


def info_table() -> str:
    """The dictionary of primitives: kink policy key and current choice, cost per entry,
    declared omega (backward/function bound), and the knp name; then the knp composites and
    integer helpers."""
    from ._core.primitive import registry
    from .kinks import current_policy

    pol = current_policy()
    rows = [f"{'primitive':<14s}{'knp name':<15s}{'kinks':<12s}{'choice at kink':<16s}"
            f"{'cost (1 entry)':>15s}{'omega':>7s}"]
    for name, prim in sorted(registry().items()):
        shapes: list[tuple] = [(3,), (3,)] if name in ("add", "sub", "mul", "div", "pow",
                                                      "maximum", "minimum") else [(3,)]
        params: dict = {}
        if name in ("sum", "prod", "max", "min", "logsumexp"):
            params = {"axis": (-1,), "keepdims": False}
        if name == "norm":
            params = {"ord": 2, "axis": (-1,), "keepdims": False}
        if name in ("sort", "cumsum"):
            params = {"axis": -1}
        try:
            c = prim.cost(shapes, (3,), params)
            per = f"{c / 3:g}" if name not in ("matmul",) else "2mkn"
        except Exception:  # noqa: BLE001 - info is best effort for exotic signatures
            per = "-"
        kind = ("switch" if prim.is_switch else prim.policy_key or "smooth")
        choice = repr(getattr(pol, prim.policy_key)) if prim.policy_key else "-"
        rows.append(f"{name:<14s}{(prim.numpy_name or '-'):<15s}{kind:<12s}{choice:<16s}"
                    f"{per:>15s}{prim.omega:>7g}")
    from . import numpy as knp

    rows.append("")
    rows.append("knp composites (traced as the primitives above): "
                + " ".join(sorted(knp._COMPOSITES)))
    rows.append("knp integer helpers (computed on the value, constants, no derivative): "
                + " ".join(knp._HELPERS))
    rows.append("kink policy in force: "
                + ", ".join(f"{k}={v!r}" for k, v in pol.as_dict().items()))
    from .kinks import preset_table

    rows += ["", "kink policy presets (kinkgrad.kink_policy(NAME)):", preset_table()]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="kinkgrad",
        description="Algorithmic differentiation of nonsmooth programs.",
    )
    parser.add_argument("--version", action="version", version=f"kinkgrad {__version__}")
    parser.add_argument("command", nargs="?",
                        choices=["info", "train", "reproduce", "hardness", "minimize"],
                        help="info: the dictionary of primitives; train: train a network; "
                             "reproduce: the papers' experiments; hardness FILE.cnf: two "
                             "Clarke subgradients for a DIMACS formula; minimize --problem "
                             "NAME --n N: minimize a test problem with a certified verdict")
    if not argv or argv[0] in ("-h", "--help", "--version"):
        parser.parse_args(argv)
        parser.print_help()
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "info":
        if rest in (["-h"], ["--help"]):
            print("usage: kinkgrad info\n\nPrint the dictionary of primitives (kink choices, "
                  "costs, omega) and the kink-policy presets.")
            return 0
        if rest:
            parser.error(f"info takes no arguments, got {' '.join(rest)}")
        print(f"kinkgrad {__version__} (numpy {np.__version__})")
        print(info_table())
        return 0
    if cmd == "train":
        from .nn.cli import main as train_main

        return int(train_main(rest) or 0)
    if cmd == "reproduce":
        from .reproduce import main as reproduce_main

        return int(reproduce_main(rest) or 0)
    if cmd == "hardness":
        from .hardness.cli import main as hardness_main

        return int(hardness_main(rest) or 0)
    if cmd == "minimize":
        from .optimize.cli import main as minimize_main

        return int(minimize_main(rest))
    parser.parse_args(argv)
    return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
