"""Chapter 7 (calibration, substitution, its summary) and the reproducing page's tables, on hand-built
probabilities, runs and profiles."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tsd_lib.analysis.costs import cost_tables, profiles_table
from tsd_lib.analysis.fidelity_views import (
    beyond_accuracy_numbers,
    ece_table,
    ece_text,
    kl_cdf_plot,
    reliability_plot,
    substitution,
    substitution_text,
    tsd_colors,
)
from tsd_lib.analysis.seed_tables import seed_stats
from tsd_lib.metrics import ece
from tsd_lib.report import metric_bars
from tsd_lib.report.style import METHOD_COLORS

Y = np.array([0, 1, 0, 0])
TEACHER = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])  # wrong on the last series only
COPY = TEACHER.copy()
FLIPPED = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])  # breaks series 2, repairs series 3


def _students() -> dict[tuple[str, int], np.ndarray]:
    return {("kd", 0): COPY, ("kd", 1): COPY, ("ce", 0): FLIPPED, ("ce", 1): COPY}


def test_substitution_counts_breaks_repairs_and_per_series_kl():
    subst, kl = substitution(Y, TEACHER, _students(), ["ce", "kd"])
    assert list(subst.index) == ["ce", "kd"]
    assert subst.at["kd", ("agreement", "mean")] == 1.0 and subst.at["kd", ("median per-series KL", "mean")] == 0.0
    assert subst.at["ce", ("agreement", "mean")] == pytest.approx(0.75)  # seed 0 agrees on 2 of 4, seed 1 on 4
    assert subst.at["ce", ("breaks (teacher right, student wrong)", "mean")] == pytest.approx(0.125)
    assert subst.at["ce", ("repairs (teacher wrong, student right)", "mean")] == pytest.approx(0.125)
    assert kl["ce"].shape == (8,) and np.count_nonzero(kl["ce"] > 1e-9) == 2 and np.all(kl["kd"] == 0)
    text = substitution_text(subst)
    assert text.index.name == "student" and list(text.index) == ["CE", "KD"]
    assert list(text.columns) == ["agreement with the teacher", "breaks (teacher right, student wrong)",
                                  "repairs (teacher wrong, student right)", "median per-series KL, nats",
                                  "90th percentile per-series KL, nats"]
    assert text.at["KD", "agreement with the teacher"] == "1.00 ± 0.00"
    assert text.at["CE", "agreement with the teacher"] == "0.750 ± 0.354"


def test_ece_table_has_students_and_the_teacher():
    table = ece_table(Y, TEACHER, _students())
    assert list(table.index) == ["kd student", "ce student", "teacher"]
    assert table.at["teacher", "mean"] == pytest.approx(ece(Y, TEACHER)) and np.isnan(table.at["teacher", "std"])
    assert table.at["ce student", "mean"] == pytest.approx((ece(Y, FLIPPED) + ece(Y, COPY)) / 2)
    assert table["seeds"].tolist() == [2, 2, 1]
    text = ece_text(table)
    assert list(text.index) == ["KD student", "CE student", "teacher"] and text["seeds"].tolist() == [2, 2, 1]
    assert text.at["teacher", "ECE (mean ± std over seeds)"].count("±") == 0  # one teacher: no std


def _stats(values: dict[str, list[dict[str, float]]]) -> pd.DataFrame:
    frame = pd.DataFrame([{"method": m, **r} for m, runs in values.items() for r in runs])
    return seed_stats(frame, [c for c in frame if c != "method"], list(values))


def test_beyond_accuracy_numbers_for_the_prose():
    fid = _stats({"ce": [{"agreement": 0.7, "kl_teacher_student": 0.5, "js_teacher_student": 0.1}] * 2,
                  "kd": [{"agreement": 0.8, "kl_teacher_student": 0.3, "js_teacher_student": 0.05},
                         {"agreement": 0.82, "kl_teacher_student": 0.31, "js_teacher_student": 0.05}],
                  "kd+tsd": [{"agreement": 0.9, "kl_teacher_student": 0.2, "js_teacher_student": 0.05},
                             {"agreement": 0.92, "kl_teacher_student": 0.21, "js_teacher_student": 0.05}]})
    sal = _stats({"ce": [{"saliency_spearman": 0.2}, {"saliency_spearman": 0.4}],
                  "kd": [{"saliency_spearman": 0.3}, {"saliency_spearman": 0.3}],
                  "kd+tsd": [{"saliency_spearman": 0.35}, {"saliency_spearman": 0.35}]})
    students = {("kd", 0): COPY, ("kd", 1): COPY, ("kd+tsd", 0): COPY, ("kd+tsd", 1): FLIPPED, ("ce", 0): FLIPPED}
    subst, _ = substitution(Y, TEACHER, students, ["kd", "kd+tsd", "ce"])
    eces = ece_table(Y, TEACHER, students)
    n = beyond_accuracy_numbers(fid, sal, eces, subst)
    assert all(type(v) in (float, str) for v in n.values())  # glue needs plain values
    assert n["agreement_kdtsd"] == pytest.approx(0.91) and n["agreement_kd_std"] == pytest.approx(np.std([0.8, 0.82],
                                                                                                         ddof=1))
    assert n["kl_kd"] == pytest.approx(0.305) and n["spearman_ce"] == pytest.approx(0.3)
    assert np.isnan(n["agreement_tsd"]) and np.isnan(n["ece_tsd"])  # TSD was not run
    assert n["ece_teacher"] == pytest.approx(ece(Y, TEACHER)) and n["ece_kd"] == pytest.approx(ece(Y, COPY))
    assert n["ece_best_student"] == "CE student" and n["ece_best"] == pytest.approx(ece(Y, FLIPPED))
    # the KD students copy the teacher: closest by median KL and highest agreement, whoever it favours
    assert n["closest_student"] == "KD" and n["closest_median_kl"] == 0.0 and n["top_agreement_student"] == "KD"
    assert n["breaks_kdtsd"] == pytest.approx(0.125) and n["repairs_ce"] == pytest.approx(0.25)


def test_chapter_seven_figures():
    fig = reliability_plot(Y, TEACHER, _students(), ["ce", "kd"], 0, title="t")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()][1:] == ["teacher", "ce student", "kd student"]
    _, kl = substitution(Y, TEACHER, _students(), ["ce", "kd"])
    fig = kl_cdf_plot(kl, title="t")
    steps = fig.axes[0].get_lines()
    assert len(steps) == 2 and steps[1].get_xdata().min() == 1e-6 and steps[1].get_ydata().max() == 1.0
    assert tsd_colors(["ce", "kd+tsd", "tsd"]) == [METHOD_COLORS[m] for m in ("ce", "kd+tsd", "tsd")]
    runs = pd.DataFrame({"method": ["ce", "ce", "tsd"], "x": [0.2, 0.4, 0.5]})
    fig = metric_bars(runs, ["x"], colors=["0.5", "tab:red"])  # colours given: they win over the methods'
    bars = fig.axes[0].patches
    assert [round(b.get_height(), 6) for b in bars] == [0.3, 0.5]
    assert bars[1].get_facecolor()[:3] == pytest.approx((0.839, 0.153, 0.157), abs=1e-3)  # tab:red
    plt.close("all")


def _profile(name: str, methods: list[str], epochs: int) -> SimpleNamespace:
    configs = [SimpleNamespace(method=m, epochs=epochs) for m in methods]
    return SimpleNamespace(name=name, datasets=["A"], methods=methods, seeds=[0, 1], teacher_seeds=[0],
                           tsd_weights=[1.0], run={"epochs": epochs}, description="two\n  lines",
                           configs=lambda: configs)


def test_profiles_and_cost_tables():
    profiles = [_profile("small", ["ce", "tsd"], 100), _profile("big", ["ce", "kd", "kd"], 500)]
    table = profiles_table(profiles)
    assert table.loc["small"].to_dict() == {"datasets": 1, "methods": 2, "student seeds": 2, "teacher seeds": 1,
                                            "TSD weights": 1, "max epochs": 100, "runs": 2, "description": "two lines"}
    records = [{"method": "ce", "train_seconds": 10.0, "epochs_run": 10, "wall_seconds": 60.0, "device_used": "cpu"},
               {"method": "ce", "train_seconds": 30.0, "epochs_run": 10, "wall_seconds": 60.0, "device_used": "cpu"},
               {"method": "tsd", "train_seconds": 6.0, "epochs_run": 0, "wall_seconds": 60.0, "device_used": "cpu"}]
    per_method, cost, numbers = cost_tables(records, profiles)
    assert per_method.to_dict() == {"ce": 2.0, "tsd": 6.0} and per_method.name == "median s / epoch (this machine)"
    hours = cost["upper bound (cpu), hours"]
    assert hours["small"] == pytest.approx((2.0 + 6.0) * 100 / 3600)
    assert hours["big"] == pytest.approx((2.0 + 4.0 + 4.0) * 500 / 3600)  # kd never ran: the median, 4 s/epoch
    assert numbers == {"runs": 3, "minutes": 3.0, "device": "cpu"}
    per_method, cost, numbers = cost_tables(iter([]), profiles)  # an empty store: empty tables, zero runs
    assert per_method.empty and cost["upper bound (none), hours"].isna().all()
    assert numbers == {"runs": 0, "minutes": 0.0, "device": "none"}


def test_predictions_on_test_train_missing_runs_and_read_every_seed(tmp_path):
    import yaml

    from tsd_lib.analysis.fidelity_views import predictions_on_test
    from tsd_lib.experiment import RunStore
    from tsd_lib.profiles import load_profile

    spec = {"datasets": ["ItalyPowerDemand"], "methods": ["ce", "kd"], "seeds": [0, 1], "teacher": "fcn_small",
            "student": "fcn_small", "epochs": 2, "patience": 2, "teacher_epochs": 2, "saliency_eval_series": 4}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(spec))
    profile, store = load_profile(tmp_path / "p.yaml"), RunStore(tmp_path / "store")
    pred = predictions_on_test(profile, "ItalyPowerDemand", ("ce", "kd", "kd+tsd"), store=store)
    assert pred.methods == ["ce", "kd"]  # kd+tsd is not in the profile
    assert sorted(pred.p_student) == [("ce", 0), ("ce", 1), ("kd", 0), ("kd", 1)]
    assert pred.p_teacher.shape == (len(pred.y), 2) and np.allclose(pred.p_teacher.sum(1), 1, atol=1e-5)
    assert not np.allclose(pred.p_student["ce", 0], pred.p_student["ce", 1])  # two seeds, two students
    assert all(store.has(profile.base_config("ItalyPowerDemand", method=m, seed=s)) for m, s in pred.p_student)


def test_the_reproducing_pages_facts(tmp_path):
    import json
    from types import SimpleNamespace

    from tsd_lib.analysis.costs import grid_benchmark, grid_time, lock_pin, python_versions

    profile = SimpleNamespace(configs=lambda: [SimpleNamespace(key=lambda k=k: k) for k in ("a", "b", "c")])
    records = [{"key": "a", "wall_seconds": 60.0}, {"key": "b", "wall_seconds": 120.0},
               {"key": "x", "wall_seconds": 1e4}]
    assert grid_time(profile, records) == {"runs": 2, "configs": 3, "minutes": 3.0}
    assert np.isnan(grid_time(profile, [])["minutes"])
    (tmp_path / "lock.txt").write_text("numpy==2.3.5\ntorch==2.13.0\n")
    assert lock_pin("torch", tmp_path / "lock.txt") == "2.13.0"
    assert lock_pin("numpy", tmp_path / "none.txt").count(".") >= 1  # no lock: the installed version
    assert lock_pin() == lock_pin("torch")  # the repository's lock
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nrequires-python = ">=3.11,<3.13"\n')
    assert python_versions(tmp_path / "pyproject.toml") == "3.11 or 3.12"
    (tmp_path / "bench.json").write_text(json.dumps({"dask_over_local": 1.02, "dask_stock_cluster_over_local": 0.91,
                                                     "cpu_count": 2, "passes": {"local": [{"n_jobs": 2}]}}))
    assert grid_benchmark(tmp_path / "bench.json") == {"dask_over_local": 1.02, "stock_over_local": 0.91,
                                                       "workers": 2, "cores": 2}
    assert np.isnan(grid_benchmark(tmp_path / "none.json")["dask_over_local"])
