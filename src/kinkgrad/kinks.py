"""Kink policies (the declared derivative choice at kinks) and kink reports.

A *kink* is an entry of a nonsmooth primitive whose switching quantity is exactly zero:
``relu(t)`` and ``abs(t)`` at ``t == 0``, ``maximum(a, b)`` at ``a == b``, a tie in ``max`` or
``sort``, ``clip`` at a bound, ``norm`` at the zero vector. There the primitive is not
differentiable and backward AD must *choose* an element of the primitive's Clarke
subdifferential. kinkgrad makes that choice explicit and deterministic:

================  =========  ==============================================================
key               default    meaning (Clarke range of the choice)
================  =========  ==============================================================
``relu``          ``0.0``    relu'(0) = s, s in [0, 1]
``leaky_relu``    ``0.0``    slope at 0 = alpha + s (1 - alpha), s in [0, 1]
``abs``           ``0.0``    abs'(0) = s, s in [-1, 1]
``max``           "first"    ties of the reductions max/min (and of maximum/minimum between
                             two traced operands unless ``maximum`` says otherwise): the
                             first candidate gets the whole derivative, or "split" equally
``maximum``       ``None``   ties of elementwise maximum/minimum between two traced operands:
                             "first", "split", or None (follow ``max``)
``max_constant``  "relu"     maximum(x, c) / minimum(x, c) tied with a constant c: the
                             derivative s in [0, 1] of the traced operand; "relu" takes
                             ``relu`` (maximum(x, c) = c + relu(x - c))
``sort``          "first"    ties of sort: stable order, or "split" (average)
``clip``          "relu"     clip'(bound) = s, s in [0, 1]; "relu" takes ``relu`` (clip(x, lo,
                             None) = lo + relu(x - lo))
``norm``          "zero"     derivative of the Euclidean norm at 0: the zero vector (inside
                             the unit ball; never NaN)
================  =========  ==============================================================

Spelling. Under the default policy the spellings of one kink agree: ``relu(x)``,
``maximum(x, 0)``, ``maximum(0, x)``, ``-minimum(-x, 0)``, ``clip(x, 0, None)``,
``where(x > 0, x, 0)`` and ``x * (x > 0)`` all have derivative ``relu`` at 0, and
``minimum(maximum(x, lo), hi)`` agrees with ``clip(x, lo, hi)`` (tests/test_kink_spelling.py).
No policy can make *every* spelling of a function agree: relu(x) = x + relu(-x) forces
relu'(0) = 1 - relu'(0), so s = 1/2, while relu(x) = relu(relu(x)) forces s = s^2, so
s in {0, 1}. Compositions are therefore answered by ``clarke_grad`` and ``certify``, which do
not depend on the spelling. A ``where`` follows its condition: ``where(x >= 0, x, 0)`` takes
the branch x at 0 (derivative 1) because that is what the program says.

Presets (``kink_policy("torch")``, ``("jax")``, ``("min-norm")``; ``kinkgrad info`` prints
them): "torch" and "jax" reproduce what PyTorch 2.13 and JAX 0.10 return at the kinks of the
primitives they share with kinkgrad (checked against both in tests/peers), except that JAX's
Euclidean norm at 0 returns NaN where kinkgrad keeps the zero vector, and that PyTorch's
max_pool2d and ``x.max(dim)`` give a tie to one index ("first") where its ``max()``/``amax``
split; "min-norm" picks, primitive by primitive, the minimum-norm element of the primitive's
Clarke subdifferential (for leaky_relu with 0 <= alpha <= 1).

Every choice is *deterministic and agnostic* in the sense of Baumgärtner and Bethke
(arXiv 2407.09639): one fixed value, independent of where the kink occurs in the program and
of the point. Whatever the choices, backward mode returns an element of a conservative
gradient of the traced program (Bolte and Pauwels). Written with abs'(0) = c_i in [-1, 1] at
each of the m active switches, that element is the average of the 2^m selection gradients
g(sigma), sigma in {-1, 1}^m, with weights prod_i (1 + sigma_i c_i)/2: a convex combination
over every sign pattern, realised near the point or not (see kinkgrad.abs_normal.certify).
Only realised patterns give limiting gradients, so the element lies in the Clarke
subdifferential when every pattern with positive weight is realised (always under LIKQ),
and may lie outside it otherwise; ``kinkgrad.certify`` decides which.
"""

from __future__ import annotations

import contextvars
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .errors import PolicyError

