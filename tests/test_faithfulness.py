"""Deletion/insertion curves and saliency against planted truth, on models whose answer is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tsd_lib.experiment.faithfulness import (
    FILE,
    curve_area,
    measure,
    perturbation_curve,
    saliency_auprc,
    window_ranking,
)


class WindowReader(nn.Module):
    """Two classes; the logit of class 1 is 10 x the mean of steps 20-29 (a model whose evidence is known)."""

    def forward(self, x):
        z = 10 * x[:, 0, 20:30].mean(dim=1)
        return torch.stack([-z, z], dim=1)


def _data(n=6, length=40):
    X = np.zeros((n, 1, length), dtype=np.float32)
    X[:, 0, 20:30] = 1.0  # every series is class 1 through its third window
    return X, np.ones(n, dtype=int)


def test_window_ranking_orders_by_mean_saliency():
    s = np.array([[0, 0, 5, 5, 1, 1, 9, 9, 2]], dtype=float)  # windows of 2: means 0, 5, 1, 9, 2 (last one short)
    assert window_ranking(s, 2).tolist() == [[3, 1, 4, 2, 0]]


def test_deletion_falls_at_once_with_the_true_ranking_and_late_with_the_reverse():
    X, y = _data()
    model = WindowReader()
    good = np.zeros((6, 40))
    good[:, 20:30] = 1.0  # the true evidence ranked first
    bad = 1.0 - good  # ranked last
    p_full = torch.softmax(model(torch.as_tensor(X)), 1)[0, 1].item()
    d_good = perturbation_curve(model, X, y, good, 10, mode="deletion")
    d_bad = perturbation_curve(model, X, y, bad, 10, mode="deletion")
    assert d_good[0] == pytest.approx(p_full) and d_good[1:] == pytest.approx([0.5] * 4)
    assert d_bad[:4] == pytest.approx([p_full] * 4) and d_bad[4] == pytest.approx(0.5)
    assert curve_area(d_good) < curve_area(d_bad)
    i_good = perturbation_curve(model, X, y, good, 10, mode="insertion")
    assert i_good[0] == pytest.approx(0.5) and i_good[1:] == pytest.approx([p_full] * 4)
    assert curve_area([0.0, 1.0]) == 0.5 and curve_area([1.0, 1.0, 1.0]) == 1.0
    with pytest.raises(ValueError, match="mode"):
        perturbation_curve(model, X, y, good, 10, mode="both")


def test_measure_ranks_a_student_by_the_teachers_saliency_too():
    X, y = _data()
    good = np.zeros((6, 40))
    good[:, 20:30] = 1.0
    truth = good.astype(bool)
    out = measure(WindowReader(), WindowReader(), {"teacher": good, "student": 1.0 - good}, X, y, 10, truth)
    areas = out["areas"]
    assert set(areas) == {"teacher_deletion", "teacher_insertion", "student_own_deletion", "student_own_insertion",
                          "student_teacher_deletion", "student_teacher_insertion"}
    assert areas["student_teacher_deletion"] < areas["student_own_deletion"]  # the teacher's map is the true one
    assert areas["student_teacher_deletion"] == areas["teacher_deletion"]  # same model, same ranking
    assert len(out["curves"]["teacher_insertion"]) == 5 and out["n_series"] == 6
    assert out["auprc"] == {"student": pytest.approx(0.25), "teacher": pytest.approx(1.0), "chance": 0.25}
    assert "auprc" not in measure(WindowReader(), WindowReader(), {"teacher": good, "student": good}, X, y, 10)
    assert out["gradient_agreement"] == pytest.approx(1.0)  # one model: identical integrated gradients


def test_saliency_auprc_is_one_for_a_perfect_map_and_chance_for_a_flat_one():
    truth = np.zeros((3, 20), dtype=bool)
    truth[:, 5:9] = True
    assert saliency_auprc(truth.astype(float), truth) == pytest.approx(1.0)
    assert saliency_auprc(np.ones((3, 20)), truth) == pytest.approx(4 / 20)


def test_faithfulness_study_on_the_planted_set(tmp_path):
    import yaml

    from tsd_lib.analysis.faithfulness_views import faithfulness_section, faithfulness_study
    from tsd_lib.experiment import RunStore
    from tsd_lib.experiment.faithfulness import run_faithfulness
    from tsd_lib.profiles import load_profile
    from tsd_lib.runs.grid import run_grid

    spec = {"datasets": ["Synthetic"], "methods": ["ce", "tsd"], "seeds": [0], "teacher": "fcn_small",
            "student": "fcn_small", "epochs": 2, "patience": 2, "teacher_epochs": 2, "n_windows": 2,
            "tsd_bank_size": 4, "saliency_eval_series": 4}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    profile, store = load_profile(tmp_path / "p.yaml"), RunStore(tmp_path / "store")
    assert run_grid(profile.configs(), store, show_progress=False).failed == 0
    study = faithfulness_study(profile, "Synthetic", ["ce", "tsd"], store=store)
    table = study["table"]
    assert table["model"].tolist() == ["teacher", "ce", "ce", "tsd", "tsd"] and study["n_series"] == 4
    assert table[["deletion area", "insertion area"]].stack().between(0, 1).all()
    assert len(study["curves"][("ce", "own saliency", "deletion")]) == 11  # T = 100, L = 10: 10 windows
    auprc = study["auprc"]
    assert auprc["model"].tolist() == ["teacher", "ce", "tsd"] and auprc["saliency AUPRC"].between(0, 1).all()
    assert 0 < auprc["chance"].iloc[0] < 0.5
    # stored beside the run's record, read back (not recomputed) while the code is the same
    ce = profile.base_config("Synthetic", method="ce", seed=0)
    path = store.run_dir(ce) / FILE
    stored = json.loads(path.read_text())
    assert stored["areas"]["teacher_deletion"] == table.iloc[0]["deletion area"] and stored["key"] == ce.key()
    path.write_text(json.dumps({**stored, "areas": {**stored["areas"], "student_own_deletion": 0.123}}))
    again = faithfulness_study(profile, "Synthetic", ["ce"], store=store)["table"]
    assert again.iloc[1]["deletion area"] == 0.123
    path.write_text(json.dumps({**stored, "digest": "other code"}))  # made by other code: measured again
    assert faithfulness_study(profile, "Synthetic", ["ce"], store=store)["table"].iloc[1]["deletion area"] == \
        table.iloc[1]["deletion area"]
    section = faithfulness_section(profile, "Synthetic", ("ce", "kd", "tsd"), store=store)  # kd: not run
    assert list(section.studies) == ["Synthetic"] and section.planted()[0] == "Synthetic"
    assert section.studies["Synthetic"]["table"]["model"].tolist() == ["teacher", "ce", "ce", "tsd", "tsd"]
    assert type(section.figure).__name__ == "Figure"
    with pytest.raises(FileNotFoundError, match="not finished"):
        run_faithfulness(profile.base_config("Synthetic", method="ce", seed=9), store)


def test_faithfulness_views_and_numbers_read_the_table():
    import pandas as pd

    from tsd_lib.analysis.faithfulness_views import auprc_view, faithfulness_numbers, faithfulness_view

    table = pd.DataFrame([
        {"model": "teacher", "ranked by": "own saliency", "deletion area": 0.3, "insertion area": 0.8},
        {"model": "tsd", "ranked by": "own saliency", "deletion area": 0.4, "insertion area": 0.7},
        {"model": "tsd", "ranked by": "teacher's saliency", "deletion area": 0.45, "insertion area": 0.65},
        {"model": "kd", "ranked by": "own saliency", "deletion area": 0.4, "insertion area": 0.7},
        {"model": "kd", "ranked by": "teacher's saliency", "deletion area": 0.35, "insertion area": 0.75}])
    auprc = pd.DataFrame({"model": ["teacher", "kd", "tsd"], "saliency AUPRC": [0.6, 0.3, 0.5], "chance": 0.1})
    view = faithfulness_view(table)
    assert list(view.index) == ["teacher", "TSD", "KD"] and list(view.columns) == [
        "deletion area, own ranking", "deletion area, teacher's ranking", "insertion area, own ranking",
        "insertion area, teacher's ranking"]
    assert view.at["KD", "deletion area, teacher's ranking"] == 0.35 and np.isnan(view.at["teacher", "deletion "
                                                                                           "area, teacher's ranking"])
    planted = auprc_view(auprc)
    assert list(planted.index) == ["teacher", "KD", "TSD", "chance (planted share)"]
    assert planted.iloc[:, 0].tolist() == [0.6, 0.3, 0.5, 0.1]
    n = faithfulness_numbers({"table": table, "auprc": auprc}, methods=("ce", "kd", "tsd"))
    assert all(type(v) in (float, str) for v in n.values())  # glue needs plain values
    # the teacher's ranking locates KD's evidence best, not TSD's: the numbers say so
    assert n["closest"] == "KD" and n["closest_gap"] == pytest.approx(-0.05)
    assert n["deletion_gap_tsd"] == pytest.approx(0.05) and n["insertion_gap_kd"] == pytest.approx(0.05)
    assert np.isnan(n["deletion_gap_ce"]) and np.isnan(n["auprc_ce"])  # CE was not studied
    assert n["auprc_best"] == "teacher" and n["auprc_chance"] == pytest.approx(0.1) and n["auprc_tsd"] == 0.5
    none = faithfulness_numbers(None)
    assert none["closest"] == "none" and none["auprc_best"] == "none" and np.isnan(none["auprc_teacher"])
    assert np.isnan(faithfulness_numbers({"table": table, "auprc": None})["auprc_chance"])
