"""Chapters 4 and 5's setup, aggregation and display helpers, on tiny data (training stubbed)."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch

from tsd_lib.analysis import (
    BASELINE_FORMAT,
    SYNTHETIC_MAPS,
    baseline_maps,
    baseline_table,
    baselines_plot,
    before_after_maps,
    copies_note,
    first_batch,
    followed_heatmaps,
    grad_norm,
    gradient_maps,
    loss_note,
    methods_plot,
    perturbed_copies_plot,
    planted_check,
    planted_series_plot,
    series_tensors,
    student_shift_note,
    students_caption,
    teacher_maps_plot,
    teacher_shift_note,
    tsd_setting,
    window_shift_note,
    window_shifts,
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


def test_window_shifts_sort_by_start_and_note():
    logits = np.array([[4.0, 0.0]])
    perturbed = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])  # copies at starts 5, 0, 2
    shifts = window_shifts(np.array([5, 0, 2]), np.array([0.5, 0.0, 2.0]), logits, perturbed, label=0)
    assert shifts.starts.tolist() == [0, 2, 5] and shifts.shift.tolist() == [0.0, 2.0, 0.5]
    assert shifts.q_true == pytest.approx([1 / (1 + np.exp(-4)), 1 / (1 + np.exp(4)), 0.5])
    assert shifts.p_true == pytest.approx(1 / (1 + np.exp(-4))) and shifts.top_start == 2
    assert window_shift_note(shifts, 4, (1, 3, 2)) == (
        "4 perturbed copies; the per-class saliency tensor has shape (1, 3, 2) (series × windows × classes). The "
        "largest shift is at t = 2, where the teacher's probability of the true class falls from 0.982 to 0.018.")
    assert len(shifts.plot(np.zeros(8), window=2, label=0).axes) == 3


def test_baseline_maps_reuse_the_other_class_maps(synthetic):
    syn, _ = synthetic
    X, y = syn.X_test[:2], syn.y_test[:2]
    reused = np.ones((2, syn.length))
    maps = baseline_maps(_fcn(), X, y, syn, window=8, tau=2.0, other_class=reused)
    assert list(maps) == list(BASELINES) and maps["other_class"] is reused
    assert all(m.shape == (2, syn.length) for m in maps.values())
    assert set(BASELINE_FORMAT) == set(baseline_table(maps).columns)
    fig = baselines_plot(X, maps, "Syn", 7)
    assert _title(fig) == "Syn test series 7: the same teacher, five replacement baselines"
    assert [ax.get_title(loc="left") for ax in fig.axes[:-1]] == list(BASELINES)  # the last: the colour bar


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


def test_first_batch_and_copies_note(tiny_dataset):
    X, y, X_pool, y_pool = first_batch(tiny_dataset, size=4)
    assert X.shape == (4, 1, 8) and y.tolist() == [0, 0, 0, 1] and len(X_pool) == len(y_pool) == 6
    assert len(first_batch(tiny_dataset, size=100)[0]) == 6
    starts, donors = torch.tensor([[0, 1], [2, 3]]), torch.tensor([[3, 4], [0, 1]])
    note = copies_note(X[[0, 3]], y[[0, 3]], torch.zeros(4, 1, 8), starts, donors, y_pool)
    assert note == ("Batch `X` (2, 1, 8) -> copies (4, 1, 8) (B*K = 2*2). Every donor from another class: **True**; "
                    "starts distinct within each series: **True**.")
    assert "class: **False**; starts distinct within each series: **False**" in copies_note(
        X[[0, 3]], y[[0, 3]], torch.zeros(4, 1, 8), torch.tensor([[0, 0], [2, 3]]), torch.zeros(2, 2).long(), y_pool)


def test_shift_notes_and_heatmaps():
    raw = torch.tensor([[[0.5, -0.1], [2.0, 0.0]]])  # (B=1, K=2, k=2)
    assert teacher_shift_note(1e-7, True, raw) == (
        "Largest difference between `perturbed_logits` and a plain forward pass: 1.0e-07. By-hand teacher shift "
        "equals `distribution_shift`: **True**. Shape (1, 2, 2); summed over classes, the smallest window shift is "
        "0.4 (a KL divergence: never below zero beyond float rounding); 25% of the single per-class terms are "
        "negative.")
    starts = torch.tensor([[6, 1]])
    note = student_shift_note(starts, raw, raw, raw.clone().requires_grad_(), 0)
    assert note.startswith("For this series the teacher's largest shift comes from replacing the window starting "
                           "at t = 1.") and note.endswith("on this series: 1.00.")
    fig = followed_heatmaps(torch.zeros(1, 1, 12), starts, raw, raw.clone().requires_grad_(), 0, window=3,
                            class_names=["a", "b"])
    assert [ax.get_title(loc="left") for ax in fig.axes[1:3]] == ["teacher  $\\hat s_T$", "CE student  $\\hat s_S$"]


def test_grad_norm_and_loss_note():
    model = torch.nn.Linear(2, 1)
    (model(torch.ones(1, 2)).sum() * 0 + model.weight.sum() * 3).backward()  # weight grads 3 each, bias 0
    assert grad_norm(model).item() == pytest.approx(np.sqrt(18))
    note = loss_note(torch.tensor(0.25), torch.tensor(0.25), True, torch.tensor(1.5), {"ce": 1.0, "tsd": 100.0})
    assert note == ("TSD loss by hand: 0.250000; `tsd_loss` with the same generator: 0.250000 (equal: **True**). "
                    "Gradient norm on the student's parameters: 1.5 (the teacher received none: it ran under "
                    "`no_grad`). Weights of the profile's KD+TSD objective: w_ce = 1, w_tsd = 100.")


def test_students_caption():
    import pandas as pd

    frame = pd.DataFrame({"teacher_accuracy": [0.9, 0.9], "teacher_auc_pr": [0.8, 0.8]})
    assert students_caption("D", frame, n_seeds=2) == (
        "**D**, test split, mean ± std over 2 student seed(s) (teacher: accuracy 0.900, macro AUC-PR 0.800).")


def test_before_after_maps_load_both_students_of_the_seed(synthetic, monkeypatch):
    syn, _ = synthetic
    teacher, loaded = _fcn(0), []
    monkeypatch.setattr("tsd_lib.analysis.tsd_views.load_student", lambda c: loaded.append(c) or teacher)
    configs = {("ce", 1): "ce-1", ("kd+tsd", 1): "tsd-1", ("ce", 0): "ce-0"}
    figs, rho = before_after_maps(teacher, configs, syn, seed=1, window=8, tau=2.0, n_show=2)
    assert loaded == ["ce-1", "tsd-1"] and len(figs) == 2
    assert list(rho) == ["CE student (before)", "KD+TSD student (after)"]
    assert np.allclose(rho["CE student (before)"], 1.0)  # the same model as the teacher
