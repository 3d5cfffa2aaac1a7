"""Parameter save/load round trips, data loading and batching."""

import numpy as np
import pytest

import kinkgrad
from kinkgrad import nn
from kinkgrad.nn import params as P


def test_save_load_round_trips_structure_dtypes_and_bits(tmp_path, rng):
    tree = {
        "0_dense": {
            "W": P.tree_cast(rng.normal(size=(3, 2)), np.float16),
            "b": rng.normal(size=2).astype(np.float32),
        },
        "extra": [rng.normal(size=()), (rng.normal(size=(1, 4)),)],
    }
    path = tmp_path / "p.npz"
    P.save(path, tree)
    back = P.load(path)
    la, ta = kinkgrad._core.pytree.flatten(tree)
    lb, tb = kinkgrad._core.pytree.flatten(back)
    assert ta == tb and isinstance(back["extra"][1], tuple)
    for a, b in zip(la, lb):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    with np.load(path) as raw:  # readable names, one array per leaf
        assert "0_dense/W" in raw.files and "extra/1/0" in raw.files


def test_trained_model_round_trip_gives_identical_predictions(tmp_path, rng):
    model = nn.Sequential(nn.Dense(5), nn.ReLU(), nn.Dense(3))
    params, _ = model.init(0, (4,), np.float32)
    nn.save(tmp_path / "m.npz", params)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(nn.load(tmp_path / "m.npz"), x), model(params, x))


def test_load_rejects_foreign_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.ones(2))
    with pytest.raises(kinkgrad.KinkgradError, match="__treedef__"):
        P.load(tmp_path / "x.npz")


def test_tree_helpers():
    a = {"x": np.array([3.0, 0.0]), "y": np.array([[4.0]])}
    assert P.tree_norm(a) == 5.0 and P.num_params(a) == 3
    assert P.tree_norm(P.tree_sub(a, a)) == 0.0
    assert P.tree_cast(a, np.float16)["y"].dtype == np.float16


@pytest.mark.parametrize("name,n,d,k", [("digits", 1797, 64, 10), ("breast_cancer", 569, 30, 2)])
def test_datasets_are_split_stratified_and_standardised_on_train(name, n, d, k):
    ds = nn.load_dataset(name, dtype=np.float64)
    assert len(ds.y_train) + len(ds.y_test) == n and ds.X_train.shape[1] == d
    assert ds.n_classes == k and ds.y_train.dtype == np.int64
    assert abs(len(ds.y_test) - 0.2 * n) <= 1
    # standardised with training statistics: train columns mean 0 and std 1 (or constant)
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-10)
    sd = ds.X_train.std(axis=0)
    assert np.all((np.abs(sd - 1) < 1e-10) | (sd == 0))
    # stratified: class proportions agree within one sample per class
    for c in range(k):
        frac = np.mean(ds.y_train == c) * len(ds.y_test)
        assert abs(np.sum(ds.y_test == c) - frac) <= 1.5
    again = nn.load_dataset(name, dtype=np.float32)
    np.testing.assert_array_equal(again.y_test, ds.y_test)  # the split is fixed
    assert again.X_train.dtype == np.float32


def test_digits_as_images_and_dataset_errors():
    ds = nn.load_dataset("digits", images=True)
    assert ds.sample_shape == (1, 8, 8)
    with pytest.raises(kinkgrad.KinkgradError):
        nn.load_dataset("breast_cancer", images=True)
    with pytest.raises(kinkgrad.KinkgradError, match="unknown dataset"):
        nn.load_dataset("mnist")


def test_batches_cover_every_sample_once():
    rng = np.random.default_rng(0)
    chunks = list(nn.batches(10, 4, rng))
    assert [len(c) for c in chunks] == [4, 4, 2]
    assert sorted(np.concatenate(chunks).tolist()) == list(range(10))
    assert [len(c) for c in nn.batches(10, 4, rng, drop_last=True)] == [4, 4]
    np.testing.assert_array_equal(next(nn.batches(5, 5)), np.arange(5))


def test_a_parameter_named_like_the_files_own_entry_is_refused(tmp_path):
    # save wrote the parameter and then overwrote it with the tree's JSON: load returned
    # the JSON string in its place, without an error
    from kinkgrad.errors import KinkgradError
    from kinkgrad.nn import params as params_mod

    with pytest.raises(KinkgradError, match="__treedef__"):
        params_mod.save(tmp_path / "p.npz", {"__treedef__": np.ones(2)})
    nested = {"a": {"__treedef__": np.arange(2.0)}}  # a nested key is its own path: fine
    params_mod.save(tmp_path / "q.npz", nested)
    np.testing.assert_array_equal(params_mod.load(tmp_path / "q.npz")["a"]["__treedef__"],
                                  [0.0, 1.0])
