"""The public checkers of kinkgrad.testing pass on correct rules and FAIL on broken ones
(autograd's test_tests.py). Each broken primitive is registered under a unique name for
the duration of one test and removed from the registry afterwards."""

from __future__ import annotations

import numpy as np
import pytest

import kinkgrad.numpy as knp
from kinkgrad._core import primitive as core
from kinkgrad.extend import Primitive, register, resolve_signs
from kinkgrad.primitives.piecewise import Relu
from kinkgrad.primitives.smooth import Exp
from kinkgrad.testing import check_grads, check_kinks, check_transpose

X = np.array([0.3, -1.2, 0.8])


@pytest.fixture
def registered():
    """Register primitive classes for one test; remove them from the registry afterwards."""
    names: list[str] = []

    def add(cls):
        names.append(cls.name)
        return register(cls).instance

    yield add
    for n in names:
        core._REGISTRY.pop(n, None)


class ExpWrongVJP(Exp):
    """exp whose VJP is twice too large."""

    name = "test_exp_wrong_vjp"
    numpy_name = None

    def vjp(self, sel, g, args, out, params, needs):
        return (2 * g * sel,)


class ExpWrongJVP(Exp):
    """exp whose JVP adds a spurious term."""

    name = "test_exp_wrong_jvp"
    numpy_name = None

    def jvp(self, sel, tangents, args, out, params):
        return sel * tangents[0] + 0.1 * tangents[0]


class ReluIgnoresPolicy(Relu):
    """relu whose slope at 0 is always 1, whatever the policy (a wrong kink rule)."""

    name = "test_relu_ignores_policy"
    numpy_name = None

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        x = args[0]
        return (x >= 0).astype(np.result_type(x)), int(np.count_nonzero(x == 0))


class ReluVJPDisagreesAtKinks(Relu):
    """relu whose VJP uses slope 1/2 at 0 while its JVP uses the policy's slope."""

    name = "test_relu_vjp_kink"
    numpy_name = None

    def vjp(self, sel, g, args, out, params, needs):
        return (g * np.where(args[0] == 0, 0.5, sel),)


class ReluWrongSwitch(Relu):
    """relu reporting its kink at x = 1."""

    name = "test_relu_wrong_switch"
    numpy_name = None

    def switch(self, args, out, params):
        return np.asarray(args[0]) - 1.0


class ReluNoDirections(Relu):
    """relu whose directional mode ignores the direction (always the policy's slope)."""

    name = "test_relu_no_directions"
    numpy_name = None

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        return super().select(policy, args, out, params, None, "policy")


class ReluWrongAbsForm(Relu):
    """relu with the abs form of -relu(-x) = min(x, 0)."""

    name = "test_relu_wrong_abs_form"
    numpy_name = None

    def abs_form(self, args, params):
        return (args[0] - knp.abs(args[0])) * 0.5


def test_checkers_pass_on_the_correct_rules():
    f = lambda x: knp.sum(knp.exp(x) * knp.relu(x))  # noqa: E731
    check_grads(f, X)
    check_grads(f, X.astype(np.float32))
    check_transpose(f, X)
    check_transpose(f, np.array([0.0, 1.0, -2.0]))  # at a kink too
    relu = core.registry()["relu"]
    assert check_kinks(relu) == len(relu.kink_samples(np.random.default_rng(0))) > 0


def test_check_grads_fails_on_a_wrong_vjp(registered):
    prim = registered(ExpWrongVJP)
    check_grads(lambda x: knp.sum(prim(x)), X, modes=("fwd",))  # the JVP is right
    with pytest.raises(AssertionError, match=r"backward mode \(VJP\)"):
        check_grads(lambda x: knp.sum(prim(x)), X)
    with pytest.raises(AssertionError, match=r"check_transpose"):
        check_transpose(lambda x: prim(x), X)


