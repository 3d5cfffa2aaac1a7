"""PyTorch bridge: kinkgrad programs from torch models, certificates for PyTorch's gradient,
and guaranteed Clarke gradients computed with torch on the model's device.

A model is traced with ``torch.fx``. The supported layers, losses and functions are listed in
one place, :data:`SUPPORTED` (``_fx_ops``, extended in ``_fx_extra``), which every
:class:`~kinkgrad.errors.UnsupportedOperationError` prints with the layer it refused.

Kink convention: PyTorch's backward takes relu'(0) = 0, leaky_relu'(0) = PReLU'(0) = the
negative slope, ELU'(0) = alpha, abs'(0) = 0, slope 1 at a bound of clamp/clip but 0 at a
bound of Hardtanh/ReLU6, the first maximiser of a max-pool window and of ``x.max(dim)``, an
even split among the tied entries of ``amax``/``amin``/``max()`` and ``torch.maximum``/
``minimum``. The translated function carries no policy of its own: ``kinkgrad.grad`` of it
makes the choices of the kink policy in force. kinkgrad's default policy agrees with PyTorch
on relu, abs and leaky_relu at 0 and on Hardtanh/ReLU6 bounds, but not at a clamp bound
(slope 0, PyTorch 1) nor at an ``amax``/``max()``/``maximum`` tie (the first maximiser gets
all, PyTorch splits). ``kinkgrad.grad`` of the translation returns PyTorch's vector under
``kinkgrad.kink_policy("torch")``, or under ``kinkgrad.kink_policy("torch", max="first")``
when the model max-pools or calls ``x.max(dim)`` (``_to_knp.torch_policy(graph)`` picks the
one; a model with ties of both kinds at once matches neither). :func:`certify_torch` applies
that policy itself, checks the agreement (``agrees``) and certifies PyTorch's vector, an
element of a conservative gradient, as a Clarke gradient when it can.

Examples:
    >>> import numpy as np, torch, kinkgrad
    >>> from kinkgrad.interop.torch import to_kinkgrad
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
    ...                             torch.nn.Linear(4, 2)).double()
    >>> f, params = to_kinkgrad(model, torch.nn.CrossEntropyLoss())
    >>> sorted(params)
    ['0.bias', '0.weight', '2.bias', '2.weight']
    >>> x, y = np.ones((5, 3)), np.array([0, 1, 0, 1, 1])
    >>> g = kinkgrad.grad(f)(params, x, y)
    >>> g["0.weight"].shape
    (4, 3)
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

import kinkgrad

from ..errors import KinkgradError
from ..kinks import KinkReport
from ._api import lookup
from ._checks import check_batch, forward_errors, require_numpy_dtypes
from ._distributed import check_distributed, mean_over_ranks
from ._dual import RankOne, dense, dual_forward, needs_tangent
from ._fx import SUPPORTED, TorchGraph, build_graph
from ._to_knp import make_function, to_numpy, torch_policy

__all__ = ["to_kinkgrad", "torch_program", "certify_torch", "clarke_grad_torch",
           "TorchCertificate", "TorchClarkeInfo", "SUPPORTED"]

_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graph(model: torch.nn.Module, loss_fn: Callable) -> TorchGraph:
    """The traced graph, cached per (model, loss_fn, training mode); parameters refreshed."""
    try:
        ref = weakref.ref(loss_fn)
    except TypeError:
        ref = None
    per_model = _GRAPHS.setdefault(model, {})
    key = (id(loss_fn), model.training)
    hit = per_model.get(key)
    if hit is None or ref is None or hit[0]() is not loss_fn:
        graph = build_graph(model, loss_fn)
        if ref is not None:
            per_model[key] = (ref, graph)
    else:
        graph = hit[1]
    graph.params = dict(model.named_parameters())
    return graph


def to_kinkgrad(model: torch.nn.Module, loss_fn: Callable) -> tuple[Callable, dict]:
    """Translate ``loss_fn(model(x), y)`` into a kinkgrad function of the parameters.

    Returns ``(f, params)``: ``f(params, x, y)`` computes the loss with ``kinkgrad.numpy``
    (``x`` and ``y`` NumPy arrays, or torch tensors, which ``f`` converts to NumPy; integer
    labels stay constants. Pass NumPy arrays to keep kinkgrad's engine, whose array backend
    follows its inputs, on NumPy), and
    ``params`` is a dict of NumPy arrays (the model's dtype) keyed by the names of
    ``model.named_parameters()``. So ``kinkgrad.grad(f)(params, x, y)`` is the gradient with
    respect to the parameters and ``kinkgrad.trace(f, params, x, y, argnums=0)`` the program.

    Kink convention: ``f`` takes the kink policy in force when it is differentiated, so
    ``kinkgrad.grad(f)`` returns PyTorch's vector only under ``kinkgrad.kink_policy("torch")``
    (with ``max="first"`` for max-pooling and ``x.max(dim)``; :func:`certify_torch` applies it).
    Under kinkgrad's default policy it differs at a clamp bound (slope 0 against PyTorch's 1)
    and at an ``amax`` tie (first maximiser against PyTorch's split); see the module docstring.

    Raises:
        UnsupportedOperationError: a layer or function outside :data:`SUPPORTED`.
    """
    require_numpy_dtypes(model, "to_kinkgrad")
    f = make_function(build_graph(model, loss_fn))
    params = {n: p.detach().cpu().numpy().copy() for n, p in model.named_parameters()}
    return f, params


def torch_program(model: torch.nn.Module, loss_fn: Callable, batch: tuple) -> kinkgrad.Program:
    """The kinkgrad :class:`~kinkgrad.Program` of the loss at ``batch``, whose inputs are the
    parameters (a dict keyed by parameter name; the batch is baked in as constants)."""
    f, params = to_kinkgrad(model, loss_fn)
    x, y = check_batch(batch, loss_fn, "torch_program")
    return kinkgrad.trace(f, params, to_numpy(x), to_numpy(y), argnums=0)


def _torch_grad(model: torch.nn.Module, loss_fn: Callable, x: Any, y: Any
                ) -> tuple[float, dict[str, np.ndarray]]:
    """PyTorch's own value and gradient (plain backward), as NumPy arrays by name. The
    model's buffers (batch-norm running statistics) are left as they were."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    saved = {n: b.clone() for n, b in model.named_buffers()}
    try:
        loss = loss_fn(model(x), y)
        grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    finally:  # after the backward, which may read them
        with torch.no_grad():
            for n, b in model.named_buffers():
                b.copy_(saved[n])
    out = {}
    for (n, p), g in zip(named, grads):
        out[n] = np.zeros(tuple(p.shape), to_numpy(p).dtype) if g is None else to_numpy(g)
    return float(loss.detach()), out


def _as_tensors(model: torch.nn.Module, batch: tuple, where: str, loss_fn: Any = None
                ) -> tuple[torch.Tensor, Any]:
    """The batch as tensors on the model's device; refuses what no gradient can come from."""
    x, y = check_batch(batch, loss_fn, where, grad=True)  # see _checks.py
    p = next(model.parameters())
    x = torch.as_tensor(x, device=p.device)
    if x.is_floating_point() and x.dtype != p.dtype:
        raise KinkgradError(f"{where}: the batch is {str(x.dtype).removeprefix('torch.')} but "
                            f"the parameters are {str(p.dtype).removeprefix('torch.')}; convert "
                            "one of them (x.to(dtype) or model.to(dtype)) first.")
    if y is not None:
        y = torch.as_tensor(y, device=p.device)
    return x, y


# ---------------------------------------------------------------------- certificates
@dataclass
class TorchCertificate:
    """Whether PyTorch's gradient at a batch is a certified Clarke gradient.

    Attributes:
        certified: True when the vector PyTorch's backward returns is shown to lie in the
            Clarke subdifferential of the loss (as a function of the parameters): by
            kinkgrad's abs-smooth condition (``by == "condition"``), or by the LP membership
            test ``kinkgrad.in_clarke`` (``by == "lp"``).
        reason: why, in words.
        active_kinks: the active kinks as kinkgrad's certificate reports them.
        kinks_by_layer: number of kink entries per layer of the torch forward pass (layer names
            as in the fx graph, e.g. ``"1"`` for ``model[1]``); where PyTorch had to choose.
        agrees: PyTorch's gradient equals kinkgrad's plain AD vector under PyTorch's
            choices (``kink_policy("torch")``, ``max="first"`` with max-pooling/``max(dim)``).
        max_abs_diff: the largest entrywise difference between the two.
        in_clarke: result of the LP membership test when it was run, else None.
        torch_grad: PyTorch's gradient (NumPy arrays by parameter name).
        kinkgrad_grad: kinkgrad's plain AD gradient of the translated program (that policy)
        report: kinkgrad's own certificate (``kinkgrad.certify``).
    """

    certified: bool
    reason: str
    active_kinks: Any
    kinks_by_layer: dict[str, int]
    agrees: bool
    max_abs_diff: float
    in_clarke: bool | None
    torch_grad: dict[str, np.ndarray] = field(repr=False)
    kinkgrad_grad: dict[str, np.ndarray] = field(repr=False)
    report: Any = field(default=None, repr=False)
    by: str | None = None


def _api(name: str) -> Callable:
    fn = lookup(name)
    if fn is None:
        raise KinkgradError(f"kinkgrad.{name} is not available in this build (the abs-normal "
                            "layer, kinkgrad.abs_normal, is missing).")
    return fn


def _tolerance(dtype: Any) -> tuple[float, float]:
    """(rtol, atol) for PyTorch's gradient against kinkgrad's, both in ``dtype``: the same
    choices at kinks, different summation orders (float16: about ten units of roundoff)."""
    return {np.dtype(np.float64): (1e-9, 1e-11), np.dtype(np.float32): (2e-4, 1e-5)}.get(
        np.dtype(dtype), (1e-2, 1e-4))


def certify_torch(model: torch.nn.Module, loss_fn: Callable, batch: tuple,
                  membership: bool = True, limit: int = 1024) -> TorchCertificate:
    """Is PyTorch's own gradient of ``loss_fn(model(x), y)`` at ``batch`` a Clarke gradient?

    Steps: (1) PyTorch's backward gives g; (2) the model is translated (:func:`to_kinkgrad`)
    and kinkgrad's plain AD vector under PyTorch's choices (``kink_policy("torch")``, with
    ``max="first"`` when it max-pools or calls ``x.max(dim)``) is checked to equal g;
    (3) ``kinkgrad.certify`` decides whether that vector is a certified Clarke gradient
    (the abs-smooth condition on the active kinks); (4) if not, and ``membership``,
    the LP test ``kinkgrad.in_clarke`` decides whether g lies in the Clarke subdifferential
    (exponential in the number of active kinks in the worst case: use small batches).

    Float rounding: the kinks are those of the torch forward pass; where NumPy's and torch's
    roundings differ the kink sets can differ, which the result reports (``agrees``).

    Args:
        model, loss_fn: the model and ``loss_fn(model(x), y) -> scalar`` (see
            :func:`to_kinkgrad` for what is supported).
        batch: ``(x, y)``.
        membership: run the LP membership test when the condition does not certify.
        limit: cap on the realised signatures the membership test enumerates
            (``EnumerationLimitError`` when it cannot decide within it).

    Returns:
        A :class:`TorchCertificate`; ``kinks_by_layer`` says where PyTorch had to choose.
    """
    require_numpy_dtypes(model, "certify_torch")
    x, y = _as_tensors(model, batch, "certify_torch", loss_fn)
    f, params = to_kinkgrad(model, loss_fn)  # first: its dropout masks are the forward's
    by_layer = _kinks_by_layer(model, loss_fn, x, y)  # (leaves torch's generator alone)
    with torch.enable_grad():  # a gradient was asked for, also inside torch.no_grad()
        loss, g_t = _torch_grad(model, loss_fn, x, y)
    xn, yn = to_numpy(x), to_numpy(y)

    def fp(p: dict) -> Any:
        return f(p, xn, yn)

    pol = torch_policy(f.graph)  # PyTorch's choices at kinks
    _, g_k, rep = kinkgrad.value_and_grad(fp, report=True, policy=pol)(params)
    cert = _api("certify")(fp, params, policy=pol)
    diff = max((float(np.max(np.abs(g_k[n] - g_t[n]), initial=0.0)) for n in g_t), default=0.0)
    rtol, atol = _tolerance(next(iter(params.values())).dtype)
    scale = max((float(np.max(np.abs(g_t[n]), initial=0.0)) for n in g_t), default=0.0)
    agrees = diff <= atol + rtol * scale
    same_kinks = _kink_total(rep) == sum(by_layer.values())
    inside = None
    if agrees and cert.certified:
        certified, by = True, "condition"
        why = ("PyTorch's gradient equals kinkgrad's plain AD vector (the same choices at "
               f"kinks) and kinkgrad certifies it: {cert.reason}")
    elif cert.condition == "LIKQ" and same_kinks:  # NOTE: LIKQ covers ANY choice at them
        certified, by = True, "condition"
        why = ("LIKQ holds at the kinks PyTorch met, which certifies every choice at them, "
               f"PyTorch's included: {cert.reason}")
    elif membership:
        inside = bool(_api("in_clarke")(fp, params, g_t, limit=limit))
        certified, by = inside, "lp"
        why = (f"kinkgrad's condition does not certify it ({cert.reason}); the LP membership "
               f"test finds PyTorch's gradient {'inside' if inside else 'OUTSIDE'} the Clarke "
               "subdifferential")
    else:
        certified, by = False, None
        why = f"not certified: {cert.reason}"
    if not agrees:
        why += (f"; NOTE PyTorch's gradient differs from kinkgrad's AD vector by {diff:.3g}")
    if not same_kinks:
        why += (f"; NOTE torch's forward hit {sum(by_layer.values())} kink entries, NumPy's "
                f"{_kink_total(rep)} (different rounding)")
    where = {k: v for k, v in by_layer.items() if v}
    if where and not certified:
        why += f"; kinks by layer: {where}"
    return TorchCertificate(certified, why, cert.active_kinks, by_layer, agrees, diff, inside,
                            g_t, g_k, cert, by)


def _kink_total(rep: KinkReport) -> int:
    return int(rep.total)


def _kinks_by_layer(model: torch.nn.Module, loss_fn: Callable, x: Any, y: Any
                    ) -> dict[str, int]:
    graph = _graph(model, loss_fn)
    with torch.no_grad(), forward_errors("certify_torch"):
        _, st = dual_forward(graph, x, y, [])
    return st.finish().kinks


# ---------------------------------------------------------------------- Clarke gradient
@dataclass
class TorchClarkeInfo:
    """How :func:`clarke_grad_torch` resolved the kinks.

    Attributes:
        loss: the loss value at the batch.
        kinks: kink entries hit, per layer (fx node name).
        unresolved: kink entries whose tangents were 0 along every direction used (they keep
            the default choice; see :func:`clarke_grad_torch` for why that is harmless).
        directions: the parameter directions used, in lexicographic order (dicts by name
            over the trainable parameters that reach a kink; the others do not move), as
            dense tensors (made on first access from ``factors``).
        factors: the same directions as drawn: a :class:`~kinkgrad.interop._dual.RankOne`
            ``u ⊗ v`` for each weight of a rank-one direction, dense tensors otherwise.
    """

    loss: float
    kinks: dict[str, int]
    unresolved: dict[str, int]
    factors: list[dict[str, Any]] = field(repr=False)

    @functools.cached_property
    def directions(self) -> list[dict[str, torch.Tensor]]:
        return [{n: dense(t) for n, t in d.items()} for d in self.factors]

    @property
    def total_kinks(self) -> int:
        return sum(self.kinks.values())

    @property
    def total_unresolved(self) -> int:
        return sum(self.unresolved.values())


def _direction(params: dict[str, torch.Tensor], gen: torch.Generator, used: set[str],
               kind: str) -> dict:
    """A random direction in the parameters ``used`` (trainable ones that reach a kink); the
    others stay fixed (moving them would change no kink). ``kind="dense"``: standard normal
    entries. ``kind="rank1"``: each parameter of two or more axes moves along ``u ⊗ v`` with
    standard normal ``u`` (output axis) and ``v`` (the other axes); vectors stay dense."""

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen, device=params[n].device,
                           dtype=params[n].dtype)

    out: dict[str, Any] = {}
    for n, p in params.items():
        if n in used:
            out[n] = (RankOne(randn(p.shape[0]), randn(*p.shape[1:]))
                      if kind == "rank1" and p.dim() >= 2 else randn(*p.shape))
    return out


