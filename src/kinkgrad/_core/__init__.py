"""Private core: the Primitive base class and registry, the tracer, Programs, pytrees.

The package is built in layers, lowest first. A module imports only from its own layer or a
lower one, at module level and inside functions alike (``tests/test_layering.py`` parses this
table and checks every import statement). What an upper layer adds to a lower one is bound
when the upper layer is imported: ``kinkgrad.numpy`` attaches the traced array's methods and
operators to :class:`~kinkgrad._core.tracer.Tracer`, as JAX attaches its array methods.

====  ==================================  ===================================================
rank  modules                             what they hold
====  ==================================  ===================================================
0     errors, kinks, _progress            the error classes; the kink policy and report;
                                          progress bars
1     _core, backends, debugging          registry, tracer, Program, pytrees, cost model of a
                                          Program; the array backends (NumPy, torch, CuPy);
                                          ``debug_print`` of traced values
2     primitives, extend                  the dictionary of primitives; the API to add one
3     numpy                               ``knp``: the table of primitives and composites
4     modes, cost                         grad, vjp, jvp, jacobian and their sweeps;
                                          ``kinkgrad.cost`` of a function
5     abs_normal                          abs-normal forms, certify, clarke_grad, stationarity
6     optimize, problems                  minimize; the test problems
7     __init__                            the public facade ``kinkgrad`` (re-exports only)
8     hardness, interop, nn, testing      applications of the public API
9     reproduce                           the papers' experiments
10    cli, __main__                       the ``kinkgrad`` command (and ``python -m kinkgrad``)
====  ==================================  ===================================================
"""