__all__ = ["KinkPolicy", "kink_policy", "current_policy", "KinkReport", "KinkRecord", "PRESETS",
           "preset_table"]

_TIE_RULES = ("first", "split")

# what PyTorch 2.13 and JAX 0.10 return at each kind of kink (tests/peers checks them):
# torch: relu/abs/leaky backward use x > 0 / sign(x); maximum and max()/amax split ties;
#   clamp's mask is lo <= x <= hi (slope 1 at a bound); sort follows its (stable) indices.
# jax: relu's custom JVP is where(x > 0); leaky_relu is where(x >= 0, x, a x) (slope 1 at 0);
#   abs'(0) = 1 (JAX 0.10: the JVP selects x >= 0);
#   lax.max splits ties (_balanced_eq), reduce_max splits among the maximisers; jnp.clip is
#   minimum(maximum(x, lo), hi), so 1/2 at a bound; sort follows the stable permutation.
PRESETS: dict[str, dict[str, object]] = {
    "default": {},
    "torch": {"relu": 0.0, "leaky_relu": 0.0, "abs": 0.0, "max": "split", "maximum": "split",
              "max_constant": 0.5, "sort": "first", "clip": 1.0, "norm": "zero"},
    "jax": {"relu": 0.0, "leaky_relu": 1.0, "abs": 1.0, "max": "split", "maximum": "split",
            "max_constant": 0.5, "sort": "first", "clip": 0.5, "norm": "zero"},
    "min-norm": {"relu": 0.0, "leaky_relu": 0.0, "abs": 0.0, "max": "split",
                 "maximum": "split", "max_constant": 0.0, "sort": "split", "clip": 0.0,
                 "norm": "zero"},
}