@torch.enable_grad()  # a gradient was asked for, also inside torch.no_grad()
def clarke_grad_torch(model: torch.nn.Module, loss_fn: Callable, batch: tuple,
                      seed: int | None = None, set_grad: bool = False,
                      max_directions: int = 2, direction: str = "rank1",
                      all_reduce: bool = False
                      ) -> tuple[dict[str, torch.Tensor], TorchClarkeInfo]:
    """A guaranteed Clarke gradient of ``loss_fn(model(x), y)`` with respect to the
    parameters, computed with torch operations on the model's device.

    One forward pass computes, where a kink needs it, the tangent of each value along a
    random parameter direction d (hand-written rules for Linear/Conv2d/arithmetic/shape ops,
    ``torch.func.jvp`` for other smooth functions): a nonsmooth op first counts its kinks and
    asks for tangents only if it has one, and only for the samples that hit one (where every
    op up to it acts sample by sample), so a batch that hits few kinks costs about plain
    value+gradient. By default d moves each weight matrix (or kernel) along a random rank-one
    ``u ⊗ v``, so the weight's share of a pre-activation's tangent, ``x dW^T = (x v) u^T``,
    costs a matrix-vector product, not a matrix product. Each kink (a pre-activation
    exactly 0, a max-pool tie, an ``abs`` or ``clamp`` at its switch) is resolved by the sign
    of its tangent: relu'(0) = 1 if the tangent is positive else 0, the tied maximiser with
    the largest tangent. Then ONE backward pass through those slopes. Where a tangent is
    exactly 0 the pass is repeated with a second random direction as a lexicographic
    tie-break (up to ``max_directions``).

    Returns an element of the Clarke subdifferential (a limiting, Bouligand, gradient): the
    slopes are those of the piece the curve t -> params + t d enters for small t > 0, so the
    result is the gradient at nearby points params + t d of differentiability (for
    abs-smooth losses; with probability one over d). A kink still unresolved after all
    directions has a switching value whose gradient on that piece is orthogonal to every
    direction drawn, hence (with probability one) zero, so its choice does not change the
    result.

    Why random directions suffice: a kink whose switching value z has gradient g != 0 on the
    selected piece stays unresolved only if <g, d> = 0. For Gaussian d (``"dense"``) that has
    probability 0; for ``"rank1"``, <g, d> = sum over weights of ``u^T G v`` plus the bias
    terms, a polynomial in independent Gaussian factors that is not identically zero when
    g != 0, so its zero set has measure zero as well.

    Cost, for matrix-bound layers with kinks in every layer, in matrix products of the size
    of one layer's ``x W^T``: plain value+gradient does 3 per layer (2 for the first, whose
    input needs no gradient). The tangent ``dx W^T + x dW^T`` adds 1 per layer after the
    first with ``"rank1"`` (the ``x dW^T`` part is a matrix-vector product), about 4/3 of
    plain; with ``"dense"`` it adds 2 per layer (1 for the first), about 5/3. Layers after
    the last kink need no tangent at all. Each nonsmooth op synchronises once with the
    device (to count its kinks).

    Args:
        model, loss_fn: the model and ``loss_fn(model(x), y) -> scalar``.
        batch: ``(x, y)`` tensors (or arrays) for the model's device.
        seed: seeds the random directions (a ``torch.Generator`` on the model's device).
        set_grad: also write the result into each parameter's ``.grad``.
        max_directions: at most this many directions (lexicographic tie-breaks).
        direction: ``"rank1"`` (default) or ``"dense"``, the law of the random directions.
        all_reduce: data-parallel training: average the result over the ranks of the default
            ``torch.distributed`` process group (each rank passing its shard of the batch).
            Every rank must pass the same ``seed`` (the step number, say): then all ranks
            resolve their kinks along the same directions, each shard's result is the gradient
            of its loss at the same nearby points params + t d, and their average is the
            gradient of the whole batch's loss there, a limiting gradient of it. With
            different directions per rank the average of Clarke gradients of the shard losses
            need not be one of their sum, so a missing seed is refused. A model wrapped in
            ``DistributedDataParallel`` is unwrapped (its own gradient hooks do not run: the
            averaging is done here).

    Returns:
        ``(grads, info)``: a dict of tensors keyed like ``model.named_parameters()`` and a
        :class:`TorchClarkeInfo`.
    """
    if direction not in ("rank1", "dense"):
        raise KinkgradError(f"clarke_grad_torch: direction={direction!r} is not a kind of "
                            "random direction; use 'rank1' (default) or 'dense'.")
    if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        model = model.module
    if all_reduce:
        check_distributed(seed)
    x, y = _as_tensors(model, batch, "clarke_grad_torch", loss_fn)
    graph = _graph(model, loss_fn)
    params = graph.params
    dev = next(iter(params.values())).device
    gen = torch.Generator(device=dev)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    need = needs_tangent(graph)
    # directions only in trainable parameters that reach a kink: the loss is a function of
    # the trainable ones (frozen parameters are constants of it)
    used = {op.name for op, nd in zip(graph.ops, need)
            if op.kind == "param" and nd and params[op.name].requires_grad}
    dirs = [_direction(params, gen, used, direction)]
    while True:
        with forward_errors("clarke_grad_torch"):
            loss, st = dual_forward(graph, x, y, dirs, need)
        st.finish()  # one device synchronisation: are there unresolved kinks?
        if sum(st.unresolved.values()) == 0 or len(dirs) >= max_directions:
            break
        dirs.append(_direction(params, gen, used, direction))
    st.update_running_stats(model)  # batch norm in training mode: once, as torch would
    named = [(n, p) for n, p in params.items() if p.requires_grad]
    gs = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
    grads = {n: torch.zeros_like(p) if g is None else g for (n, p), g in zip(named, gs)}
    if all_reduce:
        grads = mean_over_ranks(grads)
    if set_grad:
        for n, p in named:
            p.grad = grads[n]
    return grads, TorchClarkeInfo(float(loss.detach()), st.kinks, st.unresolved, dirs)
