"""The fast paths of the torch namespace (kinkgrad.backends._torch_fast) against NumPy and
against the plain ``torch._numpy`` functions they stand in for: the same dtype, the same
values (NaN where NaN, signed zeros), on float32/float64/int64/bool arrays, 0-d arrays,
broadcasting, Python scalars, and arrays large enough for the CPU boolean routes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kinkgrad import backends  # noqa: E402
from kinkgrad.backends import _torch_fast  # noqa: E402

PLAIN = backends._torch_plain()
BIG = (64, _torch_fast.BIG // 64 + 8)  # over the CPU boolean routes' threshold


def _fast():
    prev = backends.set_torch_fast(True)
    ns = backends._torch_numpy()
    backends.set_torch_fast(prev)
    return ns


def _np_array(shape, dtype, seed=0):
    """Values with ties, zeros of both signs, NaN and +-inf (floats), both signs (ints)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(rng.integers(-3, 4, size=shape).astype(np.float64) / 2)
    if dtype == "bool":
        return (a > 0).reshape(shape)
    if dtype == "int64":
        return (2 * a).astype(np.int64).reshape(shape)
    a = a.astype(dtype)
    flat = a.reshape(-1)
    for i, v in zip(range(0, flat.size, 5), (np.nan, np.inf, -np.inf, -0.0)):
        flat[i] = v
    return a


def _wrap(x):
    return PLAIN.asarray(torch.from_numpy(np.array(x))) if isinstance(x, np.ndarray) else x


def _same(got, want_plain, want_np):
    """got (fast) has plain's dtype and values exactly, and NumPy's dtype and values (floats
    to a few units in the last place)."""
    g = got.tensor.numpy()
    if want_plain is not None:
        p = want_plain.tensor.numpy()
        assert g.dtype == p.dtype and g.shape == p.shape
        np.testing.assert_array_equal(g, p)
    if want_np is not None:
        w = np.asarray(want_np)
        assert g.dtype == w.dtype, (g.dtype, w.dtype)
        if g.dtype.kind == "f":  # torch's and NumPy's libm may differ in the last place
            np.testing.assert_allclose(g, w, rtol=4 * np.finfo(g.dtype).eps, atol=0)
        else:
            np.testing.assert_array_equal(g, w)


def _unwrap(r):
    return r.tensor.numpy() if hasattr(r, "tensor") else np.asarray(r)


def _check(name, *args, np_fn=None, **kw):
    """ns.name(*args) fast == plain (torch._numpy) == NumPy. NumPy is skipped when np_fn is
    False (where torch._numpy's own answer differs from NumPy's, the fast path keeps
    torch._numpy's); where plain raises, fast raises the same or gives NumPy's answer."""
    fast = _fast()
    targs = [_wrap(a) for a in args]
    ref = None
    if np_fn is not False:
        try:
            with np.errstate(all="ignore"):
                ref = (np_fn or getattr(np, name))(*args, **kw)
        except TypeError:  # NumPy refuses (bool - bool): so do both
            for ns in (PLAIN, fast):
                with pytest.raises(Exception):  # noqa: B017, PT011
                    getattr(ns, name)(*targs, **kw)
            return
    try:
        want = getattr(PLAIN, name)(*targs, **kw)
    except Exception as exc:  # noqa: BLE001
        try:
            got = getattr(fast, name)(*targs, **kw)
        except type(exc):
            return
        assert ref is not None
        _same(got, None, ref)
        return
    got = getattr(fast, name)(*targs, **kw)
    if isinstance(got, tuple):
        for a, b, c in zip(got, want, ref):
            _same(a, b, c)
    else:
        _same(got, want, ref)


DTYPES = ["float32", "float64", "int64", "bool"]
SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((1, 4), (3, 1)), ((), (3, 4)), ((), ()),
          (BIG, BIG), (BIG, BIG[1:])]
BINARY = ["add", "subtract", "multiply", "maximum", "minimum", "greater", "greater_equal",
          "less", "less_equal", "equal", "not_equal"]


