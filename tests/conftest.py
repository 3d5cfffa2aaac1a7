"""Test configuration: seeded randomness and loud floating-point errors.

Hypothesis draws the same examples on every run ("ci" profile: derandomized, so that a red
CI run is a change, not a draw); ``HYPOTHESIS_PROFILE=fuzz make test`` draws fresh ones
(the seed of a failure is printed) to search for inputs the fixed draws miss."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _seed_and_errstate():
    np.random.seed(0)
    with np.errstate(all="raise"):
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
