"""Published test accuracy of a well-trained FCN on the book's datasets, to check our teachers.

Ismail Fawaz et al., "Deep learning for time series classification: a review", Data Mining and
Knowledge Discovery 33, 2019 (UCR 2018 archive, 5 training runs: mean, min, max). Their protocol
differs from ours: full-length series, the whole TRAIN split for training (no validation
hold-out), 2000 epochs, the model with the lowest training loss kept.
"""

from __future__ import annotations

PUBLISHED_SOURCE = ("Ismail Fawaz et al., Deep learning for time series classification: a review, "
                    "DMKD 33 (2019); FCN, 5 runs, UCR 2018")

#: dataset -> (mean, min, max) test accuracy of the FCN.
PUBLISHED_FCN: dict[str, tuple[float, float, float]] = {
    "GunPoint": (1.000, 1.000, 1.000),
    "ItalyPowerDemand": (0.963, 0.961, 0.964),
    "ArrowHead": (0.843, 0.823, 0.851),
    "OSULeaf": (0.979, 0.971, 0.983),
    "ACSF1": (0.898, 0.870, 0.910),
    "PickupGestureWiimoteZ": (0.744, 0.700, 0.780),
    "Adiac": (0.841, 0.829, 0.852),
    "Beef": (0.680, 0.667, 0.700),
    "BeetleFly": (0.910, 0.850, 1.000),
    "CBF": (0.994, 0.992, 0.994),
    "Computers": (0.819, 0.812, 0.828),
    "ECGFiveDays": (0.985, 0.981, 0.988),
    "FaceAll": (0.938, 0.920, 0.953),
}


def published_fcn(dataset: str) -> float | None:
    """The published mean FCN test accuracy on ``dataset`` (case-insensitive), or ``None``."""
    lower = {k.lower(): v for k, v in PUBLISHED_FCN.items()}
    entry = lower.get(dataset.lower())
    return None if entry is None else entry[0]
