"""Threads on the array backends: calls on torch tensors in several threads share the rules'
namespace and the fast ``ndarray`` operators (restored when the last one ends); a call on
NumPy arrays and a call on torch tensors in two threads take turns (the namespace is
process-wide), so each gives the gradient it gives alone."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

import kinkgrad
import kinkgrad.numpy as knp

torch = pytest.importorskip("torch")


def _f(w: object, x: object) -> object:
    return knp.sum(knp.logsumexp(knp.relu(x @ w), axis=1))


def _problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((6, 5)), rng.standard_normal((4, 6))
    # reference by central differences of plain NumPy (independent of the engine)
    def plain(w: np.ndarray) -> float:
        h = np.maximum(x @ w, 0)
        m = h.max(axis=1, keepdims=True)
        return float(np.sum(np.log(np.exp(h - m).sum(axis=1)) + m[:, 0]))
    g = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[i] = 1e-6
        g[i] = (plain(w + e) - plain(w - e)) / 2e-6
    return w, x, g


def _gradients_in_threads(kinds: tuple, rounds: int) -> list:
    """Each thread takes ``rounds`` gradients of _f on its backend ("numpy" or "torch"),
    switching threads often, inside the calls; returns what went wrong."""
    w, x, want = _problem()
    tw, tx = torch.tensor(w), torch.tensor(x)
    errors: list = []

    def work(kind: str) -> None:
        for _ in range(rounds):
            try:
                if kind == "numpy":
                    g = kinkgrad.grad(_f)(w, x)
                    ok = type(g) is np.ndarray and np.allclose(g, want, rtol=1e-6, atol=1e-8)
                else:
                    g = kinkgrad.grad(_f)(tw, tx)
                    ok = isinstance(g, torch.Tensor) and np.allclose(g.numpy(), want,
                                                                     rtol=1e-6, atol=1e-8)
                if not ok:
                    errors.append((kind, type(g).__name__))
            except Exception as exc:  # noqa: BLE001 (collected, asserted by the caller)
                errors.append((kind, repr(exc)))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in kinds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    return errors


def test_torch_calls_in_several_threads_at_once() -> None:
    assert _gradients_in_threads(("torch", "torch", "torch"), 60) == []


def test_numpy_call_waits_for_a_torch_call_in_another_thread() -> None:
    from kinkgrad import backends

    w, x, want = _problem()
    inside, released = threading.Event(), threading.Event()

    def holder() -> None:  # a torch call in progress, as the torch backend binds it
        with backends.use_namespace(backends._torch_numpy()):
            inside.set()
            threading.Event().wait(0.3)
            released.set()

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(10)
    try:
        g = kinkgrad.grad(_f)(w, x)
        report = kinkgrad.stationarity(lambda v: knp.sum(knp.abs(v)), np.zeros(3))
        finished_after_release = released.is_set()
    finally:
        t.join()
    assert finished_after_release
    assert type(g) is np.ndarray
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)
    assert report.verdict == "stationary"  # 0 is in [-1, 1]^3


def test_numpy_and_torch_calls_interleaved_in_threads() -> None:
    assert _gradients_in_threads(("numpy", "torch", "numpy", "torch"), 40) == []


def test_a_stream_of_numpy_calls_does_not_starve_a_torch_call() -> None:
    # liveness: two threads call kinkgrad on NumPy arrays without a pause (one of them is
    # inside a call at almost every moment); a torch call must still get its turn, not hang
    w, x, want = _problem()
    stop, torch_done = threading.Event(), threading.Event()
    got: list = []

    def numpy_stream() -> None:
        while not stop.is_set():
            kinkgrad.grad(_f)(w, x)

    def torch_call() -> None:
        got.append(kinkgrad.grad(_f)(torch.tensor(w), torch.tensor(x)))
        torch_done.set()

    streams = [threading.Thread(target=numpy_stream) for _ in range(2)]
    for t in streams:
        t.start()
    caller = threading.Thread(target=torch_call)
    caller.start()
    served = torch_done.wait(10)  # while the streams still run
    stop.set()
    for t in streams + [caller]:
        t.join()
    assert served
    np.testing.assert_allclose(got[0].numpy(), want, rtol=1e-6, atol=1e-8)


def test_two_threads_waiting_for_each_others_backend_get_an_error_not_a_hang() -> None:
    # two threads inside NumPy calls (which share the NumPy binding) each start a torch
    # call: each waits for the other to leave NumPy. The second to wait must raise
    # (UnsupportedOperationError naming the fix), so that the first can go on.
    from kinkgrad import backends
    from kinkgrad.errors import UnsupportedOperationError

    w, x, want = _problem()
    both_inside = threading.Barrier(2, timeout=10)
    results: dict = {}

    def in_numpy(name: str) -> None:  # a NumPy call in progress that needs torch
        try:
            with backends.use_namespace(np):
                both_inside.wait()
                results[name] = kinkgrad.grad(_f)(torch.tensor(w), torch.tensor(x))
        except Exception as exc:  # noqa: BLE001 (asserted below)
            results[name] = exc

    threads = [threading.Thread(target=in_numpy, args=(k,)) for k in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread still waits"
    errors = [r for r in results.values() if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], UnsupportedOperationError), results
    assert "one thread" in str(errors[0])
    done = next(r for r in results.values() if not isinstance(r, Exception))
    assert isinstance(done, torch.Tensor)
    np.testing.assert_allclose(done.numpy(), want, rtol=1e-6, atol=1e-8)
    g = kinkgrad.grad(_f)(w, x)  # the bindings are back: a later call works
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["in_clarke", "subdifferential", "stationarity", "certify",
                                  "minimality"])
def test_numpy_only_entry_points_hold_the_numpy_binding(name: str) -> None:
    # their rules run on NumPy only: each is wrapped by backends.on_numpy, so that a torch
    # call in another thread cannot rebind the rules' namespace under it
    from kinkgrad import backends

    fn = getattr(kinkgrad, name)
    assert hasattr(fn, "__wrapped__") and fn.__code__ is backends.on_numpy(len).__code__
