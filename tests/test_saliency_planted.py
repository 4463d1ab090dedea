"""A saliency method must find what a trained teacher uses: the planted window."""

from __future__ import annotations

import numpy as np

from tsd_lib.metrics import saliency_precision
from tsd_lib.models import build_model
from tsd_lib.runtime import set_seed
from tsd_lib.saliency.maps import saliency_map
from tsd_lib.train import evaluate, fit


def test_teacher_saliency_finds_the_planted_pattern(synthetic):
    data, mask = synthetic
    set_seed(0)
    teacher = build_model("fcn_small", data.n_channels, data.n_classes)
    fit(teacher, data, epochs=15, patience=15, progress=False)
    assert evaluate(teacher, data.X_test, data.y_test)["accuracy"] >= 0.8
    window = int(mask[0].sum())
    maps = saliency_map(teacher, data.X_test, data.y_test, X_pool=data.X_train, y_pool=data.y_train,
                        window=window, baseline="other_class", score="kl", generator=0)
    precision = saliency_precision(maps, mask)
    chance = window / data.length
    assert precision >= 3 * chance, f"precision {precision:.2f} vs chance {chance:.2f}"
    # and the peak of most maps lies inside the planted window
    peaks = maps.argmax(axis=1)
    inside = mask[np.arange(len(mask)), peaks] > 0
    assert inside.mean() >= 0.6
