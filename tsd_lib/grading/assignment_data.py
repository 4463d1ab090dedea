"""The data of an assignment variant (what the notebooks' ``assignment_dataset`` returns)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from tsd_lib.data import Dataset


def assignment_dataset(
    name: str = "synthetic", seed: int = 0, *, length: int = 64, n_train: int = 160, n_test: int = 60
) -> tuple[Dataset, np.ndarray | None]:
    """The data of an assignment variant: ``(dataset, test_mask)``.

    ``"synthetic"`` (or ``"synthetic3"``, ``"synthetic4"``, ... for more classes) is the
    planted-pattern set of :func:`tsd_lib.data.make_synthetic` (pattern length 8, series length
    ``length``, generated from ``seed``); ``test_mask`` marks the planted windows. Any other name
    is a UCR/UEA set loaded offline (:func:`tsd_lib.data.load_dataset`, resampled to ``length``,
    validation split drawn with ``seed``) and ``test_mask`` is None.
    """
    from tsd_lib.data import load_dataset, make_synthetic

    key = name.strip().lower()
    if key.startswith("synthetic"):
        digits = key[len("synthetic") :].strip("-_ ")
        n_classes = int(digits) if digits.isdigit() else 2
        return make_synthetic(n_train=n_train, n_test=n_test, length=length, n_classes=n_classes, window=8,
                              seed=seed, split_seed=seed)
    return load_dataset(name, length=length, split_seed=seed), None