@pytest.mark.parametrize("name", BINARY + ["divide", "power"])
@pytest.mark.parametrize(("d1", "d2"), list(itertools.product(DTYPES, DTYPES)))
def test_binary_two_arrays(name, d1, d2):
    if name == "power" and "int64" in (d1, d2) and "float" not in d1 + d2:
        pytest.skip("integer powers with negative exponents raise")
    # torch._numpy divides integers into torch's default float32 (NumPy: float64)
    np_fn = False if name == "divide" and "float" not in d1 + d2 else None
    for s1, s2 in SHAPES:
        _check(name, _np_array(s1, d1, 1), _np_array(s2, d2, 2), np_fn=np_fn)


@pytest.mark.parametrize("name", BINARY + ["divide"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scalar", [0, 2, -1, 0.5, 0.1, 1e40, float("inf")])
def test_binary_array_and_python_scalar(name, dtype, scalar):
    if dtype == "float32" and scalar == 1e40 and name in ("maximum", "minimum", "divide",
                                                            "add", "subtract", "multiply"):
        pytest.skip("NumPy warns and overflows the scalar to inf in float32, torch too")
    for shape in [(3, 4), (), BIG]:
        a = _np_array(shape, dtype)
        _check(name, a, scalar)
        _check(name, scalar, a)


@pytest.mark.parametrize("name", ["greater", "less_equal", "equal", "subtract", "maximum"])
def test_mixed_precision_is_computed_in_the_result_dtype(name):
    """float32 0.1 against float64 0.1 differ in float64 (NumPy's result dtype) and tie in
    float32: the comparison or difference must be computed in float64; a Python 0.1 beside
    float32 is float32 (NEP 50)."""
    for shape in [(3, 4), BIG]:
        a32 = np.full(shape, 0.1, np.float32)
        a32.reshape(-1)[::3] = np.float32(0.3)
        b64 = np.full(shape[-1:], 0.1)
        _check(name, a32, b64)
        _check(name, b64, a32)
        _check(name, a32, 0.1)
        _check(name, 0.1, a32)


@pytest.mark.parametrize("name", ["greater", "equal", "add", "multiply", "maximum"])
def test_binary_other_operands_fall_back(name):
    """Integer and bool arrays with scalars, NumPy scalars, lists: torch._numpy's answer."""
    fast = _fast()
    for a, b in [(np.arange(6).reshape(2, 3), 2), (np.arange(6) > 2, 1),
                 (np.ones(3), [1.0, 2.0, 3.0]), (np.arange(3), 0.5),
                 (np.ones(3, np.float32), np.float64(0.5))]:  # the last: torch._numpy raises
        x = _wrap(a)
        try:
            want = getattr(PLAIN, name)(x, b)
        except Exception as exc:  # noqa: BLE001
            with pytest.raises(type(exc)):
                getattr(fast, name)(x, b)
            continue
        got = getattr(fast, name)(x, b)
        np.testing.assert_array_equal(_unwrap(got), _unwrap(want))
        assert _unwrap(got).dtype == _unwrap(want).dtype


@pytest.mark.parametrize("name", ["add", "greater", "matmul", "maximum"])
def test_numpy_array_operands(name):
    """A NumPy array beside a torch._numpy array: converted as torch._numpy converts it."""
    fast = _fast()
    m = np.arange(9.0).reshape(3, 3) / 2 - 2  # exact sums of products
    for a, b in [(np.ones((3, 3), np.float32), m), (m.astype(np.float32), m),
                 (np.arange(3), m.astype(np.float32))]:
        for x, y in [(a, _wrap(b)), (_wrap(a), b)]:
            got, want = getattr(fast, name)(x, y), getattr(PLAIN, name)(x, y)
            _same(got, want, getattr(np, name)(a, b))


UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "negative", "absolute", "sign", "isfinite",
         "isnan", "isinf", "tanh", "floor", "square", "signbit"]


@pytest.mark.parametrize("name", UNARY)
@pytest.mark.parametrize("dtype", DTYPES)
def test_unary(name, dtype):
    # on ints and bools (fast: falls back) torch._numpy's dtypes differ from NumPy's, and
    # torch's sign(NaN) is 0 (NumPy: NaN); the fast path keeps torch._numpy's answers
    np_fn = False if "float" not in dtype or name == "sign" else None
    for shape in [(3, 4), (), BIG]:
        _check(name, _np_array(shape, dtype), np_fn=np_fn)


AXES = [None, 0, -1, (0, 1), (1, -3)]


@pytest.mark.parametrize("name", ["sum", "max", "min", "all", "any", "count_nonzero"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_reductions(name, dtype):
    if name in ("max", "min") and dtype == "bool":
        pytest.skip("torch._numpy's amax on bool")
    for shape, axis, keepdims in itertools.product([(2, 3, 4), (8, 12, 64)], AXES,
                                                   [False, True]):
        if name in ("all", "any") and isinstance(axis, tuple):
            continue  # torch._numpy reduces over one axis only (the fast path falls back)
        a = _np_array(shape, dtype)
        _check(name, a, axis=axis, keepdims=keepdims)
    _check(name, _np_array((), dtype))


def test_matmul_where_and_factories():
    for d in ("float32", "float64"):
        for s1, s2 in [((3, 4), (4, 2)), ((2, 3, 4), (4,)), ((4,), (4, 5)), ((4,), (4,))]:
            _check("matmul", _np_array(s1, d).clip(-2, 2), _np_array(s2, d).clip(-2, 2))
    _check("matmul", np.ones((2, 3), np.float32), np.ones((3, 2)))  # mixed: falls back
    for cond in (_np_array((3, 4), "bool"), _np_array((3, 4), "float64"),
                 _np_array(BIG, "bool")):
        shape = cond.shape
        for x, y in [(_np_array(shape, "float32"), _np_array(shape, "float32", 3)),
                     (_np_array(shape, "float32"), 0), (1.5, _np_array(shape[1:], "float64"))]:
            _check("where", cond, x, y)
    import torch._numpy as tnp

    for f, dt in itertools.product(("zeros", "ones"), (None, tnp.float32, tnp.int64, float,
                                                        "float32", tnp.bool_)):
        for shape in [(2, 3), 4, (), [2, 1]]:
            np_dt = None if dt is None else (dt if isinstance(dt, (type, str)) and not
                                             hasattr(dt, "torch_dtype") else str(dt.name))
            if dt is tnp.bool_:
                np_dt = bool
            elif dt in (tnp.float32, tnp.int64):
                np_dt = dt.name
            _check(f, shape, dtype=dt, np_fn=lambda s, dtype, f=f, d=np_dt: getattr(np, f)(
                s, dtype=d))


def test_shape_functions():
    a = _np_array((2, 3, 4), "float32")
    for shape in [(6, 4), -1, (4, -1), [24], (2, 3, 4, 1)]:
        _check("reshape", a, shape)
    for axes in [None, (2, 0, 1), (-1, 0, 1), [1, 0, 2]]:
        _check("transpose", a, axes)
    for axis in [0, -1, (0, 2), (-1, 1)]:
        _check("expand_dims", a, axis)
    _check("broadcast_to", _np_array((3, 1), "float64"), (2, 3, 5))
    _check("broadcast_to", _np_array((), "float64"), 4)
    _check("swapaxes", a, 0, -1)
    b = _np_array((1, 3, 1, 4), "float64")
    for axis in [None, 0, -2, (0, 2), (-2, 0)]:
        _check("squeeze", b, axis)
    for src in [(2, 0, 1), (1, 0), (0,)]:
        _check("argsort", src, np_fn=lambda t: np.argsort(np.array(t)))
    fast = _fast()
    assert fast.size(_wrap(a)) == 24 and fast.size(_wrap(np.float64(2.0))) == 1
    assert fast.size([[1, 2], [3, 4]]) == 4


def test_asarray():
    fast = _fast()
    t = torch.arange(6.0)
    x = fast.asarray(t)
    assert x.tensor is t
    assert fast.asarray(x) is x
    import torch._numpy as tnp

    for dt in (tnp.float32, tnp.int64, tnp.float64):
        assert fast.asarray(x, dtype=dt).tensor.dtype == tnp.dtype(dt).torch_dtype
    big = _np_array(BIG, "bool")
    _check("asarray", big, dtype=tnp.float32, np_fn=lambda a, dtype: a.astype(np.float32))
    _check("asarray", [1.0, 2.0], np_fn=lambda a: np.asarray(a))


def _like(a, index):
    """index as an array of a's kind (NumPy, or torch._numpy)."""
    return index if isinstance(a, np.ndarray) else _wrap(index)


def _ops_cases():
    f, g = _np_array((3, 4), "float32"), _np_array((4,), "float32", 5)
    big, bigb = _np_array(BIG, "float64"), _np_array(BIG, "bool")
    c3 = _np_array((2, 3, 4), "float64")
    return [
        (lambda a, b: a + b, f, g), (lambda a, b: a - b, g, f), (lambda a, b: a * b, big, bigb),
        (lambda a, b: a / b, f, g), (lambda a, b: a ** 2, f, g), (lambda a, b: 2 - a, f, g),
        (lambda a, b: 1.5 / a, f, g), (lambda a, b: a @ b.T, _np_array((2, 3), "float64"),
                                       _np_array((4, 3), "float64")),
        (lambda a, b: -a, f, g), (lambda a, b: abs(a), f, g), (lambda a, b: a > 0, big, g),
        (lambda a, b: a <= b, f, g), (lambda a, b: a == b, f, g), (lambda a, b: a != b, f, g),
        (lambda a, b: a[1:, ::2], f, g), (lambda a, b: a[..., None, 0], f, g),
        (lambda a, b: a[np.array([0, 2])], f, g), (lambda a, b: a[a > 0], f, g),
        (lambda a, b: a.astype("float64"), bigb, g), (lambda a, b: a.astype(bool), f, g),
        (lambda a, b: a.reshape(4, 3), f, g), (lambda a, b: a.reshape((2, -1)), f, g),
        (lambda a, b: a.transpose(), f, g), (lambda a, b: a.transpose(1, 0), f, g),
        (lambda a, b: a.T, f, g), (lambda a, b: a.sum(axis=0), f, g),
        (lambda a, b: a.max(axis=-1, keepdims=True), f, g), (lambda a, b: a.all(), bigb, g),
        (lambda a, b: (a & b), bigb, bigb), (lambda a, b: [x for x in a][1], f, g),
        (lambda a, b: a[np.array([2, 0, 2]), np.array([1, 3, 0])], f, g),
        (lambda a, b: a[:, np.array([[1, 3], [0, 0]])], f, g),
        (lambda a, b: a[np.array([1, 0]), :, np.array([2, 3])], c3, g),
        (lambda a, b: a[:, np.array([1, 0]), np.array([2, 3])], c3, g),
        (lambda a, b: a[0, np.array([1, 0]), np.array([2, 3])], c3, g),
        (lambda a, b: a[..., np.array([1, 0])], c3, g),
        (lambda a, b: a[_like(a, np.array([1, 0])), _like(a, np.array([[2], [1]]))], c3, g),
        (lambda a, b: a[np.array([1, 0], np.int32)], c3, g),
    ]


@pytest.mark.parametrize("case", range(len(_ops_cases())))
def test_ndarray_operators(case):
    fn, a, b = _ops_cases()[case]
    ns = _fast()
    ta, tb = _wrap(a), _wrap(b)
    saved = dict(vars(type(ta)))
    want = fn(ta, tb)  # the class as torch._numpy defines it
    with backends.use_namespace(ns):
        got = fn(ta, tb)
    assert dict(vars(type(ta))) == saved  # restored
    with np.errstate(all="ignore"):
        ref = fn(a, b)
    _same(got, want, ref)


def test_setitem_and_incomparable():
    ns = _fast()
    a, v = _np_array((3, 4), "float32"), _np_array((4,), "float64")
    ro = np.array([2, 0])
    ro.flags.writeable = False
    for index, value in [((1, slice(None)), v), ((slice(None, 2), 0), 7.5), ((ro,), v),
                         ((np.array([0, 2]),), v), ((np.array([0, 2]), np.array([3, 1])), 2.0),
                         ((slice(None), np.array([1, 2])), v[:2])]:
        x, y = _wrap(a.copy()), _wrap(a.copy())
        ref = a.copy()
        with np.errstate(all="ignore"):
            ref[index] = value
        y[index] = _wrap(value)
        with backends.use_namespace(ns):
            x[index] = _wrap(value)
        np.testing.assert_array_equal(x.tensor.numpy(), y.tensor.numpy())
        np.testing.assert_array_equal(x.tensor.numpy(), ref)
    x = _wrap(a)
    with backends.use_namespace(ns):
        got = x == _wrap(np.ones(5, np.float32))
    assert got.tensor.numpy().shape == (3, 4) and not got.tensor.numpy().any()


def test_toggle_gives_the_plain_namespace():
    prev = backends.set_torch_fast(False)
    try:
        assert backends._torch_numpy() is PLAIN
    finally:
        backends.set_torch_fast(prev)
    assert backends.set_torch_fast(prev) is prev