def test_check_grads_fails_on_a_wrong_jvp(registered):
    prim = registered(ExpWrongJVP)
    check_grads(lambda x: knp.sum(prim(x)), X, modes=("rev",))
    with pytest.raises(AssertionError, match=r"forward mode \(JVP\)"):
        check_grads(lambda x: knp.sum(prim(x)), X, modes=("fwd",))
    with pytest.raises(AssertionError, match=r"forward mode \(JVP\)"):
        check_grads(lambda x: prim(x) * 2.0, X.astype(np.float32))
    with pytest.raises(AssertionError, match=r"check_transpose"):
        check_transpose(lambda x: prim(x), X)


def test_check_kinks_fails_on_a_wrong_kink_rule(registered):
    prim = registered(ReluIgnoresPolicy)
    check_grads(lambda x: knp.sum(prim(x)), X)  # right away from the kink
    check_transpose(lambda x: prim(x), np.zeros(3))  # JVP and VJP agree with each other
    with pytest.raises(AssertionError, match=r"declared choice"):
        check_kinks(prim)


def test_check_transpose_and_check_kinks_fail_on_a_vjp_wrong_at_kinks(registered):
    prim = registered(ReluVJPDisagreesAtKinks)
    check_grads(lambda x: knp.sum(prim(x)), X)
    check_transpose(lambda x: prim(x), X)
    with pytest.raises(AssertionError, match=r"check_transpose"):
        check_transpose(lambda x: prim(x), np.array([0.0, 1.0, 0.0]))
    with pytest.raises(AssertionError, match=r"VJP disagrees with JVP"):
        check_kinks(prim)


def test_check_kinks_fails_on_a_wrong_switch(registered):
    with pytest.raises(AssertionError, match=r"switch"):
        check_kinks(registered(ReluWrongSwitch))


def test_check_kinks_fails_on_a_directional_mode_ignoring_directions(registered):
    with pytest.raises(AssertionError, match=r"directional mode"):
        check_kinks(registered(ReluNoDirections))


def test_check_kinks_fails_on_a_wrong_abs_form(registered):
    with pytest.raises(AssertionError, match=r"abs_form"):
        check_kinks(registered(ReluWrongAbsForm))


class Hinge(Primitive):
    """max(1 - x, 0), a new primitive with its kink at x = 1 on the relu policy key."""

    name = "test_hinge"
    policy_key = "relu"
    c_vjp = 2
    omega = 4.0
    slope_at_kink: float | None = None  # None: the policy's -s (correct)

    def impl(self, x):
        return np.maximum(1 - x, 0)

    def switch(self, args, out, params):
        return 1 - np.asarray(args[0])

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        z = 1 - np.asarray(args[0])
        s = resolve_signs(z, None if tangents is None else -tangents[0], mode)
        at = -policy.relu if self.slope_at_kink is None else self.slope_at_kink
        return np.where(s > 0, -1.0, np.where(s < 0, 0.0, at)), int(np.count_nonzero(z == 0))

    def jvp(self, sel, tangents, args, out, params):
        return sel * tangents[0]

    def vjp(self, sel, g, args, out, params, needs):
        return (g * sel,)

    def abs_form(self, args, params):
        return (1 - args[0] + knp.abs(1 - args[0])) * 0.5

    def kink_samples(self, rng, dtype=np.float64):
        return [((np.array([1.0, 0.5, 1.0, 2.0], dtype),), {})]


class HingeWrongKink(Hinge):
    name = "test_hinge_wrong_kink"
    slope_at_kink = -0.5


def test_check_kinks_on_a_new_primitive_reads_the_policy_side_from_its_switch(registered):
    assert check_kinks(registered(Hinge)) == 1
    with pytest.raises(AssertionError, match=r"declared choice"):
        check_kinks(registered(HingeWrongKink))


def test_registry_is_restored(registered):
    registered(ExpWrongVJP)
    assert "test_exp_wrong_vjp" in core.registry()


def test_registry_was_cleaned_up():
    assert not [n for n in core.registry() if n.startswith("test_")]


