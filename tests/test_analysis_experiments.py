"""Chapter 6 and the results page: grid notes, audits, ranks, selection, the pair view and each claim's
verdict, on hand-built runs whose answers are known."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from tsd_lib.analysis import (
    across_datasets,
    audit_note,
    budget_claim,
    budget_frame,
    budget_gains,
    budget_note,
    by_method,
    claim_verdicts,
    convergence_audit,
    experiments_summary,
    fidelity_claims,
    gains_claim,
    gains_plot,
    grid_note,
    inflation_views,
    pair_views,
    rank_claim,
    rank_table,
    runs_note,
    selection_note,
    teacher_scores,
    tsd_gains,
)
from tsd_lib.report import average_ranks, records_to_frame
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


def test_grid_note_and_teacher_scores():
    profile = SimpleNamespace(name="p", seeds=[0, 1], teacher_seeds=[3], tsd_weights=[0.5, 1.0])
    config = SimpleNamespace(teacher="fcn", student="fcn_small", epochs=500, patience=50, n_windows=10, window=5,
                             tau=4.0)
    df = pd.DataFrame({"dataset": ["b", "A", "b"], "teacher_seed": [3, 3, 3], "teacher_accuracy": [0.9, 0.8, 0.9],
                       "teacher_auc_pr": [0.95, 0.85, 0.95]})
    note = grid_note(profile, df, [config], ["ce", "tsd"])
    assert note.startswith("Profile `p`: **3 runs** = 2 datasets x 2 methods x 2 student seeds x 2 TSD weights")
    assert "- datasets: A, b\n" in note and "teacher seed(s): 3 " in note and "TSD weights swept: 0.5, 1" in note
    assert "up to 500 epochs (patience 50); TSD: K = 10, L = 5, tau = 4" in note
    scores = teacher_scores(df)
    assert scores.loc[("A", 3), "teacher accuracy"] == 0.8 and list(scores.columns)[1] == "teacher macro AUC-PR"


def test_audit_note_names_the_capped_runs():
    runs = _runs()
    assert audit_note(runs, convergence_audit(runs)) == (
        "Early stopping ended **8 of 8** runs; the best epoch was at most 17 and the longest run took 67 of 500 "
        "allowed epochs.")
    runs = _runs(capped=3)
    note = audit_note(runs, convergence_audit(runs), shown=2)
    assert note.endswith("**3 runs hit the cap** (A/ce/seed 0, A/ce/seed 1 and 1 more): no verdict below is decided.")
    assert "ended **5 of 8**" in note


def _budget_records() -> list[dict]:
    acc = {("A", "ce"): (0.5, 0.8), ("A", "tsd"): (0.7, 0.9), ("B", "ce"): (0.6, 0.7), ("B", "tsd"): (0.6, 0.6)}
    return [{"dataset": d, "method": m, "seed": 0, "epochs_run": 80, "accuracy": late, "saliency_spearman": late / 2,
             "budgets": {"20": {"accuracy": early, "saliency_spearman": early / 2}, "40": {"accuracy": early}}}
            for (d, m), (early, late) in acc.items()]


def test_budget_note_compares_tsd_and_ce_at_a_tight_budget_and_at_convergence():
    budget = budget_frame(_budget_records())
    note = budget_note(budget, ["ce", "tsd"])
    assert note.splitlines()[0] == ("- **test accuracy**, TSD minus CE, mean over 2 datasets: +0.100 at a 40-epoch "
                                    "budget, +0.000 at convergence (per dataset at convergence: A +0.100, B -0.100).")
    assert budget_note(budget, ["ce"]) == "The profile has no CE/TSD pair to compare."
    gains = budget_gains(budget)
    assert list(gains["accuracy"].columns) == [20, 40, "converged"]
    assert gains["accuracy"].loc["tsd − ce"].round(6).tolist() == [0.1, 0.1, 0.0]
    assert budget_claim(gains, budget, target=20) == (
        "- **tsd − ce**: accuracy +0.100 at 20 epochs and +0.000 at convergence; saliency Spearman +0.050 and +0.000.")


def test_rank_table_and_claim_one_with_the_cap_guard():
    auc = _summary({"ce": [0.8, 0.6], "kd": [0.85, 0.9], "tsd": [0.9, 0.95]})
    ranks, n = rank_table(auc, auc)
    assert n == 2 and list(ranks.index) == ["tsd", "kd", "ce"]
    assert ranks.at["kd", "average rank (accuracy)"] == 2.0
    r = average_ranks(auc.mean)
    assert rank_claim(r, 0) == ("Best average rank: **tsd** (1.00). A TSD variant ranks first here: **agrees** with "
                                "the paper. (Ranks over 2 datasets; with few datasets ranks are noisy.)")
    assert "**undecided**: 3 run(s) behind it hit the epoch cap" in rank_claim(r, 3)
    r = average_ranks(_summary({"ce": [0.9, 0.9], "tsd": [0.1, 0.2]}).mean)
    assert "The best TSD variant ranks 2.00: **disagrees** with the paper." in rank_claim(r, 0)


def test_tsd_gains_calls_differences_against_the_seed_noise_and_claim_two():
    summary = _summary({"ce": [0.5, 0.8], "tsd": [0.6, 0.805]}, {"ce": [0.02, 0.02], "tsd": [0.04, 0.02]})
    gains = tsd_gains(summary)
    assert gains["call"].tolist() == ["better", "within noise"] and gains["pair"].tolist() == ["ce → tsd"] * 2
    assert gains["relative change %"].round(3).tolist() == [20.0, 0.625]
    assert gains_claim(gains, 0) == ("Mean relative change over all pairs and datasets: **+10.3%** (better: 1, within "
                                     "noise: 1, worse: 0). Against the paper's +3.7%: **agrees** in direction.")
    assert "**undecided**: 1 run(s)" in gains_claim(gains, 1)
    worse = tsd_gains(_summary({"ce": [0.9, 0.9], "tsd": [0.5, 0.95]}))
    assert "**does not reproduce** it on this profile" in gains_claim(worse, 0)
    assert len(gains_plot(gains).axes[0].patches) >= 2
    plt.close("all")


def test_fidelity_claims_say_lower_kl_and_higher_spearman_unless_capped():
    chosen = pd.DataFrame({"method": ["kd", "kd", "kd+tsd", "kd+tsd"], "agreement": [0.8, 0.9, 0.9, 1.0],
                           "kl_teacher_student": [0.2, 0.4, 0.1, 0.1], "saliency_spearman": [0.3, 0.5, 0.6, 0.6]})
    table, note = fidelity_claims(chosen, 0)
    assert table.at["kd", ("kl_teacher_student", "mean")] == pytest.approx(0.3)
    assert note == "- kd+tsd vs kd: teacher–student KL lower (-0.2000); saliency Spearman higher (+0.200)."
    assert fidelity_claims(chosen, 2)[1].startswith("**undecided**: 2 run(s)")
    assert fidelity_claims(chosen[chosen.method == "kd"], 0)[1] == "No base/TSD pairs in this profile."


def test_runs_note():
    df = pd.DataFrame({"dataset": ["A", "A", "B"], "method": ["ce", "tsd", "ce"], "seed": [0, 0, 1]})
    assert runs_note(df, 0) == ("3 runs: 2 datasets × 2 methods × 2 student seeds.\n\n"
                                "Early stopping ended 3 of these 3 runs.")
    capped = runs_note(df, 1)
    assert capped.endswith("ended 2 of these 3 runs; **1 hit the epoch cap, so no verdict below is decided**.")


def test_selection_note_per_method_or_why_nothing_was_selected():
    infl = pd.DataFrame({"method": ["tsd", "tsd", "ce"], "n_settings": [2, 3, 1], "inflation": [0.01, 0.03, 0.0]})
    assert selection_note(infl, None, None) == (
        "2 (dataset, method) pair(s) had more than one setting to choose from. Mean inflation of test macro AUC-PR "
        "from selecting on the test set: tsd: 0.0200 (max 0.0300).")
    profile = SimpleNamespace(name="quick", teacher_seeds=[0], tsd_weights=[1.0])
    paper = SimpleNamespace(teacher_seeds=[0, 1, 2], tsd_weights=[0.1, 1.0])
    note = selection_note(infl.assign(n_settings=1), profile, paper)
    assert note.startswith("Profile `quick` has 1 teacher seed(s) and 1 TSD weight(s)")
    assert "sweeps the TSD weight over {0.1, 1} and 3 teacher seeds" in note


def test_inflation_views_show_the_choice_only_where_there_was_one():
    infl = pd.DataFrame({"dataset": ["A", "A", "B"], "method": ["tsd", "ce", "tsd"], "n_settings": [2, 1, 1],
                         "inflation": [0.012345, 0.0, 0.0]})
    pivot, choice = inflation_views(infl, ["ce", "tsd"])
    assert list(pivot.index) == ["ce", "tsd"] and pivot.at["tsd", "A"] == 0.0123 and pivot.at["tsd", "B"] == 0.0
    assert choice["method"].tolist() == ["tsd"]
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
    assert table.loc[("A", "lstm_teacher → lstm_student", "tsd"), ("accuracy", "mean")] == 0.85
    assert teachers == "Teachers: A (lstm_teacher → lstm_student): seed 2, test accuracy 0.950."
    assert comparison == "- A: tsd vs ce: accuracy +0.100, saliency Spearman +0.300."
    assert pair_views(_pair_frame(capped=True))[2] == "- No comparison: 2 runs of the pair hit the epoch cap."


def test_experiments_summary_ranks_gaps_selection_and_the_cap_guard():
    auc = _summary({"ce": [0.6, 0.7], "kd": [0.7, 0.75], "kd+tsd": [0.8, 0.74]},
                   {"ce": [0.01, 0.01], "kd": [0.02, 0.02], "kd+tsd": [0.03, 0.01]})
    infl = pd.DataFrame({"method": ["kd+tsd", "kd+tsd"], "n_settings": [2, 1], "inflation": [0.02, 0.0]})
    text = experiments_summary(auc, infl, n_seeds=3, profile="quick", n_capped=0)
    lines = text.splitlines()
    assert lines[0] == ("- Over 2 dataset(s), the best average rank in test macro AUC-PR is **kd** (1.50); the "
                        "order is kd (1.50) < kd+tsd (1.50) < ce (3.00).")  # a tie keeps the column order
    assert lines[1] == ("- kd+tsd vs kd: wins/ties/losses 1/0/1 over 2 datasets, mean change in test macro AUC-PR "
                        "+0.0450; the mean gap is larger than the typical seed std (0.0250).")
    assert "by up to 0.0200 (mean 0.0200 over the 1 (dataset, method) pairs with a choice)" in lines[2]
    assert lines[3].startswith("- With 2 dataset(s) and 3 seeds (profile `quick`)")
    one_seed = experiments_summary(auc, infl.assign(inflation=0.0), n_seeds=1, profile="quick", n_capped=0)
    assert "typical seed std" not in one_seed and "- Selection: no inflation in this profile" in one_seed
    assert experiments_summary(auc, infl, n_seeds=3, profile="quick", n_capped=4) == (
        "- No verdict: 4 runs of the main grid hit the epoch cap (see the audit).")


def test_claim_verdicts_give_one_word_per_claim_from_the_runs():
    def runs(tsd_auc: float, tsd_kl: float) -> pd.DataFrame:
        rows = [{"dataset": ds, "method": m, "seed": seed, "teacher_seed": 0, "auc_pr": (tsd_auc if m == "tsd" else 0.8)
                 + 0.01 * seed, "val_auc_pr": 0.9, "val_loss": 0.1, "agreement": 0.9,
                 "kl_teacher_student": tsd_kl if m == "tsd" else 0.2, "saliency_spearman": 0.6 if m == "tsd" else 0.4}
                for ds in ("A", "B") for m in ("ce", "tsd") for seed in (0, 1)]
        return records_to_frame(rows)

    agree = claim_verdicts(runs(0.9, 0.1), 0)
    assert agree.tolist() == ["agrees"] * 4 and agree.index[1] == "2. adding TSD raises AUC-PR"
    mixed = claim_verdicts(runs(0.7, 0.3), 0)
    assert mixed.tolist() == ["does not reproduce", "does not reproduce", "does not reproduce", "agrees"]
    assert claim_verdicts(runs(0.9, 0.1), 2).tolist() == ["undecided (2 capped)"] * 4
