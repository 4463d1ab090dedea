"""Shared fixtures: small datasets and the optional ../shared UCR copy."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests use tiny models, where a second intra-op thread only adds contention (2-core CI).
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_UCR = REPO.parent / "shared" / "data" / "UCRArchive_2018"


@pytest.fixture(scope="session")
def gunpoint():
    """GunPoint resampled to length 100 (shipped with aeon, offline)."""
    from tsd_lib.data import load_dataset

    return load_dataset("GunPoint", length=100)


@pytest.fixture(scope="session")
def synthetic():
    """A small planted-pattern set: ``(dataset, test_mask)``."""
    from tsd_lib.data import make_synthetic

    return make_synthetic(n_train=60, n_test=40, length=64, window=8, seed=0)


@pytest.fixture(scope="session")
def shared_ucr_dir() -> Path:
    """The ../shared UCR 2018 copy (tsv layout); skips the test when absent."""
    if not SHARED_UCR.is_dir():
        pytest.skip("../shared/data/UCRArchive_2018 absent")
    return SHARED_UCR
