"""Golden prints of small Programs (jaxpr-like, one line per equation): a change in what is
traced, in the names of primitives or in how parameters print shows up here."""

from __future__ import annotations

import textwrap

import numpy as np

import kinkgrad
import kinkgrad.numpy as knp

W = np.arange(6.0).reshape(2, 3)
B = np.array([1.0, -1.0])


def golden(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def test_relu_layer_with_constants():
    prog = kinkgrad.trace(lambda x: knp.sum(knp.relu(W @ x + B)), np.ones(3))
    assert str(prog) == golden("""
        { lambda c0:f64[2,3] c1:f64[2] ; a:f64[3]. let
            b:f64[2] = matmul c0 a
            c:f64[2] = add b c1
            d:f64[2] = relu c
            e:f64[] = sum[axis=(-1),keepdims=False] d
          in (e) }
        """)


def test_reductions_over_axes_in_float32():
    f = lambda x: knp.max(x, axis=1) - knp.min(x, axis=0, keepdims=True).sum()  # noqa: E731
    assert str(kinkgrad.trace(f, np.ones((2, 3), np.float32))) == golden("""
        { lambda ; a:f32[2,3]. let
            b:f32[2] = max[axis=(-1),keepdims=False] a
            c:f32[1,3] = min[axis=(-2),keepdims=True] a
            d:f32[] = sum[axis=(-2,-1),keepdims=False] c
            e:f32[2] = sub b d
          in (e) }
        """)


def test_where_on_a_traced_comparison_clip_and_slices():
    def f(x):
        return knp.where(x > 0, x, 0.1 * x).sum() + knp.clip(x, -1.0, 1.0)[1:] @ x[:2]

    assert str(kinkgrad.trace(f, np.ones(3))) == golden("""
        { lambda ; a:f64[3]. let
            b:bool[3] = greater a 0
            c:f64[3] = mul 0.1 a
            d:f64[3] = where b a c
            e:f64[] = sum[axis=(-1),keepdims=False] d
            f:f64[3] = clip[lo=-1,hi=1] a
            g:f64[2] = getitem[1:] f
            h:f64[2] = getitem[:2] a
            i:f64[] = matmul g h
            j:f64[] = add e i
          in (j) }
        """)


def test_several_inputs_and_outputs():
    def f(x, y):
        n1 = knp.linalg.norm(x, ord=1)
        return n1, knp.sort(knp.concatenate([x, y]))[::2], knp.leaky_relu(y, 0.2)

    assert str(kinkgrad.trace(f, np.ones(3), np.ones(2))) == golden("""
        { lambda ; a:f64[3] b:f64[2]. let
            c:f64[] = norm[ord=1,axis=(-1,)] a
            d:f64[5] = concatenate[axis=-1] a b
            e:f64[5] = sort[axis=-1] d
            f:f64[3] = getitem[::2] e
            g:f64[2] = leaky_relu[alpha=0.2] b
          in (c f g) }
        """)


def test_float16_stack_logsumexp_mean():
    f = lambda x: knp.logsumexp(knp.stack([x, -x]), axis=0).mean()  # noqa: E731
    assert str(kinkgrad.trace(f, np.ones(2, np.float16))) == golden("""
        { lambda ; a:f16[2]. let
            b:f16[2] = neg a
            c:f16[2,2] = stack[axis=-2] a b
            d:f16[2] = logsumexp[axis=(-2),keepdims=False] c
            e:f16[2] = mul d 0.5
            f:f16[] = sum[axis=(-1),keepdims=False] e
          in (f) }
        """)  # a float16 mean divides first (its sum could overflow float16)


def test_integer_arguments_are_baked_in_as_constants():
    f = lambda x, k: knp.sum(x[k] ** 2)  # noqa: E731
    assert str(kinkgrad.trace(f, np.ones(4), np.array([0, 2]))) == golden("""
        { lambda ; a:f64[4]. let
            b:f64[2] = getitem[int64[2]] a
            c:f64[2] = pow b 2
            d:f64[] = sum[axis=(-1),keepdims=False] c
          in (d) }
        """)


def test_plain_numpy_calls_print_as_the_same_primitives():
    f = lambda x: np.sum(np.maximum(x, 0.0) * np.exp(x))  # noqa: E731
    assert str(kinkgrad.trace(f, np.ones(2))) == golden("""
        { lambda ; a:f64[2]. let
            b:f64[2] = maximum a 0
            c:f64[2] = exp a
            d:f64[2] = mul b c
            e:f64[] = sum[axis=(-1),keepdims=False] d
          in (e) }
        """)


def test_annotated_print_and_repr():
    prog = kinkgrad.trace(lambda x: knp.sum(knp.abs(x)), np.ones(3))
    assert prog.pretty(annotate={0: "1 kink", 1: "cost 3"}) == golden("""
        { lambda ; a:f64[3]. let
            b:f64[3] = abs a                                          # 1 kink
            c:f64[] = sum[axis=(-1),keepdims=False] b                 # cost 3
          in (c) }
        """)
    assert repr(prog) == "<Program: 1 inputs, 2 equations>"


def test_trace_passes_keyword_arguments_as_constants() -> None:
    f = lambda x, axis=-1, scale=1.0: knp.sum(knp.relu(x) * scale, axis=axis)  # noqa: E731
    x = np.array([[1.0, -2.0], [3.0, 0.5]])
    prog = kinkgrad.trace(f, x, axis=0, scale=2.0)
    np.testing.assert_allclose(prog(x), [8.0, 1.0])  # the keywords are baked in
    assert "axis=(-2)" in str(prog) and len(prog.invars) == 1
