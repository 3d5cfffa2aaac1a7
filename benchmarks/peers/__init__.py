"""Peer solvers that ``benchmarks/optimize.py`` runs against ``kinkgrad.minimize``.

Each peer lives in its own virtual environment (its pins clash with kinkgrad's: PyGRANSO needs
``numpy<2``), created on first use by a ``*_env.py`` module here and driven through a runner
script that the peer's own interpreter executes. See :mod:`peers.pygranso_env`.
"""
