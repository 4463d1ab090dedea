"""Chapter 1's library views and the shared seed table: tiny data sets and records with known answers."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from tsd_lib.analysis import (
    ARCH,
    SEED_STUDY_COLUMNS,
    architecture_table,
    book_teacher_configs,
    class_examples_plot,
    class_share_note,
    class_share_plot,
    compare_means,
    confidence_plot,
    dataset_line,
    literature_note,
    literature_plot,
    mean_std,
    model_confidence_plot,
    pair_note,
    pair_sizes,
    paper_pair,
    preprocessing_note,
    preprocessing_plot,
    preprocessing_stages,
    preprocessing_view,
    profile_study_picks,
    profile_teacher,
    profile_teacher_studies,
    seed_stats,
    seed_table,
    seeds_caption,
    split_counts,
    student_runs,
    studies_summary,
    teacher_histories,
    teacher_studies,
    training_note,
)
from tsd_lib.experiment import RunConfig, get_dataset
from tsd_lib.models import SMOKE_SETTINGS, build_model, count_parameters
from tsd_lib.profiles import load_profile
from tsd_lib.train import predict_logits

matplotlib.use("Agg")


def _runs() -> pd.DataFrame:
    return pd.DataFrame([{"method": "ce", "seed": 0, "accuracy": 0.8, "auc_pr": 0.7},
                         {"method": "ce", "seed": 1, "accuracy": 0.9, "auc_pr": 0.8},
                         {"method": "kd", "seed": 0, "accuracy": 0.95, "auc_pr": 0.9}])


def test_seed_table_is_mean_std_over_seeds():
    table = seed_table(_runs(), ["accuracy", "auc_pr"], ["kd", "ce"], labels={"auc_pr": "AUC-PR"}, seeds_column=True)
    assert list(table.index) == ["kd", "ce"] and list(table.columns) == ["seeds", "accuracy", "AUC-PR"]
    assert table.loc["ce", "accuracy"] == "0.850 ± 0.071" and table.loc["kd", "accuracy"] == "0.950"  # one seed
    assert list(table["seeds"]) == [1, 2]
    assert mean_std(float("nan"), float("nan")) == "–" and mean_std(1.23456, 0.1, 2) == "1.23 ± 0.10"
    with pytest.raises(ValueError, match="no column 'ece'"):
        seed_stats(_runs(), ["ece"], ["ce"])


def test_compare_means_against_the_seed_spread():
    stats = seed_stats(_runs(), ["accuracy"], ["ce", "kd"])
    assert compare_means(stats, "kd", "ce", "accuracy") == \
        "0.950 vs 0.850: higher than, a gap larger than the seed-to-seed spread"
    close = seed_stats(pd.concat([_runs(), pd.DataFrame([{"method": "kd", "accuracy": 0.7}])]), ["accuracy"],
                       ["ce", "kd"])
    assert compare_means(close, "ce", "kd", "accuracy").endswith("a gap within the seed-to-seed spread")
    single = seed_stats(_runs()[_runs().seed == 0], ["accuracy"], ["ce", "kd"])
    assert compare_means(single, "ce", "kd", "accuracy") == \
        "0.800 vs 0.950: lower than, with a single seed we cannot tell whether that exceeds seed noise"


def test_student_runs_cover_every_method_and_seed(monkeypatch):
    smoke = load_profile("smoke")

    class _Source:
        def load_record(self, config):
            return {"method": config.method, "seed": config.seed}

    configs, frame = student_runs(smoke, "ItalyPowerDemand", ["ce", "kd"], teacher_seed=3, source=_Source())
    assert list(configs) == [("ce", 0), ("ce", 1), ("kd", 0), ("kd", 1)]  # the smoke profile's seeds 0 and 1
    assert configs["kd", 1] == smoke.base_config("ItalyPowerDemand", teacher_seed=3, method="kd", seed=1)
    assert frame[["method", "seed"]].values.tolist() == [["ce", 0], ["ce", 1], ["kd", 0], ["kd", 1]]
    trained = []
    monkeypatch.setattr("tsd_lib.analysis.tables.run", lambda config: trained.append(config) or {"method": "ce"})
    _, frame = student_runs(smoke, "ItalyPowerDemand", ["ce"], teacher_seed=3)  # no source: run trains what is missing
    assert trained == [configs["ce", 0], configs["ce", 1]] and list(frame["method"]) == ["ce", "ce"]


def test_seeds_caption():
    assert seeds_caption("D", [0, 1]) == "**D**, 2 student seeds (0, 1), test split:"
    assert seeds_caption("D", [0, 1], {"test_accuracy": 0.9, "test_auc_pr": 0.85}) == \
        "**D**, 2 student seeds (0, 1); teacher: accuracy 0.900, AUC-PR 0.850."


def test_split_counts_shares_and_figures(tiny_dataset):
    data = tiny_dataset
    counts = split_counts(data)
    assert list(counts.index) == ["class 0 (label a)", "class 1 (label b)"]
    assert counts["train"].tolist() == [3, 3] and counts["test"].tolist() == [2, 1]
    assert "largest difference in class share between train and validation is 0.000" in class_share_note(counts)
    assert dataset_line(data) == ("**GunPoint**: 2 classes, 1 channel(s), series of length 8 after preprocessing; "
                                  "6 training, 2 validation and 3 test series.")
    assert len(class_examples_plot(data).axes) == 2
    assert len(class_share_plot(counts, "GunPoint").axes[0].patches) == 2 * 3  # two classes x three splits
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    legend = [t.get_text() for t in confidence_plot(proba, data.y_test, "t").axes[0].get_legend().get_texts()]
    assert legend == ["correct (1)", "wrong (2)"]


def test_preprocessing_stages_and_note():
    config = RunConfig(dataset="GunPoint", length=100)
    raw, resampled = preprocessing_stages(config)
    assert (raw.length, resampled.length) == (150, 100)
    data = get_dataset(config)
    note = preprocessing_note(raw, resampled, data)
    assert note.startswith("Original length 150 → 100. After z-normalisation the series has mean ")
    assert "standard deviation 1.000" in note
    assert len(preprocessing_plot(raw, resampled, data).axes) == 2
    with pytest.raises(ValueError):
        preprocessing_stages(RunConfig(dataset="Synthetic"))


def test_model_confidence_plot_reads_the_model_on_the_test_split(tiny_dataset):
    torch.manual_seed(0)
    model = build_model("fcn_small", 1, 2, **SMOKE_SETTINGS.get("fcn_small", {})).eval()
    right = int((predict_logits(model, tiny_dataset.X_test).argmax(1) == tiny_dataset.y_test).sum())
    ax = model_confidence_plot(model, tiny_dataset, "t").axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"correct ({right})", f"wrong ({3 - right})"]
    assert ax.get_title() == "t"


def test_preprocessing_view_draws_and_notes_or_says_why(tiny_dataset):
    config = RunConfig(dataset="GunPoint", length=100)
    data = get_dataset(config)
    raw, resampled = preprocessing_stages(config)
    plt.close("all")
    fig, note = preprocessing_view(config, data, i=1)
    assert note == preprocessing_note(raw, resampled, data, i=1)
    assert plt.get_fignums() == [fig.number] and fig.get_suptitle().startswith("GunPoint, training series 1 ")
    plt.close("all")
    synthetic = RunConfig(dataset="Synthetic")
    fig, note = preprocessing_view(synthetic, tiny_dataset)
    assert note.startswith(f"*No raw version to show for `{synthetic.dataset}`: ") and note.endswith("*")
    assert fig.axes[0].get_title().endswith("no raw version")  # the series as loaded: a figure all the same


def test_architecture_table_and_pair_note(tiny_dataset):
    data = tiny_dataset
    config = RunConfig(dataset="GunPoint", teacher="fcn", student="fcn_small")
    table = architecture_table(data, config, "p")
    assert list(table.index) == ["lstm_teacher", "lstm_student", "fcn", "fcn_small"]
    assert table.loc["fcn", "in profile p"] == "teacher" and table.loc["fcn_small", "in profile p"] == "student"
    assert table.loc["lstm_teacher", "in profile p"] == ""
    assert table.loc["fcn", "parameters"] == count_parameters(build_model("fcn", 1, 2))
    assert table.loc["fcn_small", "logits"] == (3, 2)  # all three test series (at most 4)
    n_teacher, n_student = pair_sizes(data, config)
    assert pair_note(data, config, "p").startswith(f"Profile `p` distils the **{ARCH['fcn']}** teacher (`fcn`, "
                                                   f"{n_teacher:,} parameters)")
    assert f"**{n_teacher / n_student:.0f}×** smaller" in pair_note(data, config, "p")


def test_training_and_literature_notes():
    histories = {"A": {"epochs": [{}] * 3, "best_epoch": 2, "stopped_early": True},
                 "B": {"epochs": [{}] * 5, "best_epoch": 5, "stopped_early": False}}
    assert training_note(histories) == ("The A teacher ran 3 epochs and kept epoch 2 (early stopping ended it). "
                                        "The B teacher ran 5 epochs and kept epoch 5 (the epoch cap ended it).")
    teachers = pd.DataFrame({"dataset": ["D", "E", "F"], "teacher": ["fcn", "fcn", "lstm_teacher"],
                             "teacher seed": [0, 1, 0], "chosen": [True, True, True],
                             "stopped early": [True, False, True], "test accuracy": [0.99, 0.8, 0.5],
                             "published FCN": [1.0, 0.9, np.nan]})
    teachers["gap to published"] = teachers["test accuracy"] - teachers["published FCN"]
    note = literature_note(teachers, "S")
    assert note.startswith("Published: S. More than 3 points below the published accuracy: E seed 1 (-0.100, "
                           "ended by the epoch cap); section 1.7")
    assert note.endswith("Early stopping ended 2 of 3 teachers; the others ran into the epoch cap.")
    near = literature_note(teachers.iloc[[0, 2]], "S")
    assert "Every FCN teacher is within 3 points of the published accuracy (largest gap -0.010)." in near
    assert near.endswith("Early stopping ended 2 of 2 teachers.")
    fig = literature_plot(teachers, ARCH)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][0] == "D\nFCN 128-256-128"


class _TeacherStore:
    """Stored teachers with known validation scores: seed 24 is the best on validation AUC-PR."""

    def has_teacher(self, config):
        return True

    def load_teacher_record(self, config):
        auc = 0.9 if config.teacher_seed == 24 else 0.5
        return {"epochs_run": 10, "best_epoch": 5, "stopped_early": True, "val_accuracy": auc, "val_auc_pr": auc,
                "val_loss": 1 - auc, "test_accuracy": auc, "test_auc_pr": auc, "train_seconds": 1.0}

    def load_teacher_history(self, config):
        return {"seed": config.teacher_seed}


def test_profile_study_picks_and_teacher_studies():
    smoke, studies = load_profile("smoke"), load_profile("studies")
    # the smoke pair has teacher_seeds: no single-seed teacher to check, and no error
    assert profile_study_picks(smoke.pair_configs(), studies.teacher_study_configs(), _TeacherStore(), ARCH) == ({}, [])
    lstm = load_profile("quick").pair_configs("lstm")[0].replace(teacher_seeds=())
    store = _TeacherStore()
    for seed, word in [(24, "the seed validation picks among "), (1, "**not** the seed validation picks (24) among ")]:
        pair = lstm.replace(teacher_seed=seed)
        picks, lines = profile_study_picks([pair, pair], studies.teacher_study_configs(), store, ARCH)
        assert picks == {pair.teacher_key(): 24} and len(lines) == 1
        assert lines[0] == (f"- The profile's LSTM 3×100 teacher on GunPoint uses seed {seed}: {word}"
                            "1, 24, 300, 49000, 1001 in the study above.")
    found = teacher_studies(studies.teacher_study_configs(), store)
    assert set(found) == set(studies.teacher_study_configs())
    study, y_test = next(iter(found.values()))
    assert study.loc[study.chosen, "teacher seed"].tolist()[0] == 24 and len(y_test) > 0


def test_book_teachers_pair_and_histories(tiny_dataset):
    smoke = load_profile("smoke")
    configs = book_teacher_configs(smoke)
    assert [c.dataset for c in configs] == [*smoke.datasets, "ItalyPowerDemand"] and configs[-1].teacher == "fcn"
    base = smoke.base_config("GunPoint")
    assert paper_pair(smoke, base, tiny_dataset, _TeacherStore()) == (None, None)  # the pair is on ItalyPowerDemand
    alt = base.replace(teacher="fcn", teacher_seed=3)
    assert teacher_histories(_TeacherStore(), base, alt, ARCH) == {
        "LSTM 3×100 (profile)": {"seed": base.teacher_seed}, "FCN 128-256-128 (paper's pair, seed 3)": {"seed": 3}}
    assert list(teacher_histories(_TeacherStore(), base, None, ARCH)) == ["LSTM 3×100 (profile)"]


def test_profile_teacher_starts_from_the_profile_base_config(monkeypatch):
    calls = []

    def get_teacher(config, data, store):
        calls.append((config, data.name, store))
        return "model", {"test_accuracy": 0.5}

    monkeypatch.setattr("tsd_lib.analysis.teachers.get_teacher", get_teacher)
    smoke = load_profile("smoke")
    config, data, teacher, record = profile_teacher(smoke, "ItalyPowerDemand", "S", teacher_seed=3)
    assert config == smoke.base_config("ItalyPowerDemand", teacher_seed=3) and data.name == "ItalyPowerDemand"
    assert (teacher, record) == ("model", {"test_accuracy": 0.5}) and calls == [(config, "ItalyPowerDemand", "S")]


def test_profile_teacher_studies_in_display_order(monkeypatch):
    smoke = load_profile("smoke")
    titles = list(smoke.teacher_study_configs())
    found = profile_teacher_studies(smoke, _TeacherStore())
    assert [type(o).__name__ for o in found.outputs] == ["Markdown", "Styler"] * len(titles) + ["Markdown"]
    assert found.outputs[0].data == f"**{titles[0]}**" and list(found.outputs[1].data.columns) == SEED_STUDY_COLUMNS
    assert isinstance(found.figure, Figure) and found.figure.canvas.manager is None  # bare: the chapter glues it
    assert [ax.get_title() for ax in found.figure.axes] == titles  # a panel per study
    assert found.outputs[-1].data.startswith(f"- **{titles[0]}, ") and found.picks == {}  # smoke: no single-seed pair

    class _Archived(_TeacherStore):
        archive = SimpleNamespace(describe=lambda: "from the archive")  # as a Records' archive

    monkeypatch.setattr("tsd_lib.analysis.teachers.study_source", lambda profile, store: (load_profile("smoke"),
                                                                                          _Archived()))
    archived = profile_teacher_studies(smoke, _TeacherStore())
    assert archived.outputs[0].data == "from the archive" and len(archived.outputs) == len(found.outputs) + 1


def test_studies_summary():
    study = pd.DataFrame({"variant": ["a", "a"], "teacher seed": [1, 2], "test accuracy": [0.5, 0.9],
                          "at chance": [True, False], "chosen": [False, True], "epochs run": [60, 250],
                          "best epoch": [10, 200]})
    text = studies_summary({"T": (study, np.array([0, 1]))}, ["- pick line"], "p").split("\n")
    assert text[0].startswith("- **T, a**: 1 of 2 seeds stay at chance") and text[1] == "- pick line"
    assert studies_summary({}, [], "p") == "*Profile `p` has no teacher study.*"
