"""The chapters' analyses: convergence audit, budget study, teachers against the literature."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from tsd_lib.analysis.audit import capped_runs, converged_only, convergence_audit
from tsd_lib.analysis.budget import budget_frame, budget_gap, budget_plot, budget_table, nearest_budget
from tsd_lib.analysis.published import published_fcn
from tsd_lib.analysis.teacher_views import seed_study, teacher_table
from tsd_lib.experiment import RunConfig, RunStore, get_dataset, get_teacher

matplotlib.use("Agg")


def _record(method, seed, *, early=True, epochs_run=120, best=70, acc=0.9, budgets=(20, 300)):
    return {"dataset": "D", "method": method, "seed": seed, "epochs": 500, "epochs_run": epochs_run,
            "best_epoch": best, "stopped_early": early, "accuracy": acc, "saliency_spearman": 0.5,
            "budgets": {str(b): {"accuracy": acc - 0.1 * (b < 100), "saliency_spearman": 0.4} for b in budgets}}


def test_audit_counts_capped_runs_and_best_epochs():
    records = [_record("ce", 0), _record("ce", 1, best=30), _record("tsd", 0, early=False, epochs_run=500, best=480)]
    audit = convergence_audit(records)
    assert audit.loc["ce", "runs"] == 2 and audit.loc["ce", "capped"] == 0
    assert audit.loc["ce", "best_epoch_median"] == 50 and audit.loc["ce", "best_epoch_max"] == 70
    assert audit.loc["tsd", "capped"] == 1 and audit.loc["tsd", "epochs_run_max"] == 500
    assert list(capped_runs(records)["method"]) == ["tsd"]
    assert len(converged_only(records)) == 2
    with pytest.raises(ValueError, match="stopped_early"):
        convergence_audit([{"method": "ce"}])


def test_budget_frame_has_every_budget_and_the_converged_model():
    records = [_record("ce", s, acc=0.8 + 0.1 * s) for s in (0, 1)]
    frame = budget_frame(records)
    assert len(frame) == 2 * 3
    conv = frame[frame["budget"] == "converged"]
    assert list(conv["accuracy"]) == [0.8, pytest.approx(0.9)] and list(conv["epochs"]) == [120, 120]
    # a budget beyond the run's end counts the epochs the run took
    assert frame[frame["budget"] == 300]["epochs"].tolist() == [120, 120]
    table = budget_table(frame, "accuracy")
    assert list(table.columns) == ["20 epochs", "300 epochs", "converged"]
    assert table.loc[("D", "ce"), "20 epochs"] == "0.750 ± 0.071"
    tsd = budget_frame([{**_record("tsd", s, acc=0.95), "dataset": "D"} for s in (0, 1)])
    both = pd.concat([frame, tsd])
    assert budget_gap(both, "accuracy", "tsd", "ce", "converged")["D"] == pytest.approx(0.95 - 0.85)
    assert budget_gap(both, "accuracy", "tsd", "ce", 20)["D"] == pytest.approx(0.85 - 0.75)
    with pytest.raises(ValueError, match="kd"):
        budget_gap(both, "accuracy", "kd", "ce", 20)
    assert nearest_budget(frame) == 20 and nearest_budget(frame, 250) == 300
    fig = budget_plot(frame)
    assert len(fig.axes) == 2
    with pytest.raises(ValueError, match="budget"):
        budget_frame([{**_record("ce", 0), "budgets": {}}])


def test_published_lookup():
    assert published_fcn("GunPoint") == 1.0 and published_fcn("gunpoint") == 1.0
    assert published_fcn("Nope") is None


def test_teacher_table_and_seed_study(tmp_path):
    store = RunStore(tmp_path)
    base = RunConfig(dataset="ItalyPowerDemand", teacher="fcn", epochs=2, patience=2, teacher_epochs=2)
    data = get_dataset(base)
    for seed in (0, 1):
        get_teacher(base.replace(teacher_seed=seed), data, store)
    table = teacher_table([base.replace(teacher_seeds=(0, 1))], store)
    assert list(table["teacher seed"]) == [0, 1] and table["chosen"].sum() == 1
    best = table.sort_values(["val AUC-PR", "val loss"], ascending=[False, True]).iloc[0]
    assert bool(table.set_index("teacher seed").loc[best["teacher seed"], "chosen"])
    assert np.allclose(table["gap to published"], table["test accuracy"] - 0.963)
    study = seed_study({"a": [base.replace(teacher_seed=s) for s in (0, 1)]}, store, data.y_test)
    assert list(study["variant"]) == ["a", "a"] and study["at chance"].dtype == bool
    with pytest.raises(ValueError, match="no stored teacher"):
        teacher_table([base.replace(teacher_seed=7)], store)


# Ablations: a fake source of records keyed by config, so the expected tables are known.

class _FakeSource:
    def __init__(self, profile, score):
        self.records = {c.key(): score(c) for c in profile.ablation_configs()}

    def load_record(self, config):
        return self.records[config.key()]


def _ablation_profile(tmp_path):
    import yaml

    from tsd_lib.profiles import load_profile

    spec = {"datasets": ["ItalyPowerDemand"], "methods": ["kd+tsd"], "seeds": [0, 1], "teacher": "fcn",
            "student": "fcn_small", "ablations": {"seeds": [0, 1], "window": [5, 20], "tsd_bank_size": [0]}}
    path = tmp_path / "abl.yaml"
    path.write_text(yaml.safe_dump(spec))
    return load_profile(path)


def _score(config):
    # the window moves AUC-PR by 0.1 per 5 steps; seeds add +-0.01; the bank size changes nothing
    auc = 0.5 + 0.02 * config.window + (0.01 if config.seed else -0.01)
    return {"accuracy": auc, "auc_pr": auc, "saliency_spearman": 0.3, "train_seconds": 10.0,
            "epochs_run": 100 if config.tsd_bank_size else 50, "wall_seconds": 12.0}


def test_ablation_tables_and_sensitivity_follow_the_runs(tmp_path):
    from tsd_lib.analysis.ablations import (
        ablation_runs,
        ablation_setting,
        ablation_stats,
        ablation_table,
        bank_vs_fresh,
        paired_changes,
        sensitivity_numbers,
        sensitivity_table,
    )

    profile = _ablation_profile(tmp_path)
    runs = ablation_runs(profile, _FakeSource(profile, _score))
    assert len(runs) == 2 * 3 + 2 * 2  # per seed: window base + 2 values; bank base + 1 value
    stats = ablation_stats(runs)
    window = stats["window"]
    assert list(window.index) == [5, 10, 20] and window.loc[10, "is_base"] and window["seeds"].eq(2).all()
    assert window.loc[20, "auc_pr_mean"] == pytest.approx(0.9)
    assert window.loc[5, "auc_pr_std"] == pytest.approx(np.std([0.59, 0.61], ddof=1))
    table = ablation_table(window, "window")
    assert list(table.index) == ["5", "10 (base)", "20"] and table.index.name == "window length L"
    assert table.loc["20", "test macro AUC-PR"] == "0.900 ± 0.014" and table["seeds"].tolist() == [2, 2, 2]
    setting, axes = ablation_setting(profile)
    assert setting["runs"] == 2 * 3 + 2 and setting["axes"] == 2 and setting["n_seeds"] == 2
    assert axes.loc["window length L", "values tried"] == "5, 20"
    sens = sensitivity_table(stats)
    assert sens.loc["window length L", "best value"] == "20" and sens.loc["window length L", "base value"] == "10"
    assert sens.loc["window length L", "spread of the means"] == pytest.approx(0.3)
    assert sens.loc["window length L", "spread beyond the seed std"] == "yes"
    bank_row = sens.loc["teacher bank size (0: fresh sampling)"]
    assert bank_row["best value"] == "200" and bank_row["spread beyond the seed std"] == "no"  # a tie: the base
    numbers = sensitivity_numbers(stats)
    assert numbers["sensitive_axes"] == "window length L" and numbers["window_spread"] == pytest.approx(0.3)
    assert numbers["window_noise"] == pytest.approx(np.std([0.59, 0.61], ddof=1))
    assert np.isnan(numbers["tau_spread"]) and numbers["tau_best"] == "not varied"
    assert numbers["window_beyond"] == "exceeds" and numbers["window_finding"] == "counts"
    assert numbers["tsd_bank_size_beyond"] == "stays within" and numbers["tsd_bank_size_finding"] == "does not count"
    assert numbers["tau_beyond"] == "cannot be compared with" and numbers["tau_finding"] == "does not count"
    paired = paired_changes(runs, "window", 20)
    assert paired["changes"] == "+0.200, +0.200" and paired["largest"] == pytest.approx(0.2)
    assert paired["largest_seed"] == 0 and paired["rest"] == pytest.approx(0.2)
    assert paired["low_seed"] == 0 and paired["low_base"] == pytest.approx(0.69) and paired["other_bases"] == "0.710"
    assert paired_changes(runs, "window", 5)["changes"] == "−0.100, −0.100"
    with pytest.raises(ValueError, match="no ablation run at window = 7"):
        paired_changes(runs, "window", 7)
    bank, cost, beyond = bank_vs_fresh(stats, runs, banked=200)
    assert bank.loc["test macro AUC-PR", "difference (bank − fresh)"] == pytest.approx(0.0)
    assert bank["difference beyond the seed std"].eq("no").all() and beyond == "none"
    assert cost["training time per epoch (s)"].tolist() == pytest.approx([0.1, 0.2])
    del stats["tsd_bank_size"]
    assert bank_vs_fresh(stats, runs, banked=200)[:2] == (None, None)


def test_matching_candidates():
    from tsd_lib.analysis.teacher_views import matching_candidates
    from tsd_lib.profiles import load_profile

    quick, studies = load_profile("quick"), load_profile("studies")
    found = matching_candidates(quick.pair_configs("lstm")[0], studies.teacher_study_configs())
    assert [c.teacher_seed for c in found] == [1, 24, 300, 49000, 1001] and all(c.warmup is None for c in found)
    assert matching_candidates(quick.base_config("GunPoint"), studies.teacher_study_configs()) == []


def test_teacher_quality_flags_weak_beaten_and_capped_teachers():
    from tsd_lib.analysis.teacher_quality import WEAK_GAP, strong_teacher_datasets, teacher_quality
    from tsd_lib.analysis.ucr_sizes import UCR_SIZES

    def run(dataset, teacher, method, accuracy, teacher_accuracy, seed=24):
        return {"dataset": dataset, "teacher": teacher, "method": method, "accuracy": accuracy,
                "teacher_accuracy": teacher_accuracy, "teacher_auc_pr": teacher_accuracy / 2,
                "teacher_seed": 1, "teacher_seed_chosen": seed, "n_test": UCR_SIZES[dataset][1]}

    runs = [run("CBF", "lstm_teacher", "ce", 0.90, 0.947), run("CBF", "lstm_teacher", "kd", 0.96, 0.947),
            run("OliveOil", "fcn", "ce", 0.40, 0.72 - WEAK_GAP - 0.01), run("Beef", "fcn", "ce", 0.5, 0.75, seed=1)]
    teachers = [{"dataset": "CBF", "teacher": "lstm_teacher", "teacher_seed": 24, "test_accuracy": 0.947,
                 "test_auc_pr": 0.947 / 2, "stopped_early": False},
                {"dataset": "CBF", "teacher": "lstm_teacher", "teacher_seed": 1, "test_accuracy": 0.947,
                 "test_auc_pr": 0.947 / 2, "stopped_early": True},  # another seed: not the chosen teacher
                {"dataset": "OliveOil", "teacher": "fcn", "teacher_seed": 24, "test_accuracy": 0.61,
                 "test_auc_pr": 0.305, "stopped_early": True}]
    table = teacher_quality(runs, teachers).set_index("dataset")
    assert table.loc["CBF", "teacher capped"] is True and table.loc["OliveOil", "teacher capped"] is False
    assert table.loc["Beef", "teacher capped"] is None  # no teacher record matches
    assert table.loc["CBF", "students beat it"] and table.loc["CBF", "best student"] == "kd"
    assert table.loc["OliveOil", "weak teacher"] and not table.loc["CBF", "weak teacher"]
    assert table.loc["OliveOil", "gap to FCN"] == pytest.approx(-WEAK_GAP - 0.01)
    assert strong_teacher_datasets(table.reset_index()) == ["Beef"]
    assert "teacher capped" in teacher_quality([]).columns
    assert not table["near chance"].any()  # 0.947 of 900 CBF series, 0.75 of 30 Beef: far above one class
    # Herring's LSTM teacher scores what always predicting its largest test class scores (38 of 64): near chance,
    # though within WEAK_GAP of the published FCN (0.644); a missing test count leaves the flag unknown
    herring = [run("Herring", "lstm_teacher", "ce", 0.59, 38 / 64), {**run("Beef", "lstm_teacher", "ce", 0.5, 0.7),
                                                                        "n_test": None}]
    both = teacher_quality(runs + herring, teachers)
    row = both.set_index(["dataset", "teacher"]).loc[("Herring", "lstm_teacher")]
    assert row["near chance"] and not row["weak teacher"] and not row["students beat it"]
    assert row["majority class"] == pytest.approx(38 / 64) and row["chance p"] == pytest.approx(0.5537, abs=1e-4)
    assert both.set_index(["dataset", "teacher"]).loc[("Beef", "lstm_teacher"), "near chance"] is None
    assert strong_teacher_datasets(both) == ["Beef"]  # Herring left out by its near-chance teacher


def test_chance_p_is_the_exact_binomial_tail():
    from tsd_lib.analysis.teacher_quality import CHANCE_LEVEL, chance_p

    assert chance_p(1.0, 3, 0.5) == pytest.approx(1 / 8)  # 3 of 3 at share 1/2: P(X >= 3)
    assert chance_p(0.5, 2, 0.5) == pytest.approx(3 / 4)  # P(X >= 1) = 1 - 1/4
    assert chance_p(0.7, 20, 0.5) > CHANCE_LEVEL > chance_p(0.75, 20, 0.5)  # 14 of 20 is not enough, 15 is


def test_test_majority_matches_the_files(shared_ucr_dir):
    from collections import Counter

    from tsd_lib.analysis.ucr_sizes import UCR_SIZES, UCR_TEST_MAJORITY

    for name, (largest, n_test) in UCR_TEST_MAJORITY.items():
        assert name not in UCR_SIZES or UCR_SIZES[name][1] == n_test, name
        path = shared_ucr_dir / name / f"{name}_TEST.tsv"
        if not path.exists():
            continue
        labels = [line.split("\t", 1)[0] for line in path.read_text().splitlines() if line.strip()]
        assert (max(Counter(labels).values()), len(labels)) == (largest, n_test), name


def test_test_majority_of_the_shipped_datasets():
    import numpy as np

    from tsd_lib.analysis.ucr_sizes import majority_share
    from tsd_lib.data.ucr import load_dataset

    for name in ("ItalyPowerDemand", "GunPoint", "ArrowHead"):  # the shipped sets of the quick profile
        y = load_dataset(name).y_test
        assert majority_share(name) == np.bincount(y).max() / len(y), name
    assert majority_share("NoSuchSet") is None


class _Teachers:
    """Teacher records by teacher key, with an archive's teacher lookups."""

    def __init__(self, records):
        self.records = {c.teacher_key(): r for c, r in records}

    def has_teacher(self, c):
        return c.teacher_key() in self.records

    def load_teacher_record(self, c):
        return self.records[c.teacher_key()]


