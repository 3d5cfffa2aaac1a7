"""Errors raised by kinkgrad.

Every error is a :class:`KinkgradError`. Each subclass docstring gives the cause, a failing
example and the fix; each message names the operation that failed and what to do instead.
"""

from __future__ import annotations

__all__ = [
    "KinkgradError",
    "UnsupportedOperationError",
    "UnknownNameError",
    "TracerBoolConversionError",
    "NonScalarOutputError",
    "ShapeError",
    "IndexRangeError",
    "NonFiniteInputError",
    "IntegerInputError",
    "NotAbsSmoothError",
    "ValueReadError",
    "PolicyError",
    "NestedTransformError",
]


class KinkgradError(Exception):
    """Base class of every error raised by kinkgrad."""


class UnsupportedOperationError(KinkgradError, TypeError):
    """A function was applied to a traced value that kinkgrad has no primitive for.

    Example: ``np.fft.fft(x)`` inside a function passed to ``kinkgrad.grad``.
    Fix: write the function with ``kinkgrad.numpy`` (``import kinkgrad.numpy as knp``) using the
    names listed by ``kinkgrad info``, or register a primitive with ``kinkgrad.extend``.
    """


class UnknownNameError(UnsupportedOperationError, AttributeError):
    """``kinkgrad.numpy.<name>`` (or ``knp.linalg.<name>``) does not exist.

    Example: ``knp.fft``. It is also an ``AttributeError``, so ``hasattr(knp, name)`` is False
    and tools that probe module attributes (pytest, pickle, inspect) keep working.
    Fix: use a name listed by ``kinkgrad info`` or register a primitive with ``kinkgrad.extend``.
    """


class TracerBoolConversionError(KinkgradError, TypeError):
    """Python control flow (``if``, ``while``, ``bool()``, ``float()``) on a traced value.

    Example: ``if x > 0: return x`` inside a traced function.
    Fix: branch with ``knp.where(x > 0, a, b)`` or use a primitive such as ``knp.relu`` or
    ``knp.maximum``; kinkgrad must see the comparison to know where the kinks are.
    """


class NonScalarOutputError(KinkgradError, ValueError):
    """``grad`` or ``value_and_grad`` was given a function whose output is not a scalar.

    Fix: reduce the output (``knp.sum``, ``knp.mean``), or use ``kinkgrad.jacobian`` /
    ``kinkgrad.vjp`` for vector outputs.
    """


class ShapeError(KinkgradError, ValueError):
    """Operands of a primitive have shapes that do not broadcast or contract.

    Fix: check the shapes printed in the message; reshape or transpose the operands.
    """


class IndexRangeError(ShapeError, IndexError):
    """An index outside an operand's shape (an IndexError too, as NumPy's).

    Fix: index within the shape printed in the message.
    """


class NonFiniteInputError(KinkgradError, ValueError):
    """A differentiated input contains NaN or infinity.

    Fix: clean the input (``np.nan_to_num``) or find where it became non-finite.
    """


class IntegerInputError(KinkgradError, TypeError):
    """A differentiated input has an integer or boolean dtype.

    Fix: convert it, e.g. ``x.astype(np.float64)``; gradients need floating-point inputs.
    """


class NotAbsSmoothError(KinkgradError, ValueError):
    """An abs-normal-form computation met an operation that is not abs-smooth at the point.

    Example: ``knp.where(x > 0, 1.0, 0.0)`` at ``x = 0`` (a jump), or ``knp.linalg.norm(x)``
    (Euclidean norm) at ``x = 0``.
    Fix: write the kink with ``knp.relu``, ``knp.abs``, ``knp.maximum``, ``knp.clip`` or a 1/inf
    norm, or evaluate at a point away from the jump.
    """


class ValueReadError(NotAbsSmoothError):
    """f read a traced value's concrete value (``knp.argmax``, ``argmin``, ``argsort``,
    ``knp.where(cond)``, ``Tracer.value``) and what it decided from it may change next to the
    point, so the traced program is not f there and no set-valued answer about f follows.

    Example: ``x[knp.argmax(x)]`` at ``x = (1, 1)`` traces as ``x[0]``, whose only gradient
    is (1, 0); f is max(x0, x1), whose Clarke subdifferential is the segment to (0, 1).
    Fix: write the choice with ``knp.max``, ``knp.min``, ``knp.sort``, ``knp.maximum`` or
    ``knp.where(cond, a, b)`` (kinks kinkgrad sees), or ask at a point away from the tie.
    """


class PolicyError(KinkgradError, ValueError):
    """An invalid kink policy value, e.g. ``relu=2.0`` (the slope at 0 must lie in [0, 1]).

    Fix: use a value inside the Clarke range printed in the message.
    """


class NestedTransformError(KinkgradError, NotImplementedError):
    """A transformation was applied to a function that already runs inside another one.

    Example: ``grad(lambda x: grad(f)(x).sum())`` (higher-order derivatives).
    Fix: kinkgrad computes first-order generalized derivatives; for second order use
    ``kinkgrad.jacobian`` of a hand-written gradient or a peer library.
    """
