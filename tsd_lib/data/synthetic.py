"""The planted-pattern saliency benchmark: classes differ only inside a known window."""

from __future__ import annotations

import numpy as np

from tsd_lib.data.arrays import Dataset, stratified_split


def _class_shape(c: int, window: int) -> np.ndarray:
    """Pattern of class ``c`` over ``window`` points: ``sin((c + 1) * pi * t)``, ``t`` in [0, 1]."""
    t = np.linspace(0.0, 1.0, window)
    return np.sin((c + 1) * np.pi * t)


def make_synthetic(
    n_train: int = 200,
    n_test: int = 100,
    length: int = 100,
    n_classes: int = 2,
    window: int = 10,
    noise: float = 1.0,
    amplitude: float = 3.0,
    n_channels: int = 1,
    seed: int = 0,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    random_position: bool = True,
) -> tuple[Dataset, np.ndarray]:
    """A saliency benchmark: classes differ only inside a known window ("planted patterns").

    Every series is i.i.d. Gaussian noise (std ``noise``, all channels). Inside a window of
    ``window`` points -- at a uniformly random start per series when ``random_position`` (a model
    must locate it), else centred -- ``amplitude * sin((c + 1) * pi * t)`` is added to all channels
    for class ``c`` (class 0: one bump, class 1: up-and-down, ...). Outside the window the classes
    share one distribution. Labels are balanced and shuffled. ``n_train`` series are generated for
    the official train part, from which ``val_fraction`` is held out (stratified, ``split_seed``).
    Deterministic given ``seed``; no normalisation is applied.

    Returns:
        ``(dataset, test_mask)``: ``test_mask`` is a ``float32`` ``(n_test, length)`` array, 1 on the
        planted window and 0 elsewhere. ``dataset.masks`` holds the masks of all three splits.
    """
    if not 2 <= window <= length:
        raise ValueError(f"window must be in [2, length={length}], got {window}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if n_train < n_classes or n_test < 1:
        raise ValueError(f"need n_train >= n_classes and n_test >= 1, got {n_train}, {n_test}")
    rng = np.random.default_rng(seed)
    shapes = np.stack([_class_shape(c, window) for c in range(n_classes)])

    def generate(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
        X = rng.normal(0.0, noise, size=(n, n_channels, length))
        if random_position:
            starts = rng.integers(0, length - window + 1, size=n)
        else:
            starts = np.full(n, (length - window) // 2)
        cols = starts[:, None] + np.arange(window)[None, :]
        rows = np.arange(n)[:, None]
        X[rows, :, cols] += (amplitude * shapes[y])[:, :, None]  # broadcast over channels
        mask = np.zeros((n, length), dtype=np.float32)
        mask[rows, cols] = 1.0
        return X.astype(np.float32), y, mask

    X_tr, y_tr, m_tr = generate(n_train)
    X_te, y_te, m_te = generate(n_test)
    tr, va = stratified_split(y_tr, val_fraction, split_seed)
    ds = Dataset(
        name="Synthetic",
        X_train=X_tr[tr],
        y_train=y_tr[tr],
        X_val=X_tr[va],
        y_val=y_tr[va],
        X_test=X_te,
        y_test=y_te,
        class_names=[f"pattern{c}" for c in range(n_classes)],
        masks={"train": m_tr[tr], "val": m_tr[va], "test": m_te},
    )
    return ds, m_te.copy()
