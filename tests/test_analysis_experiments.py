"""Chapter 6 and the results page: grid notes, audits, ranks, selection, the pair view, and the claims
engine's verdicts as the pages show them, on hand-built runs whose answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from tsd_lib.analysis.audit import convergence_audit
from tsd_lib.analysis.budget import budget_frame
from tsd_lib.analysis.claims import (
    HEADLINE,
    SALIENCY,
    budget_gains,
    budget_numbers,
    claims_table,
    gains_plot,
    headline_table,
    method_means,
    strong_teacher_claims,
    tsd_gains,
    verdict_lines,
    verdict_table,
    verdict_words,
    verdicts_side_by_side,
)
from tsd_lib.analysis.experiments import (
    audit_numbers,
    audit_view,
    budget_gains_view,
    capped_table,
    grid_numbers,
    grid_values,
    inflation_views,
    pair_change_numbers,
    pair_views,
    rank_table,
    selection_numbers,
    teacher_scores,
    tsd_pair_changes,
    wtl_view,
)
from tsd_lib.analysis.paper_views import DT2W_PER_BATCH_CODES, old_dt2w, old_dt2w_numbers, shown_records
from tsd_lib.analysis.seed_tables import across_datasets, by_method
from tsd_lib.analysis.teacher_quality import teacher_quality
from tsd_lib.analysis.verdicts import claims, claims_by_arm, verdict_summary
from tsd_lib.report import records_to_frame, win_tie_loss
from tsd_lib.report.tables import Summary


def _summary(mean: dict[str, list[float]], std: dict[str, list[float]] | None = None) -> Summary:
    index = pd.Index(["A", "B"], name="dataset")
    mean_f = pd.DataFrame(mean, index=index)
    std_f = pd.DataFrame(std or {m: [0.01, 0.01] for m in mean}, index=index)
    text = pd.DataFrame({m: [f"{v:.3f}" for v in mean_f[m]] for m in mean_f}, index=index)
    return Summary(text, mean_f, std_f, mean_f.notna().astype(int))


def _runs(capped: int = 0) -> list[dict]:
    rows = []
    for i, (ds, method, seed) in enumerate((d, m, s) for d in ("A", "B") for m in ("ce", "tsd") for s in (0, 1)):
        rows.append({"dataset": ds, "method": method, "seed": seed, "student": "s", "teacher": "t",
                     "stopped_early": i >= capped, "epochs_run": 60 + i, "best_epoch": 10 + i, "epochs": 500})
    return rows


def test_by_method_puts_methods_in_rows_with_the_mean_over_datasets():
    table = by_method(_summary({"ce": [0.8, 0.6], "tsd": [0.9, 0.8]}))
    assert list(table.index) == ["ce", "tsd"] and list(table.columns) == ["A", "B", "mean over datasets"]
    assert table.at["ce", "mean over datasets"] == "0.700" and table.at["tsd", "mean over datasets"] == "0.850"
    assert table.at["tsd", "B"] == "0.800"


def test_across_datasets_averages_datasets_per_seed_then_seeds():
    frame = pd.DataFrame({"method": ["ce"] * 4 + ["kd"] * 2, "seed": [0, 0, 1, 1, 0, 0],
                          "dataset": ["A", "B"] * 3, "accuracy": [0.8, 0.6, 1.0, 0.8, 0.5, 0.7]})
    text, stats, per_seed = across_datasets(frame, ["accuracy"], ["ce", "kd"])
    assert per_seed.set_index(["method", "seed"])["accuracy"].round(6).to_dict() == {
        ("ce", 0): 0.7, ("ce", 1): 0.9, ("kd", 0): 0.6}
    assert text.at["ce", "accuracy"] == "0.800 ± 0.141" and text.at["kd", "accuracy"] == "0.600"
    assert stats.at["ce", ("accuracy", "mean")] == pytest.approx(0.8)


def test_grid_numbers_and_teacher_scores():
    profile = SimpleNamespace(name="p", seeds=[0, 1], teacher_seeds=[3], tsd_weights=[0.5, 1.0],
                              grids={"kd": {"tau": [1.0, 8.0]}})
    config = SimpleNamespace(teacher="fcn", student="fcn_small", epochs=500, patience=50, n_windows=10, window=5,
                             tau=4.0)
    df = pd.DataFrame({"dataset": ["b", "A", "b"], "teacher_seed": [3, 3, 3], "teacher_accuracy": [0.9, 0.8, 0.9],
                       "teacher_auc_pr": [0.95, 0.85, 0.95]})
    numbers = grid_numbers(profile, df, [config], ["ce", "kd+tsd"])
    assert numbers == {"runs": 3, "n_datasets": 2, "n_methods": 2, "n_seeds": 2, "datasets": "A, b",
                       "methods": "CE, KD+TSD", "seeds": "0, 1", "teacher_seeds": "3", "tsd_weights": "0.5, 1",
                       "grids": "kd tau {1, 8}", "teacher": "fcn", "student": "fcn_small", "K": 10, "L": 5,
                       "tau": 4.0}
    assert all(type(v) in (int, float, str) for v in numbers.values())  # glue needs plain values
    assert grid_values(SimpleNamespace(grids={"kd": {"tau": [1.0, 8.0]}, "at": {"weight": [10.0]}})) == (
        "kd tau {1, 8}; at weight {10}")
    assert grid_values(SimpleNamespace(grids=None)) == "none"
    scores = teacher_scores(df)
    assert list(scores.columns) == ["teacher seed", "test accuracy", "test macro AUC-PR"]
    assert scores.index.name == "dataset" and scores.loc["A", "test accuracy"] == 0.8
    assert scores["teacher seed"].tolist() == [3, 3]


def test_audit_numbers_view_and_the_capped_runs_by_name():
    runs = _runs()
    audit = convergence_audit(runs)
    assert audit_numbers(runs, audit) == {"runs": 8, "stopped": 8, "capped": 0, "best_epoch_max": 17,
                                          "epochs_run_max": 67, "epoch_cap": 500}
    assert capped_table(runs).empty
    runs = _runs(capped=3)
    assert audit_numbers(runs, convergence_audit(runs))["capped"] == 3
    capped = capped_table(runs)
    assert list(capped.columns) == ["dataset", "student", "method", "seed", "epochs run", "best epoch"]
    assert capped[["dataset", "method", "seed"]].values.tolist() == [["A", "CE", 0], ["A", "CE", 1], ["A", "TSD", 0]]
    view = audit_view(convergence_audit(runs, by=("student", "method")))
    assert list(view.columns) == ["runs", "ended by the epoch cap", "epoch cap", "best epoch (median)",
                                  "best epoch (max)", "epochs run (max)"]
    assert view.loc[("s", "CE"), "ended by the epoch cap"] == 2


def _budget_records() -> list[dict]:
    acc = {("A", "ce"): (0.5, 0.8), ("A", "tsd"): (0.7, 0.9), ("B", "ce"): (0.6, 0.7), ("B", "tsd"): (0.6, 0.6)}
    return [{"dataset": d, "method": m, "seed": 0, "epochs_run": 80, "accuracy": late, "saliency_spearman": late / 2,
             "budgets": {"20": {"accuracy": early, "saliency_spearman": early / 2}, "40": {"accuracy": early}}}
            for (d, m), (early, late) in acc.items()]


def test_budget_gains_and_numbers_for_the_prose():
    budget = budget_frame(_budget_records())
    gains = budget_gains(budget)
    assert list(gains["accuracy"].columns) == [20, 40, "converged"]
    assert gains["accuracy"].loc["tsd − ce"].round(6).tolist() == [0.1, 0.1, 0.0]
    view = budget_gains_view(gains["accuracy"])
    assert list(view.index) == ["TSD − CE"] and list(view.columns) == ["20 epochs", "40 epochs", "converged"]
    assert view.index.name == "with TSD − base"
    numbers = budget_numbers(gains, budget, target=20)
    assert numbers == pytest.approx({"epochs": 20, "accuracy_tight": 0.1, "accuracy_converged": 0.0,
                                     "spearman_tight": 0.05, "spearman_converged": 0.0})
    assert all(type(v) in (int, float) for v in numbers.values())  # glue needs plain numbers
    missing = budget_numbers(gains, budget, comparison="kd+tsd − kd")
    assert missing["epochs"] == 40 and np.isnan(missing["accuracy_tight"])


def test_rank_table():
    auc = _summary({"ce": [0.8, 0.6], "kd": [0.85, 0.9], "tsd": [0.9, 0.95]})
    ranks, n = rank_table(auc, auc)
    assert n == 2 and list(ranks.index) == ["TSD", "KD", "CE"] and ranks.index.name == "method"
    assert ranks.at["KD", "average rank (accuracy)"] == 2.0


def test_wins_ties_losses_and_each_tsd_variant_against_its_base():
    auc = _summary({"ce": [0.6, 0.7], "kd": [0.7, 0.75], "tsd": [0.6, 0.8], "kd+tsd": [0.8, 0.74]})
    view = wtl_view(win_tie_loss(auc.mean, baseline=("ce", "kd")))
    assert list(view.columns) == ["baseline", "method", "wins", "ties", "losses", "datasets",
                                  "mean change in test macro AUC-PR", "median change", "Wilcoxon p (two-sided)"]
    assert view.iloc[0][["baseline", "method"]].tolist() == ["CE", "KD"]
    changes = tsd_pair_changes(auc.mean)
    assert list(changes.index) == ["CE → TSD", "KD → KD+TSD"]  # DKD was not run
    assert changes.loc["CE → TSD"].tolist() == pytest.approx([2, 1, 1, 0, 0.05])
    assert changes.loc["KD → KD+TSD", ["higher", "equal", "lower"]].tolist() == [1, 0, 1]
    numbers = pair_change_numbers(changes, "kd", "kd+tsd")
    assert numbers == pytest.approx({"datasets": 2, "higher": 1, "equal": 0, "lower": 1, "mean_change": 0.045})
    assert all(type(v) in (int, float) for v in numbers.values())
    none = pair_change_numbers(changes, "dkd", "dkd+tsd")
    assert none["datasets"] == 0 and np.isnan(none["mean_change"])


def test_tsd_gains_describe_the_relative_change_without_a_call():
    gains = tsd_gains(_summary({"ce": [0.5, 0.8], "tsd": [0.6, 0.805]}))
    assert list(gains.columns) == ["dataset", "pair", "base", "with TSD", "relative change %"]
    assert gains["pair"].tolist() == ["ce → tsd"] * 2 and gains["relative change %"].round(3).tolist() == [20.0, 0.625]
    assert len(gains_plot(gains).axes[0].patches) >= 2
    plt.close("all")


def test_selection_numbers_and_inflation_views():
    infl = pd.DataFrame({"dataset": ["A", "A", "B"], "method": ["tsd", "ce", "tsd"], "n_settings": [2, 1, 3],
                         "val_selected": ["w=1", "-", "w=1"], "test_selected": ["w=10", "-", "w=1"],
                         "test_mean_val_selected": [0.8, 0.7, 0.9], "test_mean_test_selected": [0.812345, 0.7, 0.9],
                         "inflation": [0.012345, 0.0, 0.0]})
    profile = SimpleNamespace(teacher_seeds=[0], tsd_weights=[1.0, 10.0])
    paper = SimpleNamespace(teacher_seeds=[0, 1, 2], tsd_weights=[0.1, 1.0])
    numbers = selection_numbers(infl, profile, paper)
    assert numbers == pytest.approx({"choices": 2, "inflation_mean": 0.0061725, "inflation_max": 0.012345,
                                     "teacher_seeds": 1, "tsd_weights": 2, "paper_tsd_weights": "0.1, 1",
                                     "paper_teacher_seeds": 3})
    assert selection_numbers(infl.assign(n_settings=1), profile, paper)["inflation_max"] == 0.0
    pivot, choice = inflation_views(infl, ["ce", "tsd"])
    assert list(pivot.index) == ["CE", "TSD"] and pivot.at["TSD", "A"] == 0.012345 and pivot.at["TSD", "B"] == 0.0
    assert choice["method"].tolist() == ["TSD", "TSD"] and "chosen on validation" in choice
    assert list(choice.index) == [0, 1]  # a plain index, hidden in the book
    assert len(inflation_views(infl.assign(n_settings=1), ["ce", "tsd"])) == 1


def _pair_frame(capped: bool = False) -> pd.DataFrame:
    rows = []
    for method, acc, sp in (("ce", (0.7, 0.8), (0.1, 0.3)), ("tsd", (0.9, 0.8), (0.5, 0.5))):
        for seed in (0, 1):
            rows.append({"dataset": "A", "teacher": "lstm_teacher", "student": "lstm_student", "method": method,
                         "seed": seed, "accuracy": acc[seed], "auc_pr": 0.5, "agreement": 0.9,
                         "saliency_spearman": sp[seed], "teacher_seed_chosen": 2, "teacher_accuracy": 0.95,
                         "stopped_early": not (capped and seed == 0), "epochs_run": 50, "best_epoch": 10,
                         "epochs": 500})
    return pd.DataFrame(rows)


def test_pair_views():
    table, teachers, comparison = pair_views(_pair_frame())
    cell = table.loc[("A", "lstm_teacher → lstm_student", "TSD"), "test accuracy"]
    assert cell == "0.850 ± 0.071" and table.loc[("A", "lstm_teacher → lstm_student", "TSD"), "seeds"] == 2
    assert teachers.loc[("A", "lstm_teacher → lstm_student")].tolist() == [2, 0.95]
    assert list(teachers.columns) == ["teacher seed", "test accuracy"]
    assert comparison.to_dict("records") == [{"dataset": "A", "comparison": "TSD − CE",
                                              "test accuracy": pytest.approx(0.1),
                                              "saliency Spearman": pytest.approx(0.3)}]
    assert pair_views(_pair_frame(capped=True))[2] is None  # no comparison while a run is capped


def _engine_runs(n_datasets: int, shift: float, *, teacher: str = "t", seeds: int = 2) -> list[dict]:
    """CE, KD, TSD and KD+TSD on ``n_datasets``: the TSD variants ``shift`` above their base in macro AUC-PR
    and agreement (KL below), a little seed noise, one setting each."""
    rng = np.random.default_rng(0)
    rows = []
    for d in range(n_datasets):
        for method in ("ce", "kd", "tsd", "kd+tsd"):
            up = shift if "tsd" in method.split("+") else 0.0
            for seed in range(seeds):
                e = float(rng.normal(0, 0.002))
                v = 0.6 + 0.02 * d + (0.01 if method.startswith("kd") else 0.0) + up + e
                rows.append({"dataset": f"D{d}", "method": method, "seed": seed, "teacher": teacher, "student": "s",
                             "weights": {"tsd": 1.0} if up or "tsd" in method else None, "auc_pr": v,
                             "auc_pr_trapezoid": v - 0.01, "val_auc_pr": v, "val_loss": 1 - v, "accuracy": v,
                             "agreement": 0.8 + up + e, "kl_teacher_student": 0.2 - up - e,
                             "saliency_spearman": 0.3 + up, "teacher_accuracy": 0.95, "stopped_early": True,
                             "epochs_run": 50, "best_epoch": 10, "epochs": 500})
    return rows


@pytest.fixture(scope="module")
def engine_claims():
    return claims(records_to_frame(_engine_runs(12, 0.1)))


def test_verdict_table_lines_and_words_come_from_the_engine(engine_claims):
    table = verdict_table(engine_claims)
    assert table["verdict"].tolist() == verdict_summary(engine_claims).tolist()
    assert list(table.columns) == ["claim", "verdict", "test", "datasets", "p (Holm)", "comparisons tested"]
    gain = table.set_index("claim").iloc[1]
    assert gain["verdict"] == "supported" and gain["datasets"] == "12" and gain["comparisons tested"] == "2 of 3"
    assert gain["test"] == "Wilcoxon signed-rank, Holm over 2"
    p = [c.p_adjusted for c in engine_claims if c.claim == "2" and c.n_datasets]
    assert gain["p (Holm)"] == (f"{min(p):.3g}" if f"{min(p):.3g}" == f"{max(p):.3g}" else
                                f"{min(p):.3g}–{max(p):.3g}")
    assert verdict_words(engine_claims)["2"] == "supported" and set(verdict_words(engine_claims)) == set("1234")
    lines = verdict_lines(engine_claims)
    assert lines[1].startswith("2\\. adding TSD to a base method raises macro AUC-PR")  # a bullet, not a list
    assert "**supported** (Wilcoxon" in lines[1]
    assert "; 12 datasets; Holm p " in lines[1]
    # claim 4's deciding rows (deletion, insertion, IG, planted) are not measured in these runs
    assert lines[3].endswith("**too few datasets** (no comparison measured)")
    few = claims(records_to_frame(_engine_runs(3, 0.1)))
    assert set(verdict_table(few)["verdict"]) == {"too few datasets"}
    assert verdict_table([]).empty


def test_claims_table_puts_the_effect_and_its_interval_in_one_cell(engine_claims):
    table = claims_table(engine_claims)
    assert len(table) == len(engine_claims)
    assert {"p (Holm)", "estimate [95% CI]", "decides the claim", "consistency (dataset, seed)"} <= set(table.columns)
    row = next(c for c in engine_claims if c.claim == "2" and c.comparison == "tsd vs ce")
    cell = table.loc[(table["claim"] == "2") & (table["comparison"] == "tsd vs ce"), "estimate [95% CI]"].item()
    assert cell == f"{row.effect.value:+.3g} [{row.effect.ci_low:+.3g}, {row.effect.ci_high:+.3g}]"
    assert (table.loc[table["datasets"] == 0, "estimate [95% CI]"] == "—").all()


def test_strong_teacher_claims_rerun_the_engine_on_the_strong_teachers_datasets():
    rows = _engine_runs(6, 0.1) + _engine_runs(6, 0.1, teacher="u")
    df = records_to_frame(rows)
    for r in rows:  # teacher u is weak on D0 and D1 (ItalyPowerDemand-like published FCN: names are not UCR)
        r["teacher_accuracy"] = 0.5 if r["teacher"] == "u" and r["dataset"] in ("D0", "D1") else 0.95
    quality = teacher_quality(rows).assign(**{"weak teacher": lambda q: q["teacher accuracy"] < 0.6})
    strong = strong_teacher_claims(df, quality)
    assert list(strong) == ["t -> s", "u -> s"]
    assert strong["t -> s"][0] == [f"D{i}" for i in range(6)]
    assert strong["u -> s"][0] == ["D2", "D3", "D4", "D5"]
    found = {c.comparison + c.metric: c for c in strong["u -> s"][1]}
    assert found["tsd vs cemacro AUC-PR"].n_datasets == 4
    assert {c.n_datasets for c in claims_by_arm(df)["u -> s"] if c.claim == "2" and c.n_datasets} == {6}
    none = strong_teacher_claims(df, quality.assign(**{"weak teacher": True}))
    assert none["t -> s"] == ([], [])
    side = verdicts_side_by_side({"all": claims_by_arm(df)["t -> s"], "strong": none["t -> s"][1]})
    assert list(side.columns) == ["all: verdict", "all: datasets", "all: p (Holm)", "strong: verdict",
                                  "strong: datasets", "strong: p (Holm)"]
    assert (side["strong: verdict"] == "no dataset").all() and side.index.name == "claim" and len(side) == 4


def test_headline_and_saliency_tables_per_method():
    df = records_to_frame(_engine_runs(2, 0.1))
    table = headline_table(df)
    assert list(table.index) == ["ce", "kd", "tsd", "kd+tsd"] and table["datasets"].tolist() == [2] * 4
    assert list(table.columns)[1:] == ["macro AP (average precision; headline)",
                                       "macro AUC-PRC (trapezoidal, the authors')"]
    assert table.iloc[:, 2].sub(table.iloc[:, 1]).round(6).eq(-0.01).all()
    partly = df.copy()
    partly.loc[(partly["method"] == "kd") & (partly["dataset"] == partly["dataset"].iloc[0]), "auc_pr_trapezoid"] = None
    mixed = headline_table(partly)  # records older than the trapezoidal metric: no mean over the rest
    assert mixed.iloc[:, 2].isna().tolist() == [False, True, False, False] and mixed.iloc[:, 1].notna().all()
    plain = headline_table(df.drop(columns="auc_pr_trapezoid"))
    assert list(plain.columns) == ["datasets", "macro AP (average precision; headline)"]
    sal = method_means(df, SALIENCY)
    assert list(sal.columns) == ["datasets", SALIENCY["saliency_spearman"]]  # the others are not measured
    assert "training objective" in SALIENCY["saliency_spearman"]


def _fake_paper():
    old, new = next(iter(DT2W_PER_BATCH_CODES)), "current"
    runs = ([{"key": f"a{i}", "dataset": "A", "method": "dt2w", "code": old, "accuracy": 0.5} for i in range(2)]
            + [{"key": "b0", "dataset": "B", "method": "dt2w", "code": new, "accuracy": 0.9}]
            + [{"key": "c0", "dataset": "A", "method": "ce", "code": old, "accuracy": 0.9}])
    defaults = [{"key": "a0", "dataset": "A", "method": "dt2w", "accuracy": 0.5},
                {"key": "c0", "dataset": "A", "method": "ce", "accuracy": 0.9}]
    archive = SimpleNamespace(records=lambda: runs, manifest={})
    return SimpleNamespace(archive=archive, defaults=defaults, claim_records=[{"key": "c0", "x": 1}])


def test_old_dt2w_flags_the_per_batch_adapter(monkeypatch):
    import tsd_lib.analysis.paper_views as pa

    monkeypatch.setattr(pa, "is_current", lambda record, manifest: record.get("code") == "current")
    paper = _fake_paper()
    table = old_dt2w(paper)
    assert table["dataset"].tolist() == ["A", "B"]
    assert table["DT2W records"].tolist() == [2, 1] and table["made by the per-batch adapter"].tolist() == [2, 0]
    assert table["not current"].tolist() == [2, 0]
    assert table.loc[0, "DT2W accuracy (default)"] == 0.5 and table.loc[0, "CE accuracy (default)"] == 0.9
    assert np.isnan(table.loc[1, "CE accuracy (default)"])
    numbers = old_dt2w_numbers(table)
    fixed_gap = numbers.pop("fixed_gap")
    assert numbers == {"records": 3, "old": 2, "codes": next(iter(DT2W_PER_BATCH_CODES)), "worst": "A",
                       "worst_dt2w": 0.5, "worst_ce": 0.9, "fixed": 1, "label": "DT2W (old adapter)"}
    assert np.isnan(fixed_gap)  # B's DT2W is current, but no CE default to compare with
    fixed = old_dt2w_numbers(table.iloc[1:])
    assert fixed["old"] == 0 and fixed["worst"] == "none" and np.isnan(fixed["worst_dt2w"])
    assert fixed["label"] == "DT2W"
    paper.archive.records = lambda: []
    assert old_dt2w(paper).empty and old_dt2w_numbers(old_dt2w(paper))["codes"] == "none"
    assert [r["key"] for r in shown_records(paper)] == ["c0", "a0"]  # the claim records, then the defaults, once


def test_comparisons_table_is_the_short_view_and_every_comparison_the_full_one(engine_claims):
    from tsd_lib.analysis.claims import COMPARISON_COLUMNS, comparisons_table, every_comparison

    full = claims_table(engine_claims)
    short = comparisons_table(engine_claims)
    assert list(short.columns) == COMPARISON_COLUMNS and len(short) == int((full["datasets"] > 0).sum())
    row = short[(short["claim"] == "3") & (short["comparison"] == "tsd vs ce")].iloc[0]
    estimate = full.loc[(full["claim"] == "3") & (full["comparison"] == "tsd vs ce"), "estimate [95% CI]"].iloc[0]
    assert row["effect [95% CI]"] == f"median change: {estimate}"  # "(tsd − ce)" is the comparison's own
    assert short["decides"].tolist() == full.loc[full["datasets"] > 0, "decides the claim"].tolist()
    both = every_comparison({"t -> s": engine_claims, "u -> s": engine_claims[:2]})
    assert list(both.columns) == ["arm", *full.columns]
    assert both["arm"].tolist() == ["t → s"] * len(full) + ["u → s"] * 2
    assert every_comparison({}).empty and comparisons_table([]).empty


def test_ranks_and_means_and_the_per_dataset_tables():
    from tsd_lib.analysis.claims import RANK_COLUMN, per_dataset_table, ranks_and_means

    df = records_to_frame(_engine_runs(3, 0.1))
    table = ranks_and_means(df, labels={"kd": "KD (renamed)"})
    assert table.index.name == "method" and list(table.index)[0] == "KD+TSD"  # best rank first, names for readers
    assert "KD (renamed)" in table.index and table.attrs["n_ranked"] == 3
    assert list(table.columns) == [RANK_COLUMN, "datasets", *HEADLINE.values()]
    assert table[RANK_COLUMN].is_monotonic_increasing and table["datasets"].tolist() == [3] * 4
    one = per_dataset_table(df)
    assert one.index.name == "dataset" and list(one.index) == ["D0", "D1", "D2"]
    assert list(one.columns) == ["CE", "KD", "TSD", "KD+TSD"]
    assert all(" ± " in cell for cell in one.to_numpy().ravel())  # mean ± std over the two seeds
    arms = per_dataset_table({"t -> s": df, "u -> s": df[df["dataset"] != "D2"]})
    assert arms.columns.names == ["arm", "method"] and list(arms.columns.levels[0]) == ["t → s", "u → s"]
    assert arms.loc["D2", ("u → s", "CE")] == "–" and arms.loc["D2", ("t → s", "CE")] == one.loc["D2", "CE"]
    assert per_dataset_table({}).empty


def test_ties_view_and_numbers():
    from tsd_lib.analysis.claims import ties_numbers, ties_view

    ties = pd.DataFrame({"dataset": ["A", "B"], "method": ["kd+tsd", "dt2w"], "settings": [5, 3],
                         "tied at best validation": [1, 3], "selected": ["tsd_weight=1", "dt2w weight=0.1"],
                         "test of selected": [0.9, 0.8], "test, worst setting": [0.85, 0.7],
                         "test, best setting": [0.95, 0.8], "arm": ["t -> s", "t -> s"]})
    view = ties_view(ties, labels={"dt2w": "DT2W (old adapter)"})
    assert list(view.columns)[:3] == ["arm", "dataset", "method"] and view["arm"].tolist() == ["t → s"] * 2
    assert view["method"].tolist() == ["KD+TSD", "DT2W (old adapter)"]
    assert "settings tied at the best validation score" in view and "test macro AP, chosen setting" in view
    assert ties_numbers(ties) == {"tuned": 2, "tied": 1} and ties_numbers(pd.DataFrame()) == {"tuned": 0, "tied": 0}


def test_scroll_box_keeps_the_caption_above_a_box_that_scrolls_sideways():
    from tsd_lib.analysis.claims import scroll_box
    from tsd_lib.analysis.seed_tables import readers_table

    styler = readers_table(pd.DataFrame({"CE": ["0.912 ± 0.015"]}, index=pd.Index(["A"], name="dataset")),
                           caption="Macro AP per dataset")
    html = scroll_box(styler)._repr_html_()
    assert html.index("Macro AP per dataset") < html.index('<div style="overflow-x: auto')
    assert "<caption>" not in html and "white-space: nowrap" in html and "0.912 ± 0.015" in html
    assert "white-space" not in scroll_box(readers_table(pd.DataFrame({"x": [1]})), nowrap=False)._repr_html_()
    assert styler.caption == "Macro AP per dataset"  # the styler keeps its caption
