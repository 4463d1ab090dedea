"""Chapter 6: the main grid's numbers for the prose, the teachers' scores, the convergence audit, ranks,
wins and losses, each TSD variant against its base, test-set selection and the paper's own pair, as
tables for readers and plain numbers for myst-nb's ``glue`` (the chapter's verdicts are the claims
engine's, :mod:`tsd_lib.analysis.verdicts`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.audit import capped_runs
from tsd_lib.analysis.seed_tables import mean_std, method_label
from tsd_lib.report import average_ranks

#: Each TSD variant and the base method it adds the TSD term to: ``(base, with TSD)``.
TSD_PAIRS: tuple[tuple[str, str], ...] = (("ce", "tsd"), ("kd", "kd+tsd"), ("dkd", "dkd+tsd"))

#: The convergence audit's columns (:func:`~tsd_lib.analysis.audit.convergence_audit`) in words.
AUDIT_COLUMNS = {"runs": "runs", "capped": "ended by the epoch cap", "epoch_cap": "epoch cap",
                 "best_epoch_median": "best epoch (median)", "best_epoch_max": "best epoch (max)",
                 "epochs_run_max": "epochs run (max)"}

#: :func:`~tsd_lib.report.win_tie_loss`'s columns in words.
WTL_COLUMNS = {"baseline": "baseline", "method": "method", "wins": "wins", "ties": "ties", "losses": "losses",
               "n_datasets": "datasets", "mean_diff": "mean change in test macro AUC-PR",
               "median_diff": "median change", "p_wilcoxon": "Wilcoxon p (two-sided)"}


def _names(values: Iterable[Any]) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def grid_values(profile: Any) -> str:
    """The baselines' tuning grids of a profile ("kd tau {1, 2}; at weight {1, 10}"), or "none"."""
    grids = getattr(profile, "grids", None) or {}
    return "; ".join(f"{m} {axis} {{{', '.join(f'{v:g}' for v in values)}}}"
                     for m, axes in grids.items() for axis, values in axes.items()) or "none"


def grid_numbers(profile: Any, df: pd.DataFrame, configs: Sequence[Any], methods: Sequence[str]) -> dict[str, Any]:
    """What the main grid holds, as plain numbers and names for the chapter's prose (myst-nb ``glue``): runs,
    datasets, methods, seeds, the settings swept on validation and the shared run settings."""
    c = configs[0]
    return {"runs": len(df), "n_datasets": int(df["dataset"].nunique()), "n_methods": len(methods),
            "n_seeds": len(profile.seeds), "datasets": ", ".join(sorted(df["dataset"].unique(), key=str.lower)),
            "methods": ", ".join(method_label(m) for m in methods), "seeds": _names(profile.seeds),
            "teacher_seeds": _names(profile.teacher_seeds), "tsd_weights": _names(profile.tsd_weights),
            "grids": grid_values(profile), "teacher": str(c.teacher), "student": str(c.student),
            "K": int(c.n_windows), "L": int(c.window), "tau": float(c.tau)}


def teacher_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (the index) and teacher seed: the teacher's test accuracy and macro AUC-PR."""
    scores = df.groupby(["dataset", "teacher_seed"])[["teacher_accuracy", "teacher_auc_pr"]].first().reset_index(1)
    return scores.rename(columns={"teacher_seed": "teacher seed", "teacher_accuracy": "test accuracy",
                                  "teacher_auc_pr": "test macro AUC-PR"}).astype({"teacher seed": int})


def audit_view(audit: pd.DataFrame) -> pd.DataFrame:
    """The convergence audit for readers: its columns in words, the methods by their names."""
    view = audit.rename(columns=AUDIT_COLUMNS)
    if "method" in (view.index.names or []):
        view = view.rename(index=method_label, level="method")
    return view


def audit_numbers(records: Sequence[Mapping[str, Any]] | pd.DataFrame, audit: pd.DataFrame) -> dict[str, int]:
    """For the prose: runs, runs early stopping ended and runs the cap ended, the latest best epoch, the
    longest run and the largest epoch cap."""
    n, capped = len(records), len(capped_runs(records))
    return {"runs": n, "stopped": n - capped, "capped": capped, "best_epoch_max": int(audit["best_epoch_max"].max()),
            "epochs_run_max": int(audit["epochs_run_max"].max()), "epoch_cap": int(audit["epoch_cap"].max())}


