"""Report: validation-based selection, inflation, tables, ranks, figures (hand-made records)."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tsd_lib import report  # noqa: E402

OFFSETS = {1: -0.01, 2: 0.0, 3: 0.01}  # student seed -> offset: std over seeds = 0.010 exactly
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (dataset, method, teacher_seed, tsd_weight) -> (val_auc_pr, test_auc_pr, val_loss), before the seed offset.
SETTINGS = {
    # A: kd+tsd val-best (0, 0.1) -> test 0.80; test-best (1, 10) -> 0.86 (inflation 0.06)
    ("A", "ce", 0, None): (0.70, 0.70, 0.60),
    ("A", "ce", 1, None): (0.70, 0.70, 0.60),
    ("A", "kd", 0, None): (0.75, 0.74, 0.55),
    ("A", "kd", 1, None): (0.77, 0.72, 0.50),
    ("A", "kd+tsd", 0, 0.1): (0.90, 0.80, 0.5),
    ("A", "kd+tsd", 0, 10.0): (0.85, 0.84, 0.5),
    ("A", "kd+tsd", 1, 0.1): (0.88, 0.82, 0.5),
    ("A", "kd+tsd", 1, 10.0): (0.80, 0.86, 0.5),
    # B: kd+tsd val-best (1, 10) -> 0.70; test-best (0, 0.1) -> 0.75 (inflation 0.05)
    ("B", "ce", 0, None): (0.60, 0.60, 0.70),
    ("B", "ce", 1, None): (0.60, 0.60, 0.70),
    ("B", "kd", 0, None): (0.65, 0.66, 0.60),
    ("B", "kd", 1, None): (0.64, 0.68, 0.60),
    ("B", "kd+tsd", 0, 0.1): (0.70, 0.75, 0.5),
    ("B", "kd+tsd", 0, 10.0): (0.72, 0.71, 0.5),
    ("B", "kd+tsd", 1, 0.1): (0.71, 0.73, 0.5),
    ("B", "kd+tsd", 1, 10.0): (0.90, 0.70, 0.5),
    # C: validation and test agree (no inflation)
    ("C", "ce", 0, None): (0.80, 0.80, 0.40),
    ("C", "ce", 1, None): (0.80, 0.80, 0.40),
    ("C", "kd", 0, None): (0.85, 0.85, 0.40),
    ("C", "kd", 1, None): (0.84, 0.84, 0.40),
    ("C", "kd+tsd", 0, 0.1): (0.85, 0.85, 0.4),
    ("C", "kd+tsd", 0, 10.0): (0.90, 0.90, 0.4),
    ("C", "kd+tsd", 1, 0.1): (0.86, 0.86, 0.4),
    ("C", "kd+tsd", 1, 10.0): (0.87, 0.87, 0.4),
}


def make_record(dataset, method, teacher_seed, weight, seed, val, test, loss):
    off = OFFSETS[seed]
    return {
        "dataset": dataset,
        "teacher": "lstm_teacher",
        "teacher_seed": teacher_seed,
        "student": "lstm_student",
        "method": method,
        "weights": None if weight is None else {"tsd": weight},
        "tau": 8.0,
        "n_windows": 50,
        "window": 10,
        "epochs": 5,
        "patience": 5,
        "seed": seed,
        "split_seed": 0,
        "accuracy": test - 0.05 + off,
        "auc_pr": test + off,
        "roc_auc": test + 0.05,
        "ap_micro": test,
        "agreement": 0.9 + off,
        "kl_teacher_student": 0.2 - off,
        "js_teacher_student": 0.05,
        "ece": 0.1,
        "saliency_spearman": 0.5 + off,
        "saliency_cosine": 0.7,
        "saliency_topk_iou": 0.3,
        "val_accuracy": val - 0.05 + off,
        "val_auc_pr": val + off,
        "val_loss": loss,
        "teacher_accuracy": 0.9,
        "teacher_auc_pr": 0.95,
        "epochs_run": 5,
        "train_seconds": 1.0,
        "key": f"{dataset}-{method}-{teacher_seed}-{weight}-{seed}",
        "versions": {"torch": "x"},
    }


def make_records(settings=SETTINGS):
    return [make_record(d, m, t, w, s, *vals) for (d, m, t, w), vals in settings.items() for s in OFFSETS]


@pytest.fixture(scope="module")
def frame():
    return report.records_to_frame(make_records())


def chosen(sel, dataset, method):
    rows = sel[(sel["dataset"] == dataset) & (sel["method"] == method)]
    assert rows["seed"].tolist() == [1, 2, 3]
    assert rows["setting"].nunique() == 1
    return rows["teacher_seed"].iloc[0], rows["tsd_weight"].iloc[0]


def test_records_to_frame_derives_weight_and_setting():
    recs = make_records({("A", "kd+tsd", 0, None): (0.8, 0.8, 0.5), ("A", "kd", 0, None): (0.8, 0.8, 0.5)})
    recs[0]["weights"] = {"kd": 2.0}  # kd+tsd without a tsd weight -> default 1.0
    recs.append({"dataset": "A", "method": "kd+tsd", "error": "boom"})
    df = report.records_to_frame(recs)
    assert len(df) == 6 and "error" not in df
    tsd = df[df["method"] == "kd+tsd"]
    assert (tsd["tsd_weight"] == 1.0).all()
    assert df.loc[df["method"] == "kd", "tsd_weight"].isna().all()
    assert set(tsd["setting"]) == {"teacher_seed=0, tsd_weight=1", "teacher_seed=0, tsd_weight=1, kd weight=2"}
    assert tsd["tuning"].fillna("-").tolist() == ["kd weight=2", "-", "-"]  # a changed KD weight: its own setting
    assert set(df.loc[df["method"] == "kd", "setting"]) == {"teacher_seed=0"}
    with pytest.raises(ValueError, match="no completed runs"):
        report.records_to_frame([{"dataset": "A", "method": "ce", "error": "x"}])


def test_records_from_store(tmp_path):
    for i, rec in enumerate(make_records()[:3]):
        (tmp_path / "runs" / f"k{i}").mkdir(parents=True)
        (tmp_path / "runs" / f"k{i}" / "record.json").write_text(json.dumps(rec))
    (tmp_path / "runs" / "bad").mkdir()
    (tmp_path / "runs" / "bad" / "record.json").write_text("{not json")
    with pytest.warns(UserWarning, match="damaged record .*bad/record.json"):  # named, not silently dropped
        assert len(report.records_from_store(tmp_path)) == 3
    with pytest.warns(UserWarning, match="damaged record"):
        assert len(report.records_from_store(tmp_path / "runs")) == 3


def test_order_methods():
    got = report.order_methods(["kd+tsd", "zzz", "ce", "dkd+tsd", "abc", "tsd", "fitnets", "dt2w"])
    assert got == ["ce", "fitnets", "dt2w", "tsd", "kd+tsd", "dkd+tsd", "abc", "zzz"]


def test_select_by_val_and_by_test_differ(frame):
    val, test = report.select(frame, by="val"), report.select(frame, by="test")
    assert chosen(val, "A", "kd+tsd") == (0, 0.1)
    assert chosen(test, "A", "kd+tsd") == (1, 10.0)
    assert chosen(val, "B", "kd+tsd") == (1, 10.0)
    assert chosen(test, "B", "kd+tsd") == (0, 0.1)
    assert chosen(val, "C", "kd+tsd") == chosen(test, "C", "kd+tsd") == (0, 10.0)
    assert chosen(val, "A", "kd")[0] == 1 and chosen(test, "A", "kd")[0] == 0
    assert math.isnan(chosen(val, "A", "kd")[1])
    assert chosen(val, "A", "ce")[0] == 0  # full tie: the first label
    assert len(val) == 3 * 3 * 3
    with pytest.raises(ValueError):
        report.select(frame, by="train")


@pytest.mark.parametrize("low_loss_weight", [0.1, 10.0])
def test_val_tie_broken_by_val_loss(low_loss_weight):
    settings = {
        ("T", "kd+tsd", 0, w): (0.8, 0.7 if w == 0.1 else 0.9, 0.4 if w == low_loss_weight else 0.5)
        for w in (0.1, 10.0)
    }
    sel = report.select(report.records_to_frame(make_records(settings)), by="val")
    assert chosen(sel, "T", "kd+tsd") == (0, low_loss_weight)


def test_selection_inflation(frame):
    infl = report.selection_inflation(frame).set_index(["dataset", "method"])
    expected = {
        ("A", "ce"): 0.0,
        ("A", "kd"): 0.02,
        ("A", "kd+tsd"): 0.06,
        ("B", "ce"): 0.0,
        ("B", "kd"): 0.02,
        ("B", "kd+tsd"): 0.05,
        ("C", "ce"): 0.0,
        ("C", "kd"): 0.0,
        ("C", "kd+tsd"): 0.0,
    }
    for key, value in expected.items():
        assert infl.loc[key, "inflation"] == pytest.approx(value, abs=1e-9), key
    assert infl.loc[("A", "kd+tsd"), "test_mean_val_selected"] == pytest.approx(0.80)
    assert infl.loc[("A", "kd+tsd"), "test_mean_test_selected"] == pytest.approx(0.86)
    assert infl.loc[("A", "kd+tsd"), "val_selected"] == "teacher_seed=0, tsd_weight=0.1"
    assert infl.loc[("A", "kd+tsd"), "test_selected"] == "teacher_seed=1, tsd_weight=10"
    assert infl.loc[("A", "kd+tsd"), "n_settings"] == 4
    assert list(infl.index.get_level_values("method")[:3]) == ["ce", "kd", "kd+tsd"]


def test_summary_table(frame):
    s = report.summary_table(frame)
    assert list(s.text.columns) == ["ce", "kd", "kd+tsd"] and list(s.text.index) == ["A", "B", "C"]
    assert s.text.loc["A", "kd+tsd"] == "0.800 ± 0.010"
    assert s.text.loc["B", "kd+tsd"] == "0.700 ± 0.010"
    assert s.text.loc["A", "kd"] == "0.720 ± 0.010"
    assert s.mean.loc["C", "kd+tsd"] == pytest.approx(0.90)
    assert s.std.loc["A", "ce"] == pytest.approx(0.01)
    assert (s.count == 3).all().all()
    single = report.summary_table(frame[frame["seed"] == 1])
    assert single.text.loc["A", "kd+tsd"] == "0.790"  # one seed: no std


def test_average_ranks_hand_example():
    mean = pd.DataFrame({"a": [0.9, 0.8, 0.7], "b": [0.8, 0.8, 0.9], "c": [0.7, 0.9, 0.8]}, index=["d1", "d2", "d3"])
    ranks = report.average_ranks(mean)
    assert ranks.to_dict() == pytest.approx({"a": 6.5 / 3, "b": 5.5 / 3, "c": 2.0})
    assert list(ranks.index) == ["b", "c", "a"] and ranks.attrs["n_datasets"] == 3
    low = report.average_ranks(mean, higher_is_better=False)
    assert low.to_dict() == pytest.approx({"a": 5.5 / 3, "b": 6.5 / 3, "c": 2.0})
    with pytest.warns(UserWarning, match="left out"):
        partial = report.average_ranks(mean.assign(c=[0.7, np.nan, 0.8]))
    assert partial.attrs["n_datasets"] == 2


def test_average_ranks_of_report_frame(frame):
    ranks = report.average_ranks(report.summary_table(frame).mean)
    assert ranks.to_dict() == {"kd+tsd": 1.0, "kd": 2.0, "ce": 3.0}


def test_win_tie_loss():
    mean = pd.DataFrame(
        {"ce": [0.5, 0.6, 0.7, 0.8], "kd": [0.6, 0.6, 0.6, 0.9], "kd+tsd": [0.7, 0.7, 0.8, 0.8 + 1e-12]},
        index=["d1", "d2", "d3", "d4"],
    )
    wtl = report.win_tie_loss(mean, baseline=["ce", "kd", "missing"]).set_index(["baseline", "method"])
    assert tuple(wtl.loc[("ce", "kd"), ["wins", "ties", "losses"]]) == (2, 1, 1)
    assert tuple(wtl.loc[("ce", "kd+tsd"), ["wins", "ties", "losses"]]) == (3, 1, 0)
    assert tuple(wtl.loc[("kd", "kd+tsd"), ["wins", "ties", "losses"]]) == (3, 0, 1)
    assert tuple(wtl.loc[("kd", "ce"), ["wins", "ties", "losses"]]) == (1, 1, 2)
    assert wtl.loc[("ce", "kd+tsd"), "mean_diff"] == pytest.approx(0.1, abs=1e-9)
    assert len(wtl) == 4
    assert report.win_tie_loss(mean, baseline="dkd").empty


def is_png(path):
    return path.read_bytes()[:8] == PNG_MAGIC and mpimg.imread(path).ndim == 3


def test_critical_difference_degenerate_inputs(tmp_path):
    one_dataset = pd.DataFrame({"ce": [0.7], "kd": [0.8]}, index=["A"])
    fig = report.critical_difference(one_dataset, tmp_path / "cd1.png")
    assert fig is not None and is_png(tmp_path / "cd1.png")
    one_method = pd.DataFrame({"ce": [0.7, 0.8]}, index=["A", "B"])
    report.critical_difference(one_method, tmp_path / "cd2.png")
    assert is_png(tmp_path / "cd2.png")


def test_write_report(tmp_path, frame):
    records = [*make_records(), {"dataset": "A", "method": "kd+tsd", "error": "CUDA OOM"}]
    paths = report.write_report(records, tmp_path / "out")
    stems = [
        "summary_auc_pr",
        "summary_auc_pr_mean",
        "summary_accuracy",
        "summary_accuracy_mean",
        "ranks",
        "win_tie_loss",
        "inflation",
        "fidelity",
    ]
    expected = {f"{s}.{ext}" for s in stems for ext in ("csv", "md", "html")}
    expected |= {
        "settings.csv",
        "selected_runs.csv",
        "README.md",
        "cd_auc_pr.png",
        "scatter_auc_pr.png",
        "fidelity.png",
        "selection_auc_pr.png",
    }
    assert set(paths) == expected
    for name, path in paths.items():
        assert path.parent == tmp_path / "out" and path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert is_png(path), name
    readme = paths["README.md"].read_text()
    assert "selected on validation macro AUC-PR (ties: validation loss)" in readme
    assert "the authors selected on the test set" in readme
    assert "<b>0.800 ± 0.010</b>" in paths["summary_auc_pr.html"].read_text()
    assert "**0.800 ± 0.010**" in paths["summary_auc_pr.md"].read_text()
    infl = pd.read_csv(paths["inflation.csv"]).set_index(["dataset", "method"])
    assert infl.loc[("A", "kd+tsd"), "inflation"] == pytest.approx(0.06)
    selected = pd.read_csv(paths["selected_runs.csv"])
    assert len(selected) == 27
    with pytest.raises(ValueError, match="no completed runs"):
        report.write_report([], tmp_path / "empty")


def test_mixed_configs_warn(frame):
    other = frame.assign(window=20)
    with pytest.warns(UserWarning, match="window"):
        report.select(pd.concat([frame, other], ignore_index=True))
