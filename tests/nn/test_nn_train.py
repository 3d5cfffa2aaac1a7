"""Training: the loss goes down, kinks are counted, clarke/certify paths when available."""

import numpy as np
import pytest

from kinkgrad import nn
from kinkgrad.errors import KinkgradError
from kinkgrad.nn.train import TrainConfig, evaluate, train


def _abs_normal():
    try:
        from kinkgrad.abs_normal import certify, clarke_grad  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"kinkgrad.abs_normal.certify/clarke_grad not available yet: {exc}")


@pytest.mark.parametrize("dtype", ["float64", "float16"])
def test_short_training_run_lowers_the_loss(dtype):
    ds = nn.load_dataset("digits", dtype=getattr(np, dtype))
    cfg = TrainConfig(epochs=2, dtype=dtype, hidden=(32,), certify_every=0, progress=False)
    model = nn.build_model("mlp", ds.sample_shape, ds.n_classes, cfg.hidden)
    p0, _ = model.init(cfg.seed, ds.sample_shape, getattr(np, dtype))
    loss0, acc0 = evaluate(model, p0, ds.X_train, ds.y_train)
    res = train(cfg, dataset=ds)
    loss1, acc1 = evaluate(res.model, res.params, ds.X_train, ds.y_train)
    assert loss1 < 0.5 * loss0 and acc1 > acc0 + 0.3
    assert res.params["0_dense"]["W"].dtype == np.dtype(dtype)
    assert res.batches == 2 * int(np.ceil(len(ds.y_train) / 32))
    assert [h["epoch"] for h in res.history] == [1, 2]


def test_cnn_and_other_losses_train():
    res = train(TrainConfig(model="cnn", epochs=1, certify_every=0, progress=False))
    assert res.history[-1]["test_accuracy"] > 0.7
    # max-pooling windows of ReLU zeros are ties: kinks of the max primitive, counted
    assert res.kinks_hit > 0
    for loss in ("hinge", "l1", "mse"):
        r = train(
            TrainConfig(
                loss=loss,
                epochs=1,
                lr=0.05,
                hidden=(32,),
                certify_every=0,
                progress=False,
                dataset="breast_cancer",
            )
        )
        assert r.history[-1]["test_accuracy"] > 0.85, loss


def test_probe_sees_every_step_and_kink_counts_add_up():
    seen = []

    def probe(step, params, batch_loss, xb, yb, g, rep):
        seen.append((step, rep.total, len(yb)))

    res = train(
        TrainConfig(epochs=1, dtype="float16", hidden=(64,), certify_every=0, progress=False),
        probe=probe,
    )
    assert [s[0] for s in seen] == list(range(res.batches))
    assert sum(s[1] for s in seen) == res.kinks_hit
    assert sum(s[2] for s in seen) == 1437


def test_invalid_settings_raise():
    from kinkgrad import KinkgradError

    for bad in (
        dict(gradient="lex"),
        dict(dtype="bfloat16"),
        dict(loss="kl"),
        dict(model="rnn"),
        dict(model="cnn", dataset="breast_cancer"),
    ):
        with pytest.raises(KinkgradError):
            train(TrainConfig(epochs=1, progress=False, **bad))


def test_certify_every_batch_of_a_dense_relu_network():
    _abs_normal()
    res = train(
        TrainConfig(
            epochs=1, hidden=(16,), certify_every=1, progress=False, dataset="breast_cancer"
        )
    )
    assert res.certify_checked == res.batches and res.certify_error is None
    # paper B: dense ReLU networks with biases, agnostic relu'(0): Clarke gradients
    assert res.certified_fraction == 1.0


def test_certify_batches_that_hit_kinks_in_float16():
    """float16 training hits exact ReLU kinks; paper B: still Clarke gradients (dense ReLU
    layers with biases, one agnostic choice), and certify confirms every one."""
    _abs_normal()
    kink_steps = []

    def probe(step, params, batch_loss, xb, yb, g, rep):
        if rep.total:
            kink_steps.append(step)

    res = train(
        TrainConfig(
            epochs=1, dtype="float16", hidden=(128,), relu0=1.0, certify_every=1, progress=False
        ),
        probe=probe,
    )
    assert len(kink_steps) >= 3 and res.kinks_hit >= 3
    assert res.certify_checked == res.batches and res.certified_fraction == 1.0


