"""clarke_grad_torch inside data-parallel training: two CPU processes (gloo backend).

Truth: the single-process clarke_grad_torch of the whole batch with the same seed (the
average of the shard losses is the whole batch's loss, and every rank resolves its kinks along
the same directions), and plain backward of the whole batch at params + t d.
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
nn = torch.nn

from test_interop_clarke import nearby_grad  # noqa: E402

import kinkgrad  # noqa: E402
from kinkgrad.interop.torch import clarke_grad_torch  # noqa: E402

if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)


def dead_unit_mlp() -> tuple:
    """Unit 0 of each hidden layer is dead (zero weights and bias): every sample hits a
    kink there, and its tangent decides relu'(0)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(),
                          nn.Linear(6, 3)).double()
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight[0] = 0.0
            layer.bias[0] = 0.0
    x = torch.randn(8, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return model, x, torch.arange(8) % 3


def _worker(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        model, x, y = dead_unit_mlp()
        ddp = nn.parallel.DistributedDataParallel(model)
        g, info = clarke_grad_torch(ddp, nn.CrossEntropyLoss(), (x[rank::world],
                                                                 y[rank::world]),
                                    seed=7, all_reduce=True, set_grad=True)
        assert all(p.grad is g[n] for n, p in model.named_parameters())
        np.savez(f"{out}/rank{rank}.npz", kinks=info.total_kinks,
                 **{n: t.numpy() for n, t in g.items()})
        # NOTE: both ranks reach this point before either tears its process group down; a
        # rank destroying it while the other still talks to it aborted in gloo now and then
        # ("terminate called without an active exception", SIGABRT in the worker)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_all_reduced_shards_give_the_whole_batch_clarke_gradient(tmp_path) -> None:
    world = 2
    torch.multiprocessing.spawn(_worker, args=(world, _free_port(), str(tmp_path)),
                                nprocs=world, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(world)]
    model, x, y = dead_unit_mlp()
    whole, info = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=7)
    assert info.total_kinks == 16 and sum(int(r["kinks"]) for r in ranks) == 16
    near = nearby_grad(model, nn.CrossEntropyLoss(), x, y, info.directions[0], 1e-7,
                       lambda: None)
    for n, g in whole.items():
        for r in ranks:  # every rank holds the same average
            np.testing.assert_allclose(r[n], g.numpy(), rtol=1e-12, atol=1e-14, err_msg=n)
        np.testing.assert_allclose(g.numpy(), near[n].numpy(), rtol=1e-5, atol=1e-7)


def test_all_reduce_refuses_what_would_not_be_a_clarke_gradient() -> None:
    model, x, y = dead_unit_mlp()
    with pytest.raises(kinkgrad.KinkgradError, match="init_process_group"):
        clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=0, all_reduce=True)
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0,
                            world_size=1)
    try:
        with pytest.raises(kinkgrad.KinkgradError, match="seed="):
            clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), all_reduce=True)
        g, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=3, all_reduce=True)
        ref, _ = clarke_grad_torch(model, nn.CrossEntropyLoss(), (x, y), seed=3)
        for n in g:  # one rank: the average is the rank's own result
            torch.testing.assert_close(g[n], ref[n], rtol=0, atol=0)
    finally:
        dist.destroy_process_group()
