"""The registry and the ``knp`` table enforce style.md 8.2: one complete record per primitive,
every ``knp`` name resolves, every nonsmooth function is a primitive, unknown names raise."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp
from kinkgrad._core.primitive import Primitive, registry
from kinkgrad.errors import UnsupportedOperationError
from kinkgrad.kinks import KinkPolicy

PRIMS = registry()
MEMBERS = ("name", "numpy_name", "policy_key", "omega", "differentiable", "is_switch",
           "nonsmooth", "impl", "cost", "jvp_cost", "vjp_cost", "switch", "select", "jvp",
           "vjp", "abs_form", "pp_params", "samples", "kink_samples")
POLICY_KEYS = set(KinkPolicy().as_dict())
# names whose function is nonsmooth: each must be a primitive, never a composite
NONSMOOTH_NAMES = ("abs", "absolute", "relu", "leaky_relu", "maximum", "minimum", "clip", "max",
                   "min", "amax", "amin", "sort", "greater", "greater_equal", "less",
                   "less_equal", "equal", "not_equal")


def _overrides(prim: Primitive, method: str) -> bool:
    return getattr(type(prim), method) is not getattr(Primitive, method)


@pytest.mark.parametrize("name", sorted(PRIMS))
def test_every_primitive_has_every_member(name):
    prim = PRIMS[name]
    for m in MEMBERS:
        assert hasattr(prim, m), f"{name} lacks {m}"
    assert prim.name == name
    assert (type(prim).__doc__ or "").strip(), f"{name}: the class needs a docstring"
    assert _overrides(prim, "impl"), f"{name}: no impl"
    assert prim.omega >= 1, f"{name}: omega {prim.omega} < 1 cannot bound cost + vjp_cost"
    assert prim.policy_key is None or prim.policy_key in POLICY_KEYS, name
    assert prim.nonsmooth == (prim.policy_key is not None or prim.is_switch)
    assert prim.samples(np.random.default_rng(0)), f"{name}: no samples for the rule tests"
    if prim.differentiable:
        assert _overrides(prim, "jvp") and _overrides(prim, "vjp"), f"{name}: missing rules"
    if prim.nonsmooth:
        assert _overrides(prim, "switch"), f"{name}: nonsmooth without switch"
        assert _overrides(prim, "select"), f"{name}: nonsmooth without select"
        assert prim.kink_samples(np.random.default_rng(0)), f"{name}: no kink_samples"
    if prim.policy_key is not None and name != "abs":
        assert _overrides(prim, "abs_form"), f"{name}: nonsmooth without abs_form"
    if prim.numpy_name is not None:  # the public call accepts NumPy-style arguments
        assert callable(prim)


@pytest.mark.parametrize("name", sorted(n for n, p in PRIMS.items() if p.numpy_name))
def test_every_numpy_name_resolves_to_its_primitive(name):
    prim = PRIMS[name]
    where = knp.linalg if name == "norm" else knp
    assert getattr(where, prim.numpy_name) is prim


def _public_names() -> list[str]:
    skip = ("annotations", "Any")  # import artefacts of the module, not part of the table
    return sorted(n for n in vars(knp) if not n.startswith("_") and n not in skip)


@pytest.mark.parametrize("attr", _public_names())
def test_every_knp_name_resolves(attr):
    obj = getattr(knp, attr)
    if inspect.ismodule(obj):
        assert obj is knp.linalg and knp.linalg.norm is PRIMS["norm"]
    elif isinstance(obj, Primitive):
        assert PRIMS.get(obj.name) is obj, f"knp.{attr} is not a registered primitive"
    elif attr in knp._COMPOSITES + knp._SORT_COMPOSITES + knp._HELPERS or \
            getattr(obj, "__module__", "") == knp.__name__:
        assert callable(obj)  # a smooth composite or a shape query (knp.shape, knp.ndim)
    else:  # a NumPy constant, dtype or array constructor, passed through unchanged
        assert obj is getattr(np, attr), f"knp.{attr} is neither a primitive nor a NumPy name"


@pytest.mark.parametrize("attr", NONSMOOTH_NAMES)
def test_nonsmooth_names_are_primitives_not_composites(attr):
    fn = getattr(knp, attr)
    assert isinstance(fn, Primitive), f"knp.{attr} is a composite; make it a primitive"
    assert fn.nonsmooth
    assert isinstance(knp.linalg.norm, Primitive) and knp.linalg.norm.nonsmooth


def test_composites_trace_to_smooth_primitives_only():
    x = np.linspace(0.5, 2.0, 6).reshape(2, 3)
    calls = {"mean": lambda a: knp.mean(a, axis=1), "square": knp.square,
             "var": lambda a: knp.var(a, axis=1, ddof=1), "std": knp.std,
             "expand_dims": lambda a: knp.expand_dims(a, 0), "squeeze": knp.squeeze,
             "ravel": knp.ravel, "swapaxes": lambda a: knp.swapaxes(a, 0, 1),
             "outer": lambda a: knp.outer(a[0], a[1]), "softmax": knp.softmax,
             "log_softmax": knp.log_softmax, "dot": lambda a: knp.dot(a, a.T),
             "asarray": knp.asarray, "array": knp.array,
             "take_along_axis": lambda a: knp.take_along_axis(a, np.argsort(x, axis=1), 1)}
    assert set(calls) == set(knp._COMPOSITES)
    for name, call in calls.items():
        prog = kinkgrad.trace(call, x)
        nonsmooth = [e.prim.name for e in prog.eqns if e.prim.nonsmooth]
        assert not nonsmooth, f"composite knp.{name} hides nonsmooth {nonsmooth}"


def test_sort_composites_trace_to_sort_and_smooth_primitives_only():
    """median/quantile/percentile/topk are linear maps of sort: sort is their only kink."""
    x = np.array([[3.0, 1.0, 2.0, 0.5], [1.0, 1.0, 4.0, 2.0]])
    calls = {"median": lambda a: knp.median(a, axis=1),
             "quantile": lambda a: knp.quantile(a, [0.25, 0.9], axis=0),
             "percentile": lambda a: knp.percentile(a, 30.0),
             "topk": lambda a: knp.topk(a, 2)}
    assert set(calls) == set(knp._SORT_COMPOSITES)
    for name, call in calls.items():
        nonsmooth = {e.prim.name for e in kinkgrad.trace(call, x).eqns if e.prim.nonsmooth}
        assert nonsmooth == {"sort"}, f"knp.{name} uses {nonsmooth}"


def test_numpy_dispatch_tables_point_into_knp():
    for table in (knp._ufunc_table(), knp._function_table()):
        for np_fn, fn in table.items():
            assert callable(np_fn) and callable(fn)
    assert knp._ufunc_table()[np.maximum] is PRIMS["maximum"]
    assert knp._function_table()[np.linalg.norm] is PRIMS["norm"]


@pytest.mark.parametrize("name", ["fft", "cumprod", "nanmedian", "partition", "nanmax"])
def test_unknown_knp_names_raise_naming_the_function(name):
    with pytest.raises(UnsupportedOperationError, match=rf"kinkgrad\.numpy\.{name}\b"):
        getattr(knp, name)


def test_unknown_linalg_names_raise():
    with pytest.raises(UnsupportedOperationError, match=r"linalg\.svd"):
        knp.linalg.svd  # noqa: B018


def test_unknown_names_are_attribute_errors_for_tools_that_probe_modules():
    assert not hasattr(knp, "fft") and not hasattr(knp.linalg, "svd")
    assert getattr(knp, "pytest_plugins", None) is None  # what pytest's collection asks