class _Cube(Primitive):
    name = "test_cube_bare_vjp"
    numpy_name = None

    def impl(self, x):
        return x ** 3

    def jvp(self, sel, tangents, args, out, params):
        return 3 * args[0] ** 2 * tangents[0]

    def vjp(self, sel, g, args, out, params, needs):
        return g * 3 * args[0] ** 2  # a bare array, not a tuple: its entries were read


class _CubeShortJVP(_Cube):
    name = "test_cube_short_jvp"

    def jvp(self, sel, tangents, args, out, params):
        return np.ones(2)

    def vjp(self, sel, g, args, out, params, needs):
        return (np.ones(2),)  # the wrong shape: a raw broadcasting ValueError before


class _Mul(Primitive):
    name = "test_mul_one_cotangent"
    numpy_name = None

    def impl(self, x, y):
        return x * y

    def vjp(self, sel, g, args, out, params, needs):
        return (g * args[1],)  # one cotangent for two inputs: y's gradient came back 0


class _HingeBareSelect(Primitive):
    name = "test_hinge_bare_select"
    numpy_name = None
    policy_key = "relu"

    def impl(self, x):
        return np.maximum(1.0 - x, 0.0)

    def select(self, policy, args, out, params, tangents=None, mode="policy"):
        return np.where(args[0] < 1, -1.0, 0.0)  # not (data, count): its first entry was used

    def vjp(self, sel, g, args, out, params, needs):
        return (g * sel,)


class _NoVJP(Primitive):
    name = "test_no_vjp"
    numpy_name = None

    def impl(self, x):
        return np.sin(x)


def test_user_rules_of_the_wrong_form_are_named(registered):
    from kinkgrad import grad, jvp
    from kinkgrad.errors import KinkgradError, UnsupportedOperationError

    x = np.array([0.3, -1.2, 2.0])
    cube, short = registered(_Cube), registered(_CubeShortJVP)
    mul, hinge = registered(_Mul), registered(_HingeBareSelect)
    novjp = registered(_NoVJP)
    cases = [(lambda: grad(lambda v: knp.sum(cube(v)))(x), "vjp returned a ndarray"),
             (lambda: grad(lambda v: knp.sum(short(v)))(x), "cotangent of input 0 has shape"),
             (lambda: jvp(lambda v: short(v), (x,), (np.ones(3),)), "jvp returned a tangent"),
             (lambda: grad(lambda a, b: knp.sum(mul(a, b)), argnums=1)(x, x),
              "returned 1 cotangents"),
             (lambda: grad(lambda v: knp.sum(hinge(v)))(np.array([0.0, 1.0, 3.0])),
              "select returned"),
             (lambda: grad(lambda v: knp.sum(novjp(v)))(x), "no vjp rule")]
    for call, match in cases:
        with pytest.raises(KinkgradError, match=match):
            call()
    with pytest.raises(UnsupportedOperationError):
        grad(lambda v: knp.sum(novjp(v)))(x)


def test_an_unknown_policy_key_is_refused_at_registration():
    # "hingy" was accepted: its kinks followed no policy entry and check_kinks skipped the
    # declared-choice check
    from kinkgrad.errors import KinkgradError

    class _Hingy(_HingeBareSelect):
        name = "test_hingy_key"
        policy_key = "hingy"

    with pytest.raises(KinkgradError, match="policy_key='hingy'"):
        register(_Hingy)
    assert "test_hingy_key" not in core.registry()


class _NanVJP(Primitive):
    name = "test_nan_vjp"
    numpy_name = None

    def impl(self, x):
        return 2.0 * x

    def vjp(self, sel, g, args, out, params, needs):
        return (g * np.nan,)  # a broken rule: NaN from finite values and cotangent


def test_a_rule_giving_nan_is_named_as_such(registered):
    # reported as "the cotangent overflowed ... (a derivative such as 1/x^2 at a tiny x)"
    from kinkgrad import grad
    from kinkgrad.errors import NonFiniteInputError

    nanvjp = registered(_NanVJP)
    with pytest.raises(NonFiniteInputError, match="backward rule gave NaN"):
        grad(lambda v: knp.sum(nanvjp(v)))(np.array([1.0, 2.0]))
