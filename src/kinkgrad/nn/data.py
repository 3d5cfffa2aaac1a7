"""Datasets that ship with scikit-learn (no download): ``digits`` and ``breast_cancer``.

A fixed, stratified train/test split (``split_seed``), features standardised with the
*training* mean and standard deviation (constant features are centred and left unscaled),
then cast to the requested dtype. ``digits`` can also be given as ``(N, 1, 8, 8)`` images for
convolutional models.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import KinkgradError

__all__ = ["Dataset", "load", "batches", "DATASETS"]

DATASETS = ("digits", "breast_cancer")


@dataclass
class Dataset:
    """Standardised arrays and their description.

    Attributes:
        X_train, X_test: features, ``(N, d)`` or images ``(N, 1, 8, 8)``, in ``dtype``.
        y_train, y_test: integer labels ``(N,)``.
        n_classes: number of classes.
        sample_shape: shape of one input (without the batch axis).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    def __post_init__(self) -> None:
        """Refuse splits a training run cannot use: X and y of different lengths (the extra
        rows were silently dropped), an empty training set (reported as divergence) or an
        empty test set (a ZeroDivisionError in the evaluation)."""
        for split in ("train", "test"):
            X, y = getattr(self, f"X_{split}"), getattr(self, f"y_{split}")
            if len(X) != len(y):
                raise KinkgradError(f"Dataset {self.name!r}: X_{split} has {len(X)} rows and "
                                    f"y_{split} {len(y)} labels; pass one label per row.")
            if len(y) == 0:
                raise KinkgradError(f"Dataset {self.name!r}: the {split} split is empty; "
                                    "pass at least one example.")

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.X_train.shape[1:])

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name}: train {self.X_train.shape}, test {self.X_test.shape}, "
            f"{self.n_classes} classes, {self.X_train.dtype})"
        )


def load(
    name: str = "digits",
    dtype: Any = np.float32,
    test_size: float = 0.2,
    split_seed: int = 0,
    images: bool = False,
) -> Dataset:
    """Load, split and standardise a scikit-learn dataset.

    Args:
        name: ``"digits"`` (1797 8x8 images, 10 classes) or ``"breast_cancer"`` (569 samples,
            30 features, 2 classes).
        dtype: floating dtype of the features.
        test_size: fraction held out for testing (stratified).
        split_seed: seed of the split (fixed by default, so every run sees the same split).
        images: return digits as ``(N, 1, 8, 8)`` images (for ``Conv2d`` models).
    """
    try:
        from sklearn import datasets
        from sklearn.model_selection import train_test_split
    except ImportError as exc:  # pragma: no cover - sklearn is a dev dependency
        raise KinkgradError(
            "kinkgrad.nn.data needs scikit-learn: pip install scikit-learn"
        ) from exc
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
    elif name == "breast_cancer":
        if images:
            raise KinkgradError(
                "breast_cancer has 30 tabular features, not images; use the "
                "mlp model (or --dataset digits for the cnn)."
            )
        X, y = datasets.load_breast_cancer(return_X_y=True)
    else:
        raise KinkgradError(f"unknown dataset {name!r}; choose one of {DATASETS}.")
    X = np.asarray(X, np.float64)
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=test_size, random_state=split_seed, stratify=y
    )
    mu, sd = Xtr.mean(axis=0), Xtr.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    if images:
        Xtr, Xte = Xtr.reshape(-1, 1, 8, 8), Xte.reshape(-1, 1, 8, 8)
    with np.errstate(under="ignore"):  # tiny standardised values may round to 0 in f16
        Xtr, Xte = Xtr.astype(dtype), Xte.astype(dtype)
    return Dataset(name, Xtr, ytr.astype(np.int64), Xte, yte.astype(np.int64), int(np.max(y)) + 1)


def batches(
    n: int, batch: int, rng: np.random.Generator | None = None, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Index arrays of mini-batches over ``n`` samples, shuffled by ``rng`` (in order when
    ``rng`` is None); the last short batch is kept unless ``drop_last``."""
    if batch < 1:
        raise KinkgradError(f"batches: batch={batch}; pass an integer >= 1.")
    order = np.arange(n) if rng is None else rng.permutation(n)
    stop = n - n % batch if drop_last else n
    for i in range(0, stop, batch):
        yield order[i : i + batch]
