"""Chapter 1's library views and the shared seed table: tiny data sets and records with known answers."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from tsd_lib.analysis.architectures import ARCH, architecture_table
from tsd_lib.analysis.data_views import (
    class_examples_plot,
    class_share_gap,
    class_share_plot,
    confidence_plot,
    model_confidence_plot,
    preprocessing_check,
    preprocessing_plot,
    preprocessing_stages,
    preprocessing_view,
    split_counts,
)
from tsd_lib.analysis.seed_tables import (
    METRIC_COLUMNS,
    archived_runs,
    mean_std,
    method_label,
    readers_table,
    seed_stats,
    seed_table,
    significant,
    student_runs,
    students_table,
)
from tsd_lib.analysis.teacher_views import (
    SEED_STUDY_COLUMNS,
    book_teacher_configs,
    chapter_teachers,
    literature_gaps,
    literature_plot,
    paper_pair,
    profile_study_picks,
    profile_teacher,
    profile_teacher_studies,
    studies_at_chance,
    study_overview,
    teacher_histories,
    teacher_studies,
    teacher_view,
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


def test_three_significant_digits_and_tables_for_readers():
    assert [significant(x) for x in (0.95, 0.0234, 12.34, 1234.5, 1.2e-5, 0.0, -0.4621, float("nan"), None)] == \
        ["0.950", "0.0234", "12.3", "1,234", "1.20e-05", "0", "-0.462", "–", "–"]
    assert mean_std(0.0234, 0.0051, significant=3) == "0.0234 ± 0.0051"
    assert mean_std(12.34, 1.2, significant=3) == "12.3 ± 1.2"
    assert mean_std(0.95, float("nan"), significant=3) == "0.950"  # one seed: the mean alone
    assert mean_std(2e-6, 1e-6, significant=3) == "2.00e-06 ± 1.00e-06"
    assert mean_std(0.0, 0.01, significant=3) == "0.0000 ± 0.0100"  # a zero mean takes the std's digits
    runs = _runs().assign(kl_teacher_student=[0.02, 0.03, 0.001])
    table = students_table(runs, ["accuracy", "kl_teacher_student"], ["ce", "kd"])
    assert table.index.name == "method" and list(table.index) == ["CE", "KD"]
    assert list(table.columns) == [METRIC_COLUMNS["accuracy"], METRIC_COLUMNS["kl_teacher_student"]]
    assert table.loc["CE"].tolist() == ["0.850 ± 0.071", "0.0250 ± 0.0071"] and table.loc["KD"].tolist() == \
        ["0.950", "0.00100"]
    assert [method_label(m) for m in ("fitnets", "kd+tsd", "kd+at")] == ["FitNets", "KD+TSD", "KD+AT"]
    frame = pd.DataFrame({"a": [0.5, np.nan], "ok": [True, False], "n": [3, 4]})
    html = readers_table(frame, {"a": "score", "ok": "passed", "n": "count"}, caption="C").to_html()
    assert "<caption>C</caption>" in html and ">0.500<" in html and ">–<" in html and ">yes<" in html
    assert ">no<" in html and ">score<" in html and ">3<" in html and "row_heading" not in html  # index hidden
    assert "row_heading" in readers_table(frame.set_index("n")).to_html()  # a meaningful index stays


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
    monkeypatch.setattr("tsd_lib.analysis.seed_tables.run", lambda config: trained.append(config) or {"method": "ce"})
    _, frame = student_runs(smoke, "ItalyPowerDemand", ["ce"], teacher_seed=3)  # no source: run trains what is missing
    assert trained == [configs["ce", 0], configs["ce", 1]] and list(frame["method"]) == ["ce", "ce"]


def test_archived_runs():
    class _Source:
        def from_archive(self, configs):
            return [c for c in configs if c.seed > 0]

    configs = [RunConfig(dataset="GunPoint", method="at", seed=s) for s in (0, 3, 2)]
    assert archived_runs(_Source(), configs) == configs[1:]
    assert archived_runs(_Source(), configs[:1]) == []
    assert archived_runs(object(), configs) == []  # a plain run store: everything is stored


def test_split_counts_shares_and_figures(tiny_dataset):
    data = tiny_dataset
    counts = split_counts(data)
    assert list(counts.index) == ["class 0 (label a)", "class 1 (label b)"] and counts.index.name == "class"
    assert counts["train"].tolist() == [3, 3] and counts["test"].tolist() == [2, 1]
    assert class_share_gap(counts) == 0.0
    assert class_share_gap(counts.assign(validation=[2, 0])) == pytest.approx(0.5)  # shares 0.5 vs 1.0
    assert len(class_examples_plot(data).axes) == 2
    assert len(class_share_plot(counts, "GunPoint").axes[0].patches) == 2 * 3  # two classes x three splits
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    legend = [t.get_text() for t in confidence_plot(proba, data.y_test, "t").axes[0].get_legend().get_texts()]
    assert legend == ["correct (1)", "wrong (2)"]


def test_preprocessing_stages_and_check():
    config = RunConfig(dataset="GunPoint", length=100)
    raw, resampled = preprocessing_stages(config)
    assert (raw.length, resampled.length) == (150, 100)
    data = get_dataset(config)
    check = preprocessing_check(raw, resampled, data)
    assert (check["raw_length"], check["length"]) == (150, 100) and isinstance(check["raw_length"], int)
    assert abs(check["mean"]) < 1e-5 and check["std"] == pytest.approx(1.0, abs=1e-4) and check["gap"] < 1e-5
    assert all(type(v) in (int, float) for v in check.values())  # glue needs plain numbers
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


def test_preprocessing_view_draws_and_checks_or_says_why(tiny_dataset):
    config = RunConfig(dataset="GunPoint", length=100)
    data = get_dataset(config)
    raw, resampled = preprocessing_stages(config)
    plt.close("all")
    fig, check = preprocessing_view(config, data, i=1)
    assert check == preprocessing_check(raw, resampled, data, i=1)
    assert plt.get_fignums() == [fig.number] and fig.get_suptitle().startswith("GunPoint, training series 1 ")
    plt.close("all")
    fig, check = preprocessing_view(RunConfig(dataset="Synthetic"), tiny_dataset)
    assert fig.axes[0].get_title().endswith("no raw version")  # the series as loaded: a figure all the same
    assert np.isnan(check["raw_length"]) and np.isnan(check["gap"]) and check["length"] == tiny_dataset.length


def test_architecture_table(tiny_dataset):
    data = tiny_dataset
    config = RunConfig(dataset="GunPoint", teacher="fcn", student="fcn_small")
    table = architecture_table(data, config, "p")
    assert list(table.index) == [ARCH[m] for m in ("lstm_teacher", "lstm_student", "fcn", "fcn_small")]
    assert table.index.name == "model" and table.loc[ARCH["fcn"], "name in code"] == "fcn"
    assert table.loc[ARCH["fcn"], "role in profile p"] == "teacher"
    assert table.loc[ARCH["fcn_small"], "role in profile p"] == "student"
    assert table.loc[ARCH["lstm_teacher"], "role in profile p"] == ""
    assert table.loc[ARCH["fcn"], "parameters"] == count_parameters(build_model("fcn", 1, 2))
    assert table.loc[ARCH["fcn_small"], "logits (series, classes)"] == (3, 2)  # all three test series (at most 4)


def test_chapter_teachers_and_literature_gaps():
    config = RunConfig(dataset="GunPoint", teacher="fcn", student="fcn_small")
    record = {"epochs_run": 80, "best_epoch": 30, "stopped_early": True, "test_accuracy": 0.9, "test_auc_pr": 0.95}
    alone = chapter_teachers(config, record)
    assert list(alone.index) == [f"{ARCH['fcn']} (profile)"] and alone.index.name == "teacher"
    assert alone.iloc[0].tolist() == [0, "set by the profile; no study checks it", 80, 30, "early stopping", 0.9, 0.95]
    pair = RunConfig(dataset="GunPoint", teacher="lstm_teacher", teacher_seeds=(0, 1))
    alt = (pair.replace(teacher_seeds=(), teacher_seed=1), {**record, "stopped_early": False})
    both = chapter_teachers(config, record, pair=pair, alt=alt)
    assert list(both.index)[1] == "LSTM 3×100 (paper's pair, seed 1)"
    assert both.iloc[1]["how the seed was chosen"] == "the best on validation among seeds 0, 1"
    assert both.iloc[1]["training ended by"] == "the epoch cap"
    single = pair.replace(teacher_seeds=(), teacher_seed=1)
    how = {seed: chapter_teachers(config, record, pair=single, alt=alt, picks=picks).iloc[1]["how the seed was chosen"]
           for seed, picks in [(1, {single.teacher_key(): 1}), (24, {single.teacher_key(): 24}), (None, {})]}
    assert how == {1: "set by the profile; the seed validation picks in section 1.7",
                   24: "set by the profile; validation picks seed 24 in section 1.7",
                   None: "set by the profile; no study checks it"}
    assert chapter_teachers(config.replace(teacher_seeds=(0, 2)), record).iloc[0]["how the seed was chosen"] == \
        "the best on validation among seeds 0, 2"
    teachers = pd.DataFrame({"dataset": ["D", "E", "F"], "teacher": ["fcn", "fcn", "lstm_teacher"],
                             "teacher seed": [0, 1, 0], "chosen": [True, True, True],
                             "stopped early": [True, False, True], "test accuracy": [0.99, 0.8, 0.5],
                             "published FCN": [1.0, 0.9, np.nan]})
    teachers["gap to published"] = teachers["test accuracy"] - teachers["published FCN"]
    gaps = literature_gaps(teachers)
    assert {k: gaps[k] for k in ("n_teachers", "n_stopped_early", "n_published", "n_below")} == \
        {"n_teachers": 3, "n_stopped_early": 2, "n_published": 2, "n_below": 1}
    assert gaps["largest_shortfall"] == pytest.approx(-0.1)
    assert literature_gaps(teachers.iloc[[0, 2]])["n_below"] == 0
    assert np.isnan(literature_gaps(teachers.iloc[[2]])["largest_shortfall"])  # no published number
    assert all(type(v) in (int, float) for v in gaps.values())  # glue needs plain numbers
    html = teacher_view(teachers, {"dataset": "dataset", "teacher": "teacher", "stopped early": "stopped early",
                                   "gap to published": "ours minus published"}).to_html()
    assert ">FCN 128-256-128<" in html and ">-0.100<" in html and ">no<" in html and ">–<" in html
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
    picks, table = profile_study_picks(smoke.pair_configs(), studies.teacher_study_configs(), _TeacherStore(), ARCH)
    assert picks == {} and table.empty
    lstm = load_profile("quick").pair_configs("lstm")[0].replace(teacher_seeds=())
    store = _TeacherStore()
    for seed in (24, 1):
        pair = lstm.replace(teacher_seed=seed)
        picks, table = profile_study_picks([pair, pair], studies.teacher_study_configs(), store, ARCH)
        assert picks == {pair.teacher_key(): 24} and len(table) == 1
        assert table.iloc[0].tolist() == ["LSTM 3×100", "GunPoint", seed, 24, "1, 24, 300, 49000, 1001"]
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

    monkeypatch.setattr("tsd_lib.analysis.teacher_views.get_teacher", get_teacher)
    smoke = load_profile("smoke")
    config, data, teacher, record = profile_teacher(smoke, "ItalyPowerDemand", "S", teacher_seed=3)
    assert config == smoke.base_config("ItalyPowerDemand", teacher_seed=3) and data.name == "ItalyPowerDemand"
    assert (teacher, record) == ("model", {"test_accuracy": 0.5}) and calls == [(config, "ItalyPowerDemand", "S")]


def test_profile_teacher_studies_in_display_order(monkeypatch):
    smoke = load_profile("smoke")
    titles = list(smoke.teacher_study_configs())
    found = profile_teacher_studies(smoke, _TeacherStore())
    assert [type(o).__name__ for o in found.outputs] == ["Styler"] * (len(titles) + 1)  # no pair teacher to check
    first = found.outputs[0].to_html()
    assert f"<caption>{titles[0]}: every seed of every variant</caption>" in first
    assert all(f">{header}<" in first for header in SEED_STUDY_COLUMNS.values())
    assert isinstance(found.figure, Figure) and found.figure.canvas.manager is None  # bare: the chapter glues it
    assert [ax.get_title() for ax in found.figure.axes] == titles  # a panel per study
    assert list(found.overview["study"]) == [titles[0]] * len(found.overview) and found.picks == {}
    assert (found.n_teachers, found.n_at_chance) == studies_at_chance(teacher_studies(smoke.teacher_study_configs(),
                                                                                      _TeacherStore()))

    monkeypatch.setattr("tsd_lib.analysis.teacher_views.study_source", lambda profile, store: (load_profile("smoke"),
                                                                                          _TeacherStore()))
    archived = profile_teacher_studies(smoke, _TeacherStore())  # read from an archive: the same tables, no prose
    assert [type(o).__name__ for o in archived.outputs] == ["Styler"] * len(found.outputs)


def test_study_overview():
    study = pd.DataFrame({"variant": ["a", "a", "b"], "teacher seed": [1, 2, 1], "test accuracy": [0.5, 0.9, 0.8],
                          "at chance": [True, False, False], "chosen": [False, True, True],
                          "epochs run": [60, 250, 240], "best epoch": [10, 200, 190]})
    overview = study_overview({"T": (study, np.array([0, 1]))})
    assert overview[["study", "variant", "seeds", "seeds at chance"]].values.tolist() == [["T", "a", 2, 1],
                                                                                          ["T", "b", 1, 0]]
    a = overview.iloc[0]
    assert (a["lowest test accuracy"], a["mean test accuracy"], a["highest test accuracy"]) == \
        pytest.approx((0.5, 0.7, 0.9))
    assert (a["seed validation picks"], a["its test accuracy"], a["its epochs run"], a["its best epoch"]) == \
        (2, 0.9, 250, 200)
    assert study_overview({}).empty
    shared = study.assign(dataset="D", teacher="lstm_teacher")
    other = shared.assign(dataset="E")  # another data set: other teachers
    assert studies_at_chance({"T": (shared, None), "U": (shared.iloc[:2], None)}) == (3, 1)  # "a" shared: counted once
    assert studies_at_chance({"T": (shared, None), "U": (other, None)}) == (6, 2)
    assert studies_at_chance({}) == (0, 0)
