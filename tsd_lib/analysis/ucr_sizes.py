"""Sizes of the paper's 30 UCR datasets (UCR 2018 archive: train series, test series, length), so
the results page can say what the datasets not archived would cost without their data, and the largest
class of each test set held offline or shipped by aeon (what always predicting one class scores)."""

from __future__ import annotations

from tsd_lib.settings import ProtocolSettings

#: ``{name: (train series, test series, series length)}`` of the UCR 2018 archive.
UCR_SIZES: dict[str, tuple[int, int, int]] = {
    "Adiac": (390, 391, 176), "Beef": (30, 30, 470), "BeetleFly": (20, 20, 512), "CBF": (30, 900, 128),
    "Computers": (250, 250, 720), "ECG200": (100, 100, 96), "ECGFiveDays": (23, 861, 136),
    "FaceAll": (560, 1690, 131), "FordA": (3601, 1320, 500), "Ham": (109, 105, 431), "Herring": (64, 64, 512),
    "ItalyPowerDemand": (67, 1029, 24), "Lightning2": (60, 61, 637), "Mallat": (55, 2345, 1024),
    "MiddlePhalanxOutlineCorrect": (600, 291, 80), "MoteStrain": (20, 1252, 84),
    "NonInvasiveFetalECGThorax1": (1800, 1965, 750), "NonInvasiveFetalECGThorax2": (1800, 1965, 750),
    "OliveOil": (30, 30, 570), "Phoneme": (214, 1896, 1024), "ShapesAll": (600, 600, 512),
    "SonyAIBORobotSurface1": (20, 601, 70), "SonyAIBORobotSurface2": (27, 953, 65),
    "StarLightCurves": (1000, 8236, 1024), "Strawberry": (613, 370, 235), "SwedishLeaf": (500, 625, 128),
    "Trace": (100, 100, 275), "UWaveGestureLibraryAll": (896, 3582, 945), "Wafer": (1000, 6164, 152),
    "Yoga": (300, 3000, 426),
}

#: ``{name: (test series of the largest class, test series)}`` of the UCR 2018 archive, for the datasets held
#: offline and those aeon ships (``tests/test_analysis.py`` checks it against the files).
UCR_TEST_MAJORITY: dict[str, tuple[int, int]] = {
    "Adiac": (16, 391), "ArrowHead": (69, 175), "Beef": (6, 30), "BeetleFly": (10, 20), "CBF": (302, 900),
    "Computers": (125, 250), "ECG200": (64, 100), "ECGFiveDays": (433, 861), "FaceAll": (287, 1690),
    "GunPoint": (76, 150), "Ham": (54, 105), "Herring": (38, 64), "ItalyPowerDemand": (516, 1029),
    "Lightning2": (33, 61), "MiddlePhalanxOutlineCorrect": (166, 291), "MoteStrain": (675, 1252),
    "OliveOil": (12, 30), "ShapesAll": (10, 600), "SonyAIBORobotSurface1": (343, 601),
    "SonyAIBORobotSurface2": (588, 953), "Strawberry": (238, 370), "SwedishLeaf": (49, 625), "Trace": (29, 100),
}


def majority_share(dataset: str) -> float | None:
    """The share of ``dataset``'s test series in its largest class (``None``: not in :data:`UCR_TEST_MAJORITY`)."""
    if dataset not in UCR_TEST_MAJORITY:
        return None
    largest, n_test = UCR_TEST_MAJORITY[dataset]
    return largest / n_test


def work_units(dataset: str, length: int | None = ProtocolSettings.length, stretch: bool = False) -> float:
    """Training series x time steps after resampling to ``length`` (what one epoch's cost scales with)."""
    n_train, _, steps = UCR_SIZES[dataset]
    if length is not None and (steps > length or stretch):
        steps = length
    return float(n_train * steps)