def _teacher(seed, dataset="BeetleFly", **changes):
    from tsd_lib.experiment import RunConfig

    return RunConfig(**{"dataset": dataset, "teacher": "fcn", "teacher_seed": seed, "teacher_epochs": 500, **changes})


def _teacher_record(acc, best, stopped, epochs=None):
    return {"test_accuracy": acc, "test_auc_pr": acc / 2, "best_epoch": best, "epochs_run": epochs or best + 50,
            "stopped_early": stopped}


def test_variant_comparison_averages_each_variant_over_the_archived_seeds():
    from tsd_lib.analysis.teacher_quality import variant_comparison

    studies = {"BeetleFly": {"resampled to 100": [_teacher(1), _teacher(2)], "full length": [_teacher(1, length=None)]},
               "warm-up": {"no warm-up": [_teacher(1, "OliveOil")]}}  # lacks the variants: left out
    records = _Teachers([(_teacher(1), _teacher_record(0.7, 10, True)),
                         (_teacher(2), _teacher_record(0.8, 31, False, 500))])
    table = variant_comparison(studies, records, ("resampled to 100", "full length"))
    assert list(table.index) == ["BeetleFly"]
    assert table.loc["BeetleFly", "resampled to 100"] == pytest.approx(0.75)
    assert table.loc["BeetleFly", "resampled to 100: best epoch"] == pytest.approx(20.5)
    assert table.loc["BeetleFly", ["resampled to 100: capped", "full length: capped"]].tolist() == [1, 0]
    assert table.loc["BeetleFly", "resampled to 100: seeds"] == 2 and table.loc["BeetleFly", "full length: seeds"] == 0
    assert np.isnan(table.loc["BeetleFly", "full length"]) and table.loc["BeetleFly", "published FCN"] == 0.91