@dataclass(frozen=True)
class KinkPolicy:
    """The derivative chosen at each kind of kink (see the module docstring for the ranges).

    A policy is both a value (pass it as ``policy=`` to ``grad`` and friends) and a context
    manager (``with kink_policy(relu=1.0): ...``).
    """

    relu: float = 0.0
    leaky_relu: float = 0.0
    abs: float = 0.0
    max: str = "first"
    maximum: str | None = None
    max_constant: float | str = "relu"
    sort: str = "first"
    clip: float | str = "relu"
    norm: str = "zero"
    _tokens: list = field(default_factory=list, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for key, lo, hi in (("relu", 0, 1), ("leaky_relu", 0, 1), ("abs", -1, 1), ("clip", 0, 1),
                            ("max_constant", 0, 1)):
            val = getattr(self, key)
            if key in ("clip", "max_constant") and val == "relu":
                continue
            if (isinstance(val, (bool, np.bool_)) or not isinstance(val, (int, float, np.number))
                    or not lo <= float(val) <= hi):
                raise PolicyError(
                    f"kink_policy({key}={val!r}): the derivative at the kink must be a number "
                    f"in the Clarke range [{lo}, {hi}]; pick a number in that interval"
                    + (' or "relu" (follow the relu choice).' if key in ("clip", "max_constant")
                       else ".")
                )
            object.__setattr__(self, key, float(val))
        for key in ("max", "sort"):
            if getattr(self, key) not in _TIE_RULES:
                raise PolicyError(
                    f"kink_policy({key}={getattr(self, key)!r}): ties are resolved by 'first' "
                    "(the first candidate gets the derivative) or 'split' (equal shares)."
                )
        if self.maximum is not None and self.maximum not in _TIE_RULES:
            raise PolicyError(
                f"kink_policy(maximum={self.maximum!r}): ties of maximum/minimum are 'first', "
                "'split', or None (follow the max rule)."
            )
        if self.norm != "zero":
            raise PolicyError(
                f"kink_policy(norm={self.norm!r}): the only supported choice for the Euclidean "
                "norm at 0 is 'zero' (the zero vector, an element of the unit ball); use "
                "kinkgrad.clarke_grad for a direction-resolved unit vector."
            )

    def replace(self, **changes: object) -> KinkPolicy:
        """A copy with some choices changed; unknown keys raise :class:`PolicyError`."""
        names = {f.name for f in dataclasses.fields(self) if not f.name.startswith("_")}
        bad = sorted(set(changes) - names)
        if bad:
            raise PolicyError(
                f"kink_policy: unknown key(s) {bad}; the keys are {sorted(names)}."
            )
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    # ------------------------------------------------------- resolved choices
    def clip_slope(self) -> float:
        """clip'(bound): the ``clip`` number, or ``relu`` when clip is "relu"."""
        return float(self.relu if self.clip == "relu" else self.clip)  # type: ignore[arg-type]

    def constant_tie_slope(self) -> float:
        """Derivative of maximum(x, c)/minimum(x, c) to the traced x at a tie with constant c."""
        s = self.relu if self.max_constant == "relu" else self.max_constant
        return float(s)  # type: ignore[arg-type]

    def maximum_rule(self) -> str:
        """Tie rule of maximum/minimum between two traced operands: "first" or "split"."""
        return self.max if self.maximum is None else self.maximum

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if not f.name.startswith("_")}

    def __enter__(self) -> KinkPolicy:
        self._tokens.append(_ACTIVE.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE.reset(self._tokens.pop())


DEFAULT_POLICY = KinkPolicy()
_ACTIVE: contextvars.ContextVar[KinkPolicy] = contextvars.ContextVar(
    "kinkgrad_policy", default=DEFAULT_POLICY
)


def current_policy() -> KinkPolicy:
    """The policy in force: the innermost ``with kink_policy(...)`` block, else the default."""
    return _ACTIVE.get()


def kink_policy(preset: str | None = None, /, **choices: object) -> KinkPolicy:
    """Declare the derivative choice at kinks; a context manager and a ``policy=`` argument.

    Keys not given are inherited from the policy in force when this is called, or, with a
    ``preset`` ("default", "torch", "jax" or "min-norm"; see the module docstring), from that
    preset: ``kink_policy("torch", relu=1.0)`` is PyTorch's choices with relu'(0) = 1.

    Examples:
        >>> import numpy as np, kinkgrad, kinkgrad.numpy as knp
        >>> with kinkgrad.kink_policy(relu=1.0):
        ...     print(kinkgrad.grad(knp.relu)(np.float64(0.0)))
        1.0
        >>> print(kinkgrad.grad(knp.relu)(np.float64(0.0)))
        0.0
    """
    if preset is None:
        return current_policy().replace(**choices)
    if preset not in PRESETS:
        raise PolicyError(
            f"kink_policy({preset!r}): unknown preset; the presets are {sorted(PRESETS)}."
        )
    return DEFAULT_POLICY.replace(**PRESETS[preset]).replace(**choices)


def preset_table() -> str:
    """Each preset's choice per key, one column per preset (printed by ``kinkgrad info``)."""
    names = list(PRESETS)
    pols = [kink_policy(n) for n in names]
    keys = [k for k in DEFAULT_POLICY.as_dict()]
    rows = [f"{'key':<14s}" + "".join(f"{n:>12s}" for n in names)]
    for k in keys:
        rows.append(f"{k:<14s}" + "".join(f"{_show(getattr(p, k)):>12s}" for p in pols))
    return "\n".join(rows)


def _show(v: object) -> str:
    return "None" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def resolve_policy(policy: KinkPolicy | None) -> KinkPolicy:
    """The policy a transformation uses: the explicit argument, else the one in force."""
    if policy is None:
        return current_policy()
    if not isinstance(policy, KinkPolicy):
        raise PolicyError(
            f"policy={policy!r}: pass a KinkPolicy, e.g. kinkgrad.kink_policy(relu=1.0)."
        )
    return policy


@dataclass(frozen=True)
class KinkRecord:
    """One program node that hit kinks: ``count`` of its ``size`` switching entries were 0."""

    index: int
    primitive: str
    var: str
    count: int
    size: int
    choice: object


@dataclass
class KinkReport:
    """Which nodes of a traced program hit a kink during a pass, and how many entries.

    Attributes:
        records: one :class:`KinkRecord` per node with at least one kink.
        nonsmooth_nodes: number of nonsmooth nodes evaluated.
    """

    records: list[KinkRecord] = field(default_factory=list)
    nonsmooth_nodes: int = 0

    @property
    def total(self) -> int:
        """Total number of kink entries hit."""
        return sum(r.count for r in self.records)

    @property
    def any(self) -> bool:
        return bool(self.records)

    def __str__(self) -> str:
        if not self.records:
            return f"no kinks hit ({self.nonsmooth_nodes} nonsmooth nodes evaluated)"
        lines = [f"{self.total} kink entries in {len(self.records)} of "
                 f"{self.nonsmooth_nodes} nonsmooth nodes:"]
        for r in self.records:
            lines.append(f"  #{r.index:<4d} {r.var:>6s} = {r.primitive:<12s} "
                         f"{r.count}/{r.size} at a kink, choice {r.choice!r}")
        return "\n".join(lines)
