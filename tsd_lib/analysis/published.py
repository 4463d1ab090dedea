"""Published test accuracy of a well-trained FCN and ResNet on the book's and the paper's datasets,
to check our teachers.

Ismail Fawaz et al., "Deep learning for time series classification: a review", Data Mining and
Knowledge Discovery 33, 2019 (UCR 2018 archive, 5 training runs: mean, min, max). Their protocol
differs from ours: full-length series, the whole TRAIN split for training (no validation
hold-out), 2000 epochs, the model with the lowest training loss kept.
"""

from __future__ import annotations

PUBLISHED_SOURCE = ("Ismail Fawaz et al., Deep learning for time series classification: a review, "
                    "DMKD 33 (2019); FCN and ResNet, 5 runs each, UCR 2018")

#: dataset -> (FCN mean, FCN min, FCN max, ResNet mean) test accuracy.
PUBLISHED_FCN: dict[str, tuple[float, float, float, float]] = {
    "GunPoint": (1.000, 1.000, 1.000, 0.991),
    "ItalyPowerDemand": (0.963, 0.961, 0.964, 0.962),
    "ArrowHead": (0.843, 0.823, 0.851, 0.838),
    "OSULeaf": (0.979, 0.971, 0.983, 0.980),
    "ACSF1": (0.898, 0.870, 0.910, 0.916),
    "PickupGestureWiimoteZ": (0.744, 0.700, 0.780, 0.704),
    "Adiac": (0.841, 0.829, 0.852, 0.833),
    "Beef": (0.680, 0.667, 0.700, 0.753),
    "BeetleFly": (0.910, 0.850, 1.000, 0.850),
    "CBF": (0.994, 0.992, 0.994, 0.996),
    "Computers": (0.819, 0.812, 0.828, 0.806),
    "ECG200": (0.888, 0.880, 0.900, 0.874),
    "ECGFiveDays": (0.985, 0.981, 0.988, 0.966),
    "FaceAll": (0.938, 0.920, 0.953, 0.867),
    "Ham": (0.707, 0.686, 0.733, 0.758),
    "Herring": (0.644, 0.609, 0.672, 0.600),
    "Lightning2": (0.734, 0.721, 0.754, 0.780),
    "MiddlePhalanxOutlineCorrect": (0.795, 0.780, 0.814, 0.826),
    "MoteStrain": (0.936, 0.931, 0.941, 0.924),
    "OliveOil": (0.720, 0.400, 0.833, 0.847),
    "ShapesAll": (0.894, 0.888, 0.898, 0.926),
    "SonyAIBORobotSurface1": (0.958, 0.942, 0.972, 0.961),
    "SonyAIBORobotSurface2": (0.980, 0.975, 0.986, 0.975),
    "Strawberry": (0.975, 0.970, 0.978, 0.980),
    "SwedishLeaf": (0.967, 0.965, 0.971, 0.963),
    "Trace": (1.000, 1.000, 1.000, 1.000),
    "Mallat": (0.967, 0.962, 0.973, 0.974),
    "Phoneme": (0.328, 0.321, 0.334, 0.333),
    "Wafer": (0.997, 0.997, 0.997, 0.998),
    "Yoga": (0.837, 0.833, 0.841, 0.867),
    "FordA": (0.914, 0.907, 0.920, 0.937),
    "StarLightCurves": (0.965, 0.960, 0.967, 0.972),
    "UWaveGestureLibraryAll": (0.818, 0.816, 0.820, 0.861),
    "NonInvasiveFetalECGThorax1": (0.958, 0.957, 0.960, 0.941),
    "NonInvasiveFetalECGThorax2": (0.953, 0.950, 0.956, 0.944),
}


def published_fcn(dataset: str) -> float | None:
    """The published mean FCN test accuracy on ``dataset`` (case-insensitive), or ``None``."""
    lower = {k.lower(): v for k, v in PUBLISHED_FCN.items()}
    entry = lower.get(dataset.lower())
    return None if entry is None else entry[0]


def published_resnet(dataset: str) -> float | None:
    """The published mean ResNet test accuracy on ``dataset`` (case-insensitive), or ``None``."""
    lower = {k.lower(): v for k, v in PUBLISHED_FCN.items()}
    entry = lower.get(dataset.lower())
    return None if entry is None else entry[3]