def test_study_seeds_lists_every_archived_teacher_of_a_study_at_the_end_of_its_continuations():
    from tsd_lib.analysis.teacher_quality import study_seeds

    study = {"protocol": [_teacher(1), _teacher(2)], "remedy": [_teacher(1, warmup=200)]}
    records = _Teachers([(_teacher(1), _teacher_record(0.3, 500, False, 500)),  # capped, then continued:
                         (_teacher(1, teacher_epochs=1000), _teacher_record(0.4, 8, True)),
                         (_teacher(1, warmup=200), _teacher_record(0.63, 8, True))])
    table = study_seeds(study, records)
    assert table[["variant", "seed", "test accuracy"]].values.tolist() == [["protocol", 1, 0.4], ["remedy", 1, 0.63]]
    assert table["stopped early"].tolist() == [True, True] and table["test AUC-PR"].tolist() == [0.2, 0.315]
    assert study_seeds({}, records).empty and "best epoch" in study_seeds({}, records).columns


def test_comparison_numbers_count_the_sets_each_variant_wins():
    import pandas as pd

    from tsd_lib.analysis.teacher_quality import comparison_numbers

    table = pd.DataFrame({"resampled to 100": [0.8, 0.6, 0.7, 0.5], "resampled to 100: seeds": [3, 3, 2, 3],
                          "resampled to 100: capped": [0, 1, 0, 0],
                          "full length": [0.8, 0.7, 0.65, np.nan], "full length: seeds": [3, 3, 3, 0],
                          "full length: capped": [0, 0, 2, 0],
                          "published FCN": [0.9] * 4}, index=pd.Index(list("ABCD"), name="dataset"))
    numbers = comparison_numbers(table, "full length")
    assert numbers == pytest.approx({"sets": 4, "compared": 3, "better": 1, "equal": 1, "worse": 1,
                                     "largest_gain": 10.0, "largest_loss": 5.0, "seeds": 0, "capped": 3})
    assert all(type(v) in (int, float) for v in numbers.values())  # glue needs plain numbers
    flipped = comparison_numbers(table, "resampled to 100")
    assert (flipped["better"], flipped["worse"], flipped["largest_gain"]) == (1, 1, pytest.approx(5.0))
    assert comparison_numbers(pd.DataFrame(), "full length")["compared"] == 0
    same = comparison_numbers(table.assign(**{"full length": table["resampled to 100"]}), "full length")
    assert str(same["largest_loss"]) == "0.0" and str(same["largest_gain"]) == "0.0"  # no "-0.0" in the prose