def test_clarke_gradient_training_reports_overhead():
    _abs_normal()
    res = train(
        TrainConfig(
            epochs=1,
            hidden=(64,),
            gradient="clarke",
            certify_every=0,
            dtype="float16",
            progress=False,
        )
    )
    s = res.summary()
    assert res.kinks_hit > 0 and s["test_accuracy"] > 0.85
    assert s["clarke_seconds"] > 0 and s["clarke_time_overhead"] > 0
    assert s["clarke_cost_ratio"] >= 1.0


@pytest.mark.parametrize("opt", [nn.SGD(lr=0.1, momentum=0.9), nn.Adam()])
def test_optimizers_refuse_gradients_that_do_not_match_the_parameters(opt):
    # a missing gradient dropped its parameter from the model, a (4,) gradient broadcast
    # into a (3, 4) parameter, a (2, 3, 4) one replaced it: all silently
    P = {"W": np.ones((3, 4)), "b": np.zeros(4)}
    st = opt.init(P)
    for G in ({"W": np.ones((3, 4))}, {"W": np.ones(4), "b": np.zeros(4)},
              {"W": np.ones((2, 3, 4)), "b": np.zeros(4)}):
        with pytest.raises(KinkgradError, match="update"):
            opt.update(P, G, st)
    new, _ = opt.update(P, {"W": np.ones((3, 4)), "b": np.ones(4)}, st)
    assert {k: v.shape for k, v in new.items()} == {"W": (3, 4), "b": (4,)}


def test_a_dataset_refuses_empty_splits_and_mismatched_labels():
    # an empty test set raised ZeroDivisionError in evaluate, an empty training set was
    # reported as divergence ("lower --lr"), and X/y of different lengths trained silently
    from kinkgrad.nn.data import Dataset

    X, y = np.zeros((10, 3)), np.zeros(10, np.int64)
    for Xtr, ytr, Xte, yte, match in ((X, y, X[:0], y[:0], "test split is empty"),
                                      (X[:0], y[:0], X, y, "train split is empty"),
                                      (X, y[:8], X, y, "10 rows and y_train 8")):
        with pytest.raises(KinkgradError, match=match):
            Dataset("d", Xtr, ytr, Xte, yte, 2)


@pytest.mark.parametrize("kw, match", [
    ({"epochs": 1.5}, "epochs"), ({"batch": 2.5}, "batch"), ({"epochs": True}, "epochs"),
    ({"certify_every": -1}, "certify_every"), ({"hidden": (16, 0)}, "hidden"),
    ({"hidden": (2.5,)}, "hidden"),
])
def test_train_refuses_config_values_with_the_fix(kw, match):
    # TypeErrors before (epochs 1.5, batch 2.5); certify_every=-1 certified every batch
    with pytest.raises(KinkgradError, match=match):
        train(TrainConfig(progress=False, **kw))


@pytest.mark.parametrize("make", [lambda: nn.Adam(betas=(0.9,)), lambda: nn.SGD(lr="0.1"),
                                  lambda: nn.SGD(lr=None), lambda: nn.Adam(eps=True)])
def test_optimizers_refuse_arguments_of_the_wrong_type(make):
    # IndexError (a one-entry betas) and NumPy TypeErrors before
    with pytest.raises(KinkgradError, match="need a finite lr"):
        make()


def test_divergence_within_an_epoch_is_named_as_such():
    # float16 parameters overflow at lr 1e6 within the first epoch: the next gradient call
    # raised grad's "a differentiated argument contains NaN or inf ... clean the input"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's overflow in the update
        with pytest.raises(KinkgradError, match="training diverged at epoch 1, step"):
            train(TrainConfig(progress=False, lr=1e6, dtype="float16", epochs=1,
                              certify_every=0, dataset="breast_cancer"))
