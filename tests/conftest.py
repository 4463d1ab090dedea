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


@pytest.fixture
def tiny_dataset():
    """Six training, two validation and three test series of length 8, two classes (labels a, b)."""
    import numpy as np

    from tsd_lib.data import Dataset

    rng = np.random.default_rng(0)

    def X(n):
        return rng.normal(size=(n, 1, 8)).astype(np.float32)

    def y(*v):
        return np.array(v, dtype=np.int64)

    return Dataset("GunPoint", X(6), y(0, 0, 0, 1, 1, 1), X(2), y(0, 1), X(3), y(0, 0, 1), ["a", "b"])


def grading_notebook(path, cells: list[str], assignment: int = 1):
    """A submission notebook for grader tests: one code cell per source in ``cells``, the first tagged
    ``parameters``, claiming to be assignment ``assignment``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}, "tsd_assignment": assignment}
    nb.cells = [nbformat.v4.new_code_cell(src.strip("\n"), id=f"c{i}") for i, src in enumerate(cells)]
    nb.cells[0].metadata["tags"] = ["parameters"]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path
