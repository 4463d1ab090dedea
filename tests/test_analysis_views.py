"""Chapters 2-5's library views: logits, features, saliency and TSD, on tiny arrays with known answers."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from tsd_lib.analysis.features import (
    at_gaps,
    at_table,
    attention_plot,
    attention_profile,
    attention_view,
    class_sorted_sample,
    distance_heatmaps,
    distance_view,
    flat_sequence,
    forward_features,
    relative_distances,
    rkd_comparison,
)
from tsd_lib.analysis.logits import (
    fidelity_scatter,
    fidelity_view,
    gradient_ratios,
    kd_gradient_table,
    kd_table,
    kd_term,
    median_margin_index,
    shared_loss_curves,
    soft_entropy,
    softening,
    student_logits,
    temperature_plot,
    temperature_runs,
    temperature_table,
    temperature_view,
)
from tsd_lib.analysis.saliency_views import (
    BASELINE_LABELS,
    SYNTHETIC_MAPS,
    agreement_table,
    baseline_table,
    first_per_class,
    late_mass,
    maps_plot,
    mid_series,
    planted_examples_plot,
    precision_plot,
    precision_table,
    synthetic_maps,
    synthetic_teachers,
    window_shift_plot,
)
from tsd_lib.analysis.seed_tables import against_reference, mean_gap, seed_stats
from tsd_lib.analysis.tsd_views import (
    bank_comparison,
    maps_against_teacher,
    shift_heatmaps,
    teacher_comparison_plots,
)
from tsd_lib.experiment import RunConfig
from tsd_lib.losses import tsd_loss
from tsd_lib.metrics import softmax
from tsd_lib.models import SMOKE_SETTINGS, build_model
from tsd_lib.report.style import METHOD_COLORS
from tsd_lib.train import predict_logits

matplotlib.use("Agg")


def _fcn(seed: int = 0, n_classes: int = 2):
    torch.manual_seed(seed)
    return build_model("fcn_small", 1, n_classes, **SMOKE_SETTINGS.get("fcn_small", {})).eval()


# Chapter 2: logits

def test_median_margin_index_prefers_right_series():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    assert median_margin_index(proba, np.array([0, 0, 0, 0])) == 2  # margins 0.8, 0.2, 0.4 among the right ones
    assert median_margin_index(proba, np.array([1, 1, 1, 0])) == 3  # none right: all series, margins 0.8 .2 .4 .6


def test_soft_entropy_and_temperature_plot():
    assert soft_entropy(np.zeros((2, 3)), 1.0) == pytest.approx(np.log(3))
    z = np.array([[4.0, 0.0, 0.0]])
    assert soft_entropy(z, 1.0) < soft_entropy(z, 8.0) < np.log(3)
    fig = temperature_plot(np.tile(z, (2, 1)), 0, 0, taus=[1.0, 8.0], profile_tau=8.0)
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 2 * 3  # a bar per temperature and class


def test_kd_gradient_carries_tau_squared():
    g = torch.Generator().manual_seed(0)
    z_s, z_t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    grads = kd_gradient_table(z_s, z_t, taus=[1.0, 2.0, 4.0])
    assert np.allclose(grads.iloc[:, 1], np.array(grads.index) ** 2 * grads.iloc[:, 0])  # kd_loss = tau^2 KL
    plain, scaled = gradient_ratios(grads)
    assert plain == pytest.approx(grads.iloc[0, 0] / grads.iloc[2, 0]) and plain > 4
    assert scaled == pytest.approx(plain / 16)
    assert grads.index.name == "temperature τ" and list(grads.columns) == ["gradient norm, plain KL",
                                                                           "gradient norm, τ² KL (kd_loss)"]


def test_fidelity_scatter_and_kd_term():
    p_t = np.array([[0.9, 0.1], [0.3, 0.7]])
    fig = fidelity_scatter(p_t, {"CE": np.array([[0.8, 0.2], [0.6, 0.4]]), "KD": p_t}, "t")
    assert [ax.get_title() for ax in fig.axes] == ["CE", "KD"]
    assert np.allclose(fig.axes[1].collections[0].get_offsets(), [[0.9, 0.9], [0.7, 0.7]])
    history = {"epochs": [{"train_kd": 0.5}, {"train_kd": 0.2}, {"train_kd": 0.1}], "best_epoch": 2}
    assert kd_term(history) == {"first": 0.5, "best": 0.2, "best_epoch": 2}


def test_temperature_view_shows_the_median_margin_series():
    z = np.array([[3.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 5.0]])  # margins 0.91, 0.46, 0.76; series 3 is wrong
    y = np.zeros(4, dtype=np.int64)
    assert median_margin_index(softmax(z), y) == 2
    fig = temperature_view(z, y, 8.0)
    assert fig.axes[0].get_title() == "test series 2 (true class 0)"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [f"τ = {t}" for t in (1, 2, 4, 8, 16)]
    assert len(temperature_view(z, y, 4.0).axes[0].patches) == 4 * 2  # τ = 4 is on the grid already: 4 temperatures


def test_student_logits_train_a_missing_run_first(monkeypatch):
    model, calls = _fcn(0), []
    monkeypatch.setattr("tsd_lib.analysis.logits.run", lambda config, store=None: calls.append(("run", config, store)))
    monkeypatch.setattr("tsd_lib.analysis.logits.load_student",
                        lambda config, store=None: calls.append(("load", config, store)) or model)
    X = np.random.default_rng(0).normal(size=(3, 1, 16)).astype(np.float32)
    config = RunConfig(dataset="GunPoint", method="ce")
    assert np.allclose(student_logits(config, X, store="S"), predict_logits(model, X))
    assert calls == [("run", config, "S"), ("load", config, "S")]


def test_kd_table_and_softening():
    soft = softening(np.array([[4.0, 0.0], [0.0, 4.0]]), tau=8.0)
    assert soft["top_1"] == pytest.approx(1 / (1 + np.exp(-4)))
    assert soft["top_tau"] == pytest.approx(1 / (1 + np.exp(-0.5)))
    assert soft["entropy_tau"] == pytest.approx(soft_entropy(np.array([[4.0, 0.0]]), 8.0))
    assert soft["entropy_uniform"] == pytest.approx(np.log(2)) and all(type(v) is float for v in soft.values())
    frame = pd.DataFrame([{"method": "ce", "accuracy": 0.8, "agreement": 0.9, "train_seconds": 1.0},
                          {"method": "kd", "accuracy": 0.9, "agreement": 1.0, "train_seconds": 2.0}])
    table = kd_table(frame, ["accuracy", "agreement", "train_seconds"], ["ce", "kd"],
                     {"test_accuracy": 0.95, "test_auc_pr": 0.9})
    assert list(table.index) == ["CE", "KD", "teacher"] and table.loc["KD", "test accuracy"] == "0.900"
    assert list(table.columns) == ["test accuracy", "agreement with the teacher", "training time (s)"]
    assert table.loc["teacher"].tolist() == ["0.950", "1.00", "–"]  # agreement with itself; no training time


def test_mean_gap_reads_a_difference_against_the_seed_spread():
    frame = pd.DataFrame({"method": ["ce"] * 3 + ["kd"] * 3 + ["tsd"] * 3,
                          "accuracy": [0.70, 0.72, 0.74, 0.40, 0.50, 0.60, 0.71, 0.73, 0.75]})
    stats = seed_stats(frame, ["accuracy"], ["ce", "kd", "tsd"])
    below = mean_gap(stats, "kd", "ce", "accuracy")
    assert below["side"] == "below" and below["gap"] == pytest.approx(-0.22) and below["size"] == pytest.approx(0.22)
    assert below["spread"] == pytest.approx(0.1) and below["reading"] == "larger than"  # KD's std, the larger
    close = mean_gap(stats, "tsd", "ce", "accuracy")
    assert close["side"] == "above" and close["reading"] == "within" and close["spread"] == pytest.approx(0.02)
    assert mean_gap(stats, "ce", "ce", "accuracy")["side"] == "level with"
    shown = seed_stats(pd.DataFrame({"method": ["a", "a", "b", "b"], "accuracy": [0.7714, 0.7714, 0.7257, 0.7257]}),
                       ["accuracy"], ["a", "b"])
    assert mean_gap(shown, "a", "b", "accuracy")["size"] == pytest.approx(0.0457)
    assert mean_gap(shown, "a", "b", "accuracy", decimals=3)["size"] == pytest.approx(0.045)  # 0.771 - 0.726
    one = seed_stats(frame.groupby("method").head(1), ["accuracy"], ["ce", "kd"])
    assert mean_gap(one, "kd", "ce", "accuracy")["reading"] == "not comparable with"


def test_against_reference_names_the_methods_beyond_the_seed_spread():
    frame = pd.DataFrame({"method": ["ce"] * 3 + ["kd"] * 3 + ["tsd"] * 3 + ["at"] * 3,
                          "accuracy": [0.70, 0.72, 0.74, 0.40, 0.50, 0.60, 0.71, 0.73, 0.75, 0.80, 0.81, 0.82]})
    out = against_reference(seed_stats(frame, ["accuracy"], ["ce", "kd", "tsd", "at"]), ["ce", "kd", "tsd", "at"],
                            "ce", "accuracy")
    assert out == {"n": 3, "above": "TSD, AT", "n_above": 2, "above_beyond": "AT", "n_above_beyond": 1,
                   "below_beyond": "KD", "n_below_beyond": 1}
    none = against_reference(seed_stats(frame, ["accuracy"], ["ce", "tsd"]), ["ce", "tsd"], "ce", "accuracy")
    assert none["above_beyond"] == "none" and none["below_beyond"] == "none" and none["n"] == 1


def test_temperature_runs_and_table(monkeypatch):
    from tsd_lib.profiles import Profile

    profile = Profile(name="p", datasets=["D"], methods=["ce", "kd"], seeds=[0, 1], run={"tau": 8.0},
                      grids={"kd": {"tau": [1.0, 8.0]}})
    scores = {(1.0, 0): 0.8, (1.0, 1): 0.7, (8.0, 0): 0.5, (8.0, 1): 0.4}
    monkeypatch.setattr("tsd_lib.analysis.logits.run", lambda c: {
        "method": c.method, "seed": c.seed, "accuracy": scores[c.loss_settings()["kd"].tau, c.seed],
        "val_auc_pr": 0.9 if c.loss_settings()["kd"].tau == 1.0 else 0.6})
    runs = temperature_runs(profile, "D", teacher_seed=0)
    assert sorted(runs["tau"].unique()) == [1.0, 8.0] and len(runs) == 4
    with pytest.raises(ValueError, match="trains no 'dkd' students"):
        temperature_runs(profile, "D", "dkd", teacher_seed=0)
    ce = pd.DataFrame({"method": ["ce", "ce"], "accuracy": [0.76, 0.78]})
    table, n = temperature_table(runs, ce, profile_tau=8.0)
    assert list(table.index) == ["1", "8"] and table.index.name == "τ"
    assert table.loc["1", "test accuracy"] == "0.750 ± 0.071" and table.loc["8", "note"] == "the profile's"
    assert table.loc["1", "note"] == "validation's pick" and list(table.columns)[1] == "validation macro AUC-PR"
    assert n["n_taus"] == 2 and n["n_below"] == 2 and n["reference"] == pytest.approx(0.77)
    assert n["val_tau"] == 1.0 and n["val_mean"] == pytest.approx(0.75) and n["profile_mean"] == pytest.approx(0.45)
    assert n["best_tau"] == 1.0 and n["best_mean"] == pytest.approx(0.75) and n["profile_tau"] == 8.0
    assert n["val_side"] == "below" and n["val_size"] == pytest.approx(0.02) and n["val_reading"] == "within"
    assert n["val_spread"] == pytest.approx(0.071)  # as quoted: np.std([0.8, 0.7], ddof=1) to 3 decimals


def test_fidelity_view_has_a_panel_per_student_of_one_seed(monkeypatch):
    models, loaded = {"ce": _fcn(1), "kd": _fcn(2)}, []
    monkeypatch.setattr("tsd_lib.analysis.logits.load_student",
                        lambda config, store=None: loaded.append(config.seed) or models[config.method])
    X = np.random.default_rng(0).normal(size=(4, 1, 16)).astype(np.float32)
    configs = {(m, s): RunConfig(dataset="GunPoint", method=m, seed=s) for m in models for s in (0, 1)}
    z_t = predict_logits(_fcn(0), X)
    fig = fidelity_view(z_t, configs, ["ce", "kd"], 1, X, "D")
    assert loaded == [1, 1] and [ax.get_title() for ax in fig.axes] == ["CE student (seed 1)", "KD student (seed 1)"]
    assert fig.get_suptitle() == "D test series (open circles: student disagrees with the teacher)"
    p_t, p_kd = softmax(z_t), softmax(predict_logits(models["kd"], X))
    top, rows = p_t.argmax(1), np.arange(4)
    assert np.allclose(fig.axes[1].collections[0].get_offsets(), np.c_[p_t[rows, top], p_kd[rows, top]])


def test_shared_loss_curves_draw_the_losses_both_students_have():
    h = {"epochs": [{"epoch": 1, "train_ce": 1.0, "val_loss": 1.2, "train_kd": 0.5},
                    {"epoch": 2, "train_ce": 0.5, "val_loss": 0.9, "train_kd": 0.2}], "best_epoch": 2}
    fig = shared_loss_curves({"CE": h, "KD": h}, "D", 0)
    assert fig.get_suptitle() == "D: CE vs KD student, seed 0 (vertical lines: best epoch)"
    labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
    assert labels == ["CE (train ce)", "CE (val loss)", "KD (train ce)", "KD (val loss)"]


# Chapter 3: features

def test_attention_profile_and_gaps():
    seq = torch.tensor([[[1.0, 2.0, 0.0], [1.0, 0.0, 0.0]]])  # (1, D=2, T=3)
    assert np.allclose(attention_profile({"sequence": seq}), [[1 / 5 ** 0.5, 2 / 5 ** 0.5, 0.0]])
    feats = {"teacher": {"sequence": seq}, "at": {"sequence": 3 * seq}, "ce": {"sequence": seq.flip(-1)}}
    gaps = at_gaps(feats, ["at", "ce"])
    assert gaps["at"] == pytest.approx(0.0, abs=1e-7) and gaps["ce"] > 0  # AT ignores the scale
    table = at_table({"ce": 2e-3, "at": 1e-3})
    assert table.index.name == "student" and list(table.index) == ["AT student", "CE student"]  # closest first
    assert table["AT loss against the teacher"].tolist() == [1e-3, 2e-3]
    fig = attention_plot(np.zeros(3), {"teacher": np.ones(3), "AT student": np.zeros(3)}, "t")
    assert [line.get_color() for line in fig.axes[1].lines] == [METHOD_COLORS["teacher"], METHOD_COLORS["at"]]


def test_relative_distances_and_rkd_comparison():
    flat = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert np.allclose(relative_distances(flat), np.array([[0, 3, 4], [3, 0, 5], [4, 5, 0]]) / 4)
    y = np.array([1, 0, 1, 0, 1])
    assert class_sorted_sample(y, 5).tolist() == [1, 3, 0, 2, 4]
    pick = class_sorted_sample(y, 3, seed=1)
    assert len(set(pick.tolist())) == 3 and np.all(np.diff(y[pick]) >= 0)
    g = torch.Generator().manual_seed(0)
    seq = torch.randn(5, 2, 4, generator=g)
    feats = {"teacher": {"sequence": seq}, "same": {"sequence": 2 * seq}, "other": {"sequence": torch.randn(5, 2, 4)}}
    assert flat_sequence(feats["teacher"], np.array([4, 0])).shape == (2, 8)
    gap, corr = rkd_comparison(feats, np.arange(5), ["same", "other"])
    assert gap["same"] == pytest.approx(0.0, abs=1e-6) and corr["same"] == pytest.approx(1.0)
    assert gap["other"] > 0 and corr["other"] < 1
    dists = {"teacher": relative_distances(flat), "student": relative_distances(2 * flat)}
    fig = distance_heatmaps(dists, np.array([0, 0, 1]), "t")
    assert len(fig.axes[0].lines) == 2  # one class boundary: a horizontal and a vertical line


def test_attention_and_distance_views_draw_the_labelled_models(tiny_dataset):
    data, g = tiny_dataset, torch.Generator().manual_seed(0)
    feats = {n: {"sequence": torch.randn(3, 2, 8, generator=g)} for n in ("teacher", "at", "ce")}
    fig = attention_view(data, feats, {"teacher": "teacher", "at": "AT student"}, i=2)
    assert fig.axes[0].get_title() == "GunPoint test series 2 (class 1)"
    assert np.allclose(fig.axes[0].lines[0].get_ydata(), data.X_test[2, 0])
    assert [line.get_label() for line in fig.axes[1].lines] == ["teacher", "AT student"]
    assert np.allclose(fig.axes[1].lines[1].get_ydata(), attention_profile(feats["at"])[2])
    rows = np.array([2, 0])
    fig = distance_view(feats, {"teacher": "teacher", "ce": "CE student"}, rows, data.y_test, "D")
    assert [ax.get_title() for ax in fig.axes[:2]] == ["teacher", "CE student"]
    assert fig.get_suptitle() == "D: feature-sequence distances of 2 test series (white lines: class boundaries)"
    assert np.allclose(fig.axes[1].images[0].get_array(), relative_distances(flat_sequence(feats["ce"], rows)))
    assert len(fig.axes[0].lines) == 2  # classes 1, 0: one boundary, a horizontal and a vertical line


def test_forward_features():
    X = np.random.default_rng(0).normal(size=(4, 1, 16)).astype(np.float32)
    logits, feats = forward_features({"teacher": _fcn(0), "ce": _fcn(1)}, X)
    assert logits["ce"].shape == (4, 2) and set(feats["teacher"]) == {"sequence", "embedding"}
    assert not logits["ce"].requires_grad


# Chapter 4: saliency

def test_late_mass():
    assert late_mass(np.ones((2, 10))) == pytest.approx(0.2)
    assert late_mass(np.r_[np.zeros(8), np.ones(2)][None]) == pytest.approx(1.0)
    assert late_mass(np.ones((1, 24))) == pytest.approx(5 / 24)  # the last ceil(24/5) = 5 steps


def test_series_pickers():
    assert first_per_class(np.array([0, 0, 1, 1, 0, 1]), 3, 2).tolist() == [0, 1, 2]
    assert first_per_class(np.array([0, 0, 1, 1, 0, 1]), 4, 2).tolist() == [0, 1, 2, 3]
    truth = np.zeros((3, 100), dtype=bool)
    for row, start in enumerate([10, 30, 70]):
        truth[row, start:start + 10] = True
    assert mid_series(truth) == 1 and mid_series(truth[[0, 2]]) == 0


def test_baseline_and_agreement_tables():
    m = np.arange(20, dtype=float).reshape(2, 10) + 1
    by_baseline = {"other_class": m, "same_class": 0.5 * m, "zero": m[:, ::-1].copy(), "mean": m[:, ::-1].copy()}
    table = baseline_table(by_baseline)
    assert table.index.name == "replacement" and list(table.index) == [BASELINE_LABELS[b] for b in by_baseline]
    spearman, mean, relative = table.columns
    assert (spearman, mean, relative) == ("Spearman with the other-class map", "mean saliency, τ²·KL (nats)",
                                          "mean saliency relative to other-class")
    assert table.loc["same-class donor", spearman] == pytest.approx(1.0)
    assert table.loc["zeros", spearman] == pytest.approx(-1.0)
    assert table.loc["other-class donor (TSD)", mean] == pytest.approx(10.5)
    assert table.loc["same-class donor", relative] == pytest.approx(0.5)
    agree = agreement_table(m, {"same": 3 * m, "reversed": m[:, ::-1]}, k=3)
    assert agree.index.name == "saliency map" and agree.loc["same"].tolist() == pytest.approx([1.0, 1.0])
    assert agree.loc["reversed", "top-3 overlap with the occlusion map (IoU)"] == pytest.approx(0.0)
    assert agree.loc["reversed", "Spearman with the occlusion map"] == pytest.approx(-1.0)


def test_precision_table_and_plot():
    truth = np.zeros((2, 10), dtype=bool)
    truth[:, 2:4] = True
    maps = {"T": {"occlusion (TSD)": truth.astype(float), "|gradient|": (~truth).astype(float)}}
    table = precision_table(maps, {"T": 0.95}, truth)
    assert table["precision"].tolist() == [1.0, 0.0] and table["test accuracy"].eq(0.95).all()
    fig = precision_plot(table, chance=0.2, n_eval=2)
    assert fig.axes[0].get_title() == "Synthetic test set, first 2 series" and len(fig.axes[0].patches) == 2


def test_window_and_map_figures(synthetic):
    syn, _ = synthetic
    fig = window_shift_plot(np.zeros(20), np.arange(11), np.linspace(0, 1, 11), np.full(11, 0.5), 0.9, 10, 1)
    assert len(fig.axes) == 3 and len(fig.axes[0].patches) == 3  # the three largest shifts shaded
    maps = np.random.default_rng(0).random((2, syn.length))
    fig = maps_plot(syn.X_test[:2], syn.y_test[:2], np.array([0, 1]), maps, np.array([[0.8, 0.2], [0.3, 0.7]]), "t")
    assert fig.axes[0].get_title(loc="left").startswith(f"test series 0: class {syn.y_test[0]}, teacher P(class) = ")
    assert len(planted_examples_plot(syn).axes) == 4


def test_synthetic_maps(synthetic):
    syn, _ = synthetic
    X, y = syn.X_test[:3], syn.y_test[:3]
    maps = synthetic_maps(_fcn(), X, y, syn, window=8, tau=2.0, ig_steps=4)
    assert tuple(maps) == SYNTHETIC_MAPS
    assert all(m.shape == (3, syn.length) and (m >= 0).all() for m in maps.values())


# Chapter 5: TSD

def test_shift_heatmaps_sort_windows_by_start():
    starts = np.array([5, 0, 2])
    shifts = {"teacher": np.array([[1.0, -1.0], [2.0, -2.0], [3.0, -3.0]]), "student": np.zeros((3, 2))}
    fig = shift_heatmaps(np.zeros(12), starts, shifts, window=3, class_names=["a", "b"], label="series 0")
    assert fig.axes[0].get_title() == "series 0: the 3 replaced windows (overlaps look darker)"
    image = np.asarray(fig.axes[1].images[0].get_array())
    assert np.allclose(image, [[2.0, 3.0, 1.0], [-2.0, -3.0, -1.0]])  # (classes, windows by start 0, 2, 5)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["0", "2", "5"]


def test_maps_against_teacher_and_the_bank_comparison(synthetic):
    syn, _ = synthetic
    teacher = _fcn(0)
    maps, rho = maps_against_teacher({"teacher": teacher, "copy": teacher, "other": _fcn(1)}, syn.X_test[:2],
                                     syn.y_test[:2], syn.X_train, syn.y_train, window=8, tau=2.0)
    assert np.allclose(maps["copy"], maps["teacher"]) and np.allclose(rho["copy"], 1.0)
    assert set(rho) == {"copy", "other"}
    config = RunConfig(dataset="Synthetic", teacher="fcn", student="fcn_small", n_windows=3, window=8, tau=2.0,
                       tsd_bank_size=4)
    X, y = torch.as_tensor(syn.X_train[:4]), torch.as_tensor(syn.y_train[:4])
    student = _fcn(1)
    bank = bank_comparison(teacher, student, syn, config, X, y, bank_size=4, draws=2)
    assert (bank.bank_size, bank.n_series) == (4, len(syn.X_train)) and len(bank.fresh) == 2
    assert bank.build_seconds > 0 and bank.fresh_seconds > 0 and bank.mebibytes > 0
    assert bank.bank_loss >= 0 and all(v >= 0 for v in bank.fresh)
    fresh = tsd_loss(student, teacher, X, y, torch.as_tensor(syn.X_train), torch.as_tensor(syn.y_train),
                     n_windows=3, window=8, tau=2.0, generator=torch.Generator().manual_seed(1))
    assert bank.fresh[1] == pytest.approx(fresh.item())  # draw s uses generator seed s
    with pytest.raises(ValueError, match="bank_size"):
        bank_comparison(teacher, student, syn, config, X, y, bank_size=0)


def test_teacher_comparison_plots_label_students(synthetic):
    syn, _ = synthetic
    maps = {"teacher": np.ones((2, syn.length)), "CE": np.zeros((2, syn.length))}
    figs = teacher_comparison_plots(syn.X_test[:2], syn.y_test[:2], maps, {"CE": np.array([0.25, -0.5])},
                                    syn.class_names, seed=3)
    assert len(figs) == 2
    assert [ax.get_title(loc="left") for ax in figs[1].axes[:2]] == ["teacher", "CE: Spearman with teacher -0.50"]
    assert figs[0]._suptitle.get_text() == f"test series 0 (class {syn.class_names[int(syn.y_test[0])]}), seed 3"


def test_synthetic_teachers_include_the_profile_teacher_only_when_it_trains_on_synthetic(tmp_path, synthetic):
    from tsd_lib.experiment import RunStore

    syn, _ = synthetic
    config = RunConfig(dataset="Synthetic", teacher="fcn", student="fcn_small", teacher_epochs=1, epochs=1,
                       patience=1)
    store = RunStore(tmp_path)
    only_small = synthetic_teachers(config, syn, store, ["GunPoint"])
    assert list(only_small) == ["small FCN"] and "test_accuracy" in only_small["small FCN"][1]
    both = synthetic_teachers(config, syn, store, ["GunPoint", "synthetic"])
    assert list(both) == ["FCN 128-256-128 (profile)", "small FCN"]