def test_variant_plot_draws_a_bar_per_dataset_and_variant_and_the_published_fcn():
    import pandas as pd

    from tsd_lib.analysis.teacher_quality import variant_plot

    table = pd.DataFrame({"no warm-up": [0.4, 0.46], "warm-up 200": [0.77, 0.9], "published FCN": [0.72, 0.94]},
                         index=pd.Index(["OliveOil", "MoteStrain"], name="dataset"))
    ax = variant_plot(table, ("no warm-up", "warm-up 200")).axes[0]
    assert sorted(round(p.get_height(), 2) for p in ax.patches) == [0.4, 0.46, 0.77, 0.9]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["OliveOil", "MoteStrain"]
    assert [seg[0][1] for seg in ax.collections[0].get_segments()] == [0.72, 0.94]
    empty = variant_plot(pd.DataFrame(), ("a", "b")).axes[0]
    assert "No teacher" in empty.texts[0].get_text()


def test_against_published_reads_each_gap_in_order():
    import pandas as pd

    from tsd_lib.analysis.teacher_quality import READINGS, against_published

    def row(dataset, acc, fcn, n, teacher="fcn"):
        return {"dataset": dataset, "teacher": teacher, "teacher accuracy": acc, "published FCN": fcn,
                "test series": n}

    table = pd.DataFrame([row("Beef", 0.74, 0.75, 30),  # 1 point below: reproduced
                          row("Herring", 0.58, 0.644, 64),  # 6 points below on 64 series: sampling error
                          row("MoteStrain", 0.50, 0.936, 1252),  # far below, but a remedy reaches 0.92
                          row("ECGFiveDays", 0.90, 0.985, 861),  # far below, its study's remedy does not help
                          row("CBF", 0.50, 0.99, 900, teacher="lstm_teacher")])  # another arm: not read
    studies = {"MoteStrain": {"protocol": [_teacher(1, "MoteStrain")],
                              "the arm's": [_teacher(3, "MoteStrain")],  # the arm's own teacher: no remedy
                              "no validation split": [_teacher(1, "MoteStrain", val_fraction=0.0),
                                                      _teacher(2, "MoteStrain", val_fraction=0.0)]},
               "ECGFiveDays": {"protocol": [_teacher(1, "ECGFiveDays")],
                               "full length": [_teacher(1, "ECGFiveDays", length=None)]},
               "lstm": {"protocol": [_teacher(1, "Beef", teacher="lstm_teacher")]}}
    records = _Teachers([(_teacher(1, "MoteStrain"), _teacher_record(0.5, 1, True)),
                         (_teacher(3, "MoteStrain"), _teacher_record(0.95, 60, True)),
                         (_teacher(1, "MoteStrain", val_fraction=0.0), _teacher_record(0.93, 900, True)),
                         (_teacher(2, "MoteStrain", val_fraction=0.0), _teacher_record(0.91, 900, True)),
                         (_teacher(1, "ECGFiveDays", length=None), _teacher_record(0.91, 40, True))])
    gaps = against_published(table, "fcn", studies, records, [_teacher(3, "MoteStrain").teacher_key()])
    gaps = gaps.set_index("dataset")
    assert list(gaps.index) == ["Beef", "Herring", "MoteStrain", "ECGFiveDays"]
    assert list(gaps["reading"]) == list(READINGS)
    assert gaps.loc["Herring", "p against published"] > 0.05 > gaps.loc["ECGFiveDays", "p against published"]
    assert gaps.loc["MoteStrain", "best remedy"] == "no validation split"
    assert gaps.loc["MoteStrain", "remedy accuracy"] == pytest.approx(0.92)  # the mean over its two seeds
    assert gaps.loc["Beef", "best remedy"] == "none" and gaps.loc["Beef", "gap"] == pytest.approx(-0.01)
    assert against_published(table, "resnet", studies, records).empty