def capped_table(records: Sequence[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """The runs the epoch cap ended, one row each: dataset, student, method, seed, epochs run, best epoch
    (empty when early stopping ended every run)."""
    capped = capped_runs(records)
    cols = {"dataset": "dataset", "student": "student", "method": "method", "seed": "seed",
            "epochs_run": "epochs run", "best_epoch": "best epoch"}
    view = capped[[c for c in cols if c in capped]].rename(columns=cols).reset_index(drop=True)
    if "method" in view:
        view["method"] = view["method"].map(method_label)
    return view


def budget_gains_view(gains: pd.DataFrame) -> pd.DataFrame:
    """One table of :func:`~tsd_lib.analysis.claims.budget_gains` for readers: the comparisons by the methods'
    names (``"TSD − CE"``), the budgets as ``"20 epochs"`` ... ``"converged"``."""
    view = gains.rename(index=lambda c: " − ".join(method_label(m) for m in str(c).split(" − ")),
                        columns=lambda b: b if b == "converged" else f"{b} epochs")
    view.index.name, view.columns.name = "with TSD − base", None
    return view


def rank_table(auc: Any, acc: Any) -> tuple[pd.DataFrame, int]:
    """Average ranks in macro AUC-PR and accuracy (two :class:`Summary` tables), best first, the methods by
    their names, and the number of datasets they are taken over."""
    ranks = pd.DataFrame({"average rank (macro AUC-PR)": average_ranks(auc.mean),
                          "average rank (accuracy)": average_ranks(acc.mean)})
    ranks = ranks.sort_values("average rank (macro AUC-PR)").rename(index=method_label)
    ranks.index.name = "method"
    return ranks, average_ranks(auc.mean).attrs["n_datasets"]


def wtl_view(wtl: pd.DataFrame) -> pd.DataFrame:
    """:func:`~tsd_lib.report.win_tie_loss` for readers: columns in words, methods by their names."""
    view = wtl.rename(columns=WTL_COLUMNS)
    for col in ("baseline", "method"):
        view[col] = view[col].map(method_label)
    return view


def tsd_pair_changes(mean: pd.DataFrame, pairs: Sequence[tuple[str, str]] = TSD_PAIRS,
                     tol: float = 1e-9) -> pd.DataFrame:
    """Each TSD variant against its base (``mean``: dataset x method test means): on how many datasets the
    variant is higher, equal (within ``tol``) and lower, and the mean change. A description, not a test.
    Index: ``"base → with TSD"``; pairs the grid did not run are left out."""
    rows = {}
    for base, plus in pairs:
        if base in mean and plus in mean:
            d = (mean[plus] - mean[base]).dropna()
            rows[f"{method_label(base)} → {method_label(plus)}"] = {
                "datasets": len(d), "higher": int((d > tol).sum()), "equal": int((d.abs() <= tol).sum()),
                "lower": int((d < -tol).sum()), "mean change": float(d.mean()) if len(d) else np.nan}
    table = pd.DataFrame.from_dict(rows, orient="index",
                                   columns=["datasets", "higher", "equal", "lower", "mean change"])
    table.index.name = "base → with TSD"
    return table


def pair_change_numbers(changes: pd.DataFrame, base: str = "ce", plus: str = "tsd") -> dict[str, Any]:
    """For the prose: one row of :func:`tsd_pair_changes` as plain numbers (zeros and NaN when the grid did
    not run the pair)."""
    key = f"{method_label(base)} → {method_label(plus)}"
    if key not in changes.index:
        return {"datasets": 0, "higher": 0, "equal": 0, "lower": 0, "mean_change": float("nan")}
    r = changes.loc[key]
    return {"datasets": int(r["datasets"]), "higher": int(r["higher"]), "equal": int(r["equal"]),
            "lower": int(r["lower"]), "mean_change": float(r["mean change"])}


_INFLATION_COLUMNS = {"dataset": "dataset", "method": "method", "n_settings": "settings",
                      "val_selected": "chosen on validation", "test_selected": "chosen on test",
                      "test_mean_val_selected": "test macro AUC-PR (validation-chosen)",
                      "test_mean_test_selected": "test macro AUC-PR (test-chosen)", "inflation": "inflation"}


def inflation_views(infl: pd.DataFrame, methods: Sequence[str]) -> list[pd.DataFrame]:
    """Method x dataset inflation (``selection_inflation``), methods by their names, and, where there was a
    choice, the setting each protocol picked (columns in words)."""
    pivot = infl.pivot(index="method", columns="dataset", values="inflation").reindex(list(methods))
    views = [pivot.rename(index=method_label)]
    choice = infl[infl["n_settings"] > 1]
    if len(choice):
        choice = choice[[c for c in _INFLATION_COLUMNS if c in choice]].rename(columns=_INFLATION_COLUMNS)
        views.append(choice.assign(method=choice["method"].map(method_label)).reset_index(drop=True))
    return views


def selection_numbers(infl: pd.DataFrame, profile: Any, paper: Any) -> dict[str, Any]:
    """For the prose: how many (dataset, method) pairs had more than one setting to choose from, the mean
    and largest inflation over them (0 when none had), what ``profile`` sweeps and what the ``paper``
    profile sweeps."""
    multi = infl[infl["n_settings"] > 1]
    return {"choices": len(multi), "inflation_mean": float(multi["inflation"].mean()) if len(multi) else 0.0,
            "inflation_max": float(multi["inflation"].max()) if len(multi) else 0.0,
            "teacher_seeds": len(profile.teacher_seeds), "tsd_weights": len(profile.tsd_weights),
            "paper_tsd_weights": _names(paper.tsd_weights), "paper_teacher_seeds": len(paper.teacher_seeds)}


PAIR_COLUMNS = {"accuracy": "test accuracy", "auc_pr": "test macro AUC-PR", "agreement": "agreement with the teacher",
                "saliency_spearman": "saliency Spearman with the teacher"}


def pair_views(pdf: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]:
    """The paper's own pair (``pdf``: its runs as a frame): "mean ± std" over seeds per (dataset, pair,
    method), the chosen teachers (dataset, pair, seed, test accuracy), and each TSD variant minus its base
    per dataset (means over seeds; ``None`` while a run of the pair is capped: no comparison then)."""
    pdf = pdf.assign(pair=pdf["teacher"] + " → " + pdf["student"])
    cols = list(PAIR_COLUMNS)
    g = pdf.groupby(["dataset", "pair", "method"], sort=False)[cols]
    mean, std = g.mean(), g.std()
    table = pd.DataFrame({PAIR_COLUMNS[c]: [mean_std(m, s, significant=3) for m, s in zip(mean[c], std[c],
                                                                                         strict=True)]
                          for c in cols}, index=mean.index)
    table = table.rename(index=method_label, level="method")
    table.insert(0, "seeds", g.size().to_numpy())
    teach = pdf.groupby(["dataset", "pair"])[["teacher_seed_chosen", "teacher_accuracy"]].first()
    teachers = teach.rename(columns={"teacher_seed_chosen": "teacher seed", "teacher_accuracy": "test accuracy"})
    teachers["teacher seed"] = teachers["teacher seed"].astype(int)
    if len(capped_runs(pdf)):
        return table, teachers, None
    means = pdf.groupby(["dataset", "method"])[["accuracy", "saliency_spearman"]].mean()
    rows = []
    for d in means.index.get_level_values(0).unique():
        m = means.loc[d]
        for base, plus in TSD_PAIRS:
            if base in m.index and plus in m.index:
                rows.append({"dataset": d, "comparison": f"{method_label(plus)} − {method_label(base)}",
                             "test accuracy": m.at[plus, "accuracy"] - m.at[base, "accuracy"],
                             "saliency Spearman": m.at[plus, "saliency_spearman"] - m.at[base, "saliency_spearman"]})
    return table, teachers, pd.DataFrame(rows, columns=["dataset", "comparison", "test accuracy", "saliency Spearman"])
