"""Chapters 4 and 5's setup, aggregation and display helpers, on tiny data (training stubbed)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

from tsd_lib.analysis.saliency_views import (
    BASELINE_FORMAT,
    BASELINE_LABELS,
    SYNTHETIC_MAPS,
    baseline_maps,
    baseline_table,
    baselines_plot,
    gradient_maps,
    methods_plot,
    perturbed_copies_plot,
    planted_check,
    planted_series_plot,
    series_tensors,
    teacher_maps_plot,
    window_shifts,
)
from tsd_lib.analysis.tsd_views import (
    before_after_maps,
    first_batch,
    followed_heatmaps,
    grad_norm,
    tsd_setting,
)
from tsd_lib.metrics import saliency_precision
from tsd_lib.models import SMOKE_SETTINGS, build_model
from tsd_lib.profiles import load_profile
from tsd_lib.saliency import BASELINES

matplotlib.use("Agg")


def _fcn(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("fcn_small", 1, 2, **SMOKE_SETTINGS.get("fcn_small", {})).eval()


def _title(fig) -> str:
    return fig._suptitle.get_text()


# Chapter 4

def test_series_tensors_and_copies_plot(tiny_dataset):
    x, y, X_pool, y_pool = series_tensors(tiny_dataset, 2)
    assert x.shape == (1, 1, 8) and y.tolist() == [1] and torch.equal(x[0], torch.as_tensor(tiny_dataset.X_test[2]))
    assert torch.equal(X_pool, torch.as_tensor(tiny_dataset.X_train)) and y_pool.tolist() == [0, 0, 0, 1, 1, 1]
    fig = perturbed_copies_plot(tiny_dataset, 2, np.zeros((3, 1, 8)), [0, 2, 4], window=3)
    assert len(fig.axes) == 3 and _title(fig) == ("GunPoint test series 2 (class b): windows of length 3 replaced "
                                                  "from other-class series")


def test_window_shifts_sort_by_start():
    logits = np.array([[4.0, 0.0]])
    perturbed = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])  # copies at starts 5, 0, 2
    shifts = window_shifts(np.array([5, 0, 2]), np.array([0.5, 0.0, 2.0]), logits, perturbed, label=0)
    assert shifts.starts.tolist() == [0, 2, 5] and shifts.shift.tolist() == [0.0, 2.0, 0.5]
    assert shifts.q_true == pytest.approx([1 / (1 + np.exp(-4)), 1 / (1 + np.exp(4)), 0.5])
    assert shifts.p_true == pytest.approx(1 / (1 + np.exp(-4))) and shifts.top_start == 2
    assert shifts.top_q_true == pytest.approx(1 / (1 + np.exp(4)))  # the copy at start 2
    assert isinstance(shifts.top_start, int) and isinstance(shifts.top_q_true, float)  # glued as plain numbers
    assert len(shifts.plot(np.zeros(8), window=2, label=0).axes) == 3


def test_baseline_maps_reuse_the_other_class_maps(synthetic):
    syn, _ = synthetic
    X, y = syn.X_test[:2], syn.y_test[:2]
    reused = np.ones((2, syn.length))
    maps = baseline_maps(_fcn(), X, y, syn, window=8, tau=2.0, other_class=reused)
    assert list(maps) == list(BASELINES) and maps["other_class"] is reused
    assert all(m.shape == (2, syn.length) for m in maps.values())
    table = baseline_table(maps)
    assert set(BASELINE_FORMAT) == set(table.columns)
    assert list(table.index) == [BASELINE_LABELS[b] for b in BASELINES]
    fig = baselines_plot(X, maps, "Syn", 7)
    assert _title(fig) == "Syn test series 7: the same teacher, five replacement baselines"
    # one panel per baseline, named in words; the last axes: the colour bar
    assert [ax.get_title(loc="left") for ax in fig.axes[:-1]] == [BASELINE_LABELS[b] for b in BASELINES]


def test_gradient_and_teacher_maps_plots(synthetic):
    syn, _ = synthetic
    X, y = syn.X_test[:2], syn.y_test[:2]
    grads = gradient_maps(_fcn(), X, y, ig_steps=4)
    assert list(grads) == list(SYNTHETIC_MAPS[1:]) and all((m >= 0).all() for m in grads.values())
    fig = methods_plot(X, np.ones((2, syn.length)), grads, "Syn", 3)
    assert [ax.get_title(loc="left") for ax in fig.axes[:-1]] == ["occlusion, other-class (TSD)", *SYNTHETIC_MAPS[1:]]
    fig = teacher_maps_plot(_fcn(), X, y, np.array([0, 1]), np.ones((2, syn.length)), "Syn", window=8, tau=2.0)
    assert _title(fig) == "Syn: teacher saliency (window 8, τ = 2, other-class replacement)"


def test_planted_check_caps_the_series_and_scores_each_map(synthetic, monkeypatch):
    syn, truth = synthetic
    seen = {}

    def teachers(config, data, store, datasets):  # stub: no training
        seen["datasets"] = datasets
        return {"T": (_fcn(), {"test_accuracy": 0.75})}

    monkeypatch.setattr("tsd_lib.analysis.saliency_views.synthetic_teachers", teachers)
    profile = SimpleNamespace(datasets=["Synthetic"], run={"saliency_eval_series": 5})
    check = planted_check(None, syn, None, profile, window=8, tau=2.0, ig_steps=4)
    assert seen["datasets"] == ["Synthetic"] and check.n_eval == 5 and np.array_equal(check.truth, truth[:5])
    assert check.chance == pytest.approx(truth[:5].sum(1).mean() / syn.length)
    assert check.precision["map"].tolist() == list(SYNTHETIC_MAPS) and check.precision["test accuracy"].eq(0.75).all()
    occlusion = check.maps["T"]["occlusion (TSD)"]
    assert check.precision["precision"].iloc[0] == pytest.approx(saliency_precision(occlusion, check.truth))
    fig = planted_series_plot(check)
    assert [ax.get_title(loc="left") for ax in fig.axes[:-1]] == [f"T: {m}" for m in SYNTHETIC_MAPS]
    assert fig.axes[-1].get_ylabel() == "saliency (each row: its min to max)"
    uncapped = planted_check(None, syn, None, SimpleNamespace(datasets=[], run={}), window=8, tau=2.0, ig_steps=4)
    assert uncapped.n_eval == len(syn.y_test)


# Chapter 5

def test_tsd_setting_loads_the_ce_run_first(monkeypatch):
    smoke, calls = load_profile("smoke"), []
    monkeypatch.setattr("tsd_lib.analysis.tsd_views.run", lambda c: calls.append(("run", c.method)))
    monkeypatch.setattr("tsd_lib.analysis.tsd_views.get_dataset", lambda c: "data")
    monkeypatch.setattr("tsd_lib.analysis.tsd_views.load_teacher", lambda c: "teacher")
    monkeypatch.setattr("tsd_lib.analysis.tsd_views.load_student", lambda c: ("student", c.method, c.seed))
    config, data, teacher, student = tsd_setting(smoke, "ItalyPowerDemand")
    assert config == smoke.base_config("ItalyPowerDemand", method="kd+tsd", seed=smoke.seeds[0])
    assert calls == [("run", "ce")] and (data, teacher, student) == ("data", "teacher", ("student", "ce", 0))


def test_first_batch(tiny_dataset):
    X, y, X_pool, y_pool = first_batch(tiny_dataset, size=4)
    assert X.shape == (4, 1, 8) and y.tolist() == [0, 0, 0, 1] and len(X_pool) == len(y_pool) == 6
    assert len(first_batch(tiny_dataset, size=100)[0]) == 6


def test_followed_heatmaps():
    raw = torch.tensor([[[0.5, -0.1], [2.0, 0.0]]])  # (B=1, K=2, k=2)
    starts = torch.tensor([[6, 1]])
    fig = followed_heatmaps(torch.zeros(1, 1, 12), starts, raw, raw.clone().requires_grad_(), 0, window=3,
                            class_names=["a", "b"])
    assert [ax.get_title(loc="left") for ax in fig.axes[1:3]] == ["teacher  $\\hat s_T$", "CE student  $\\hat s_S$"]


def test_grad_norm():
    model = torch.nn.Linear(2, 1)
    (model(torch.ones(1, 2)).sum() * 0 + model.weight.sum() * 3).backward()  # weight grads 3 each, bias 0
    assert grad_norm(model).item() == pytest.approx(np.sqrt(18))


def test_before_after_maps_load_both_students_of_the_seed(synthetic, monkeypatch):
    syn, _ = synthetic
    teacher, loaded = _fcn(0), []
    monkeypatch.setattr("tsd_lib.analysis.tsd_views.load_student", lambda c: loaded.append(c) or teacher)
    configs = {("ce", 1): "ce-1", ("kd+tsd", 1): "tsd-1", ("ce", 0): "ce-0"}
    figs, rho = before_after_maps(teacher, configs, syn, seed=1, window=8, tau=2.0, n_show=2)
    assert loaded == ["ce-1", "tsd-1"] and len(figs) == 2
    assert list(rho) == ["CE student (before)", "KD+TSD student (after)"]
    assert np.allclose(rho["CE student (before)"], 1.0)  # the same model as the teacher
    loaded.clear()
    configs |= {("tsd", 1): "ce+tsd-1"}
    _, rho = before_after_maps(teacher, configs, syn, seed=1, window=8, tau=2.0, n_show=1, after=["tsd", "kd+tsd"])
    assert loaded == ["ce-1", "ce+tsd-1", "tsd-1"]
    assert list(rho) == ["CE student (before)", "TSD student (after)", "KD+TSD student (after)"]
