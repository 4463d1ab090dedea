"""Chapter 6: the main grid's description, the convergence and budget notes, ranks, test-set selection,
the paper's own pair and the chapter's "What we saw" (its verdicts are the claims engine's)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from tsd_lib.analysis.audit import capped_runs
from tsd_lib.analysis.budget import budget_gap, nearest_budget
from tsd_lib.analysis.claims import verdict_lines
from tsd_lib.analysis.verdicts import Claim
from tsd_lib.report import average_ranks

TSD_PAIRS: tuple[tuple[str, str], ...] = (("kd", "kd+tsd"), ("dkd", "dkd+tsd"), ("ce", "tsd"))


def _names(values: Iterable[Any]) -> str:
    return ", ".join(map(str, values))


def grid_values(profile: Any) -> str:
    """The baselines' tuning grids of a profile ("kd tau {1, 2}; at weight {1, 10}"), or "none"."""
    grids = getattr(profile, "grids", None) or {}
    return "; ".join(f"{m} {axis} {{{', '.join(f'{v:g}' for v in values)}}}"
                     for m, axes in grids.items() for axis, values in axes.items()) or "none"


def grid_note(profile: Any, df: pd.DataFrame, configs: Sequence[Any], methods: Sequence[str]) -> str:
    """What the main grid holds: runs, datasets, methods, seeds, TSD weights, the baselines' grids and the
    shared run settings."""
    c = configs[0]
    tuned = len(profile.tsd_weights) > 1 or bool(getattr(profile, "grids", None))
    weights = " x each method's settings (TSD weights, baseline grids)" if tuned else ""
    return (
        f"Profile `{profile.name}`: **{len(df)} runs** = {df['dataset'].nunique()} datasets x {len(methods)} methods "
        f"x {len(profile.seeds)} student seeds{weights}.\n\n"
        f"- datasets: {', '.join(sorted(df['dataset'].unique(), key=str.lower))}\n"
        f"- methods: {', '.join(methods)}\n"
        f"- student seeds: {_names(profile.seeds)}; teacher seed(s): {_names(profile.teacher_seeds)} "
        f"(several: the one with the best validation score is used); "
        f"TSD weights swept: {', '.join(f'{w:g}' for w in profile.tsd_weights)}; baseline grids (chosen on "
        f"validation like the TSD weight): {grid_values(profile)}\n"
        f"- teacher `{c.teacher}` (up to {getattr(c, 'teacher_epochs', None) or c.epochs} epochs), "
        f"student `{c.student}` (up to {c.epochs} epochs), patience {c.patience}; "
        f"TSD: K = {c.n_windows}, L = {c.window}, tau = {c.tau:g}")


def teacher_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, teacher seed): the teacher's test accuracy and macro AUC-PR."""
    return (df.groupby(["dataset", "teacher_seed"])[["teacher_accuracy", "teacher_auc_pr"]].first()
            .rename(columns={"teacher_accuracy": "teacher accuracy", "teacher_auc_pr": "teacher macro AUC-PR"}))


def audit_note(records: Sequence[Mapping[str, Any]] | pd.DataFrame, audit: pd.DataFrame, shown: int = 8) -> str:
    """How many runs early stopping ended, the latest best epoch, and the capped runs by name."""
    n = len(records)
    capped = capped_runs(records)
    text = (f"Early stopping ended **{n - len(capped)} of {n}** runs; the best epoch was at most "
            f"{int(audit['best_epoch_max'].max())} and the longest run took {int(audit['epochs_run_max'].max())} of "
            f"{int(audit['epoch_cap'].max())} allowed epochs.")
    if capped.empty:
        return text
    names = ", ".join(f"{r.dataset}/{r.method}/seed {r.seed}" for r in capped.head(shown).itertuples())
    more = f" and {len(capped) - shown} more" if len(capped) > shown else ""
    return text + (f" **{len(capped)} runs hit the cap** ({names}{more}): they had not converged, and the numbers "
                   "and verdicts below include them.")


def budget_note(budget: pd.DataFrame, methods: Iterable[str], target: int = 40) -> str:
    """TSD minus CE and KD+TSD minus KD at the budget nearest ``target`` and at convergence."""
    methods, tight = set(methods), nearest_budget(budget, target)
    lines = []
    for plus, base, long in (("tsd", "ce", True), ("kd+tsd", "kd", False)):
        if not {plus, base} <= methods:
            continue
        for metric, name in (("accuracy", "test accuracy"), ("saliency_spearman", "saliency Spearman")):
            early = budget_gap(budget, metric, plus, base, tight)
            conv = budget_gap(budget, metric, plus, base, "converged")
            if long:
                lines.append(f"- **{name}**, TSD minus CE, mean over {len(conv)} datasets: {early.mean():+.3f} at a "
                             f"{tight}-epoch budget, {conv.mean():+.3f} at convergence (per dataset at convergence: "
                             + ", ".join(f"{d} {v:+.3f}" for d, v in conv.items()) + ").")
            else:
                lines.append(f"- **{name}**, KD+TSD minus KD: {early.mean():+.3f} at {tight} epochs, "
                             f"{conv.mean():+.3f} at convergence.")
    return "\n".join(lines) if lines else "The profile has no CE/TSD pair to compare."


def rank_table(auc: Any, acc: Any) -> tuple[pd.DataFrame, int]:
    """Average ranks in macro AUC-PR and accuracy (two :class:`Summary` tables), best first, and the
    number of datasets they are taken over."""
    ranks = pd.DataFrame({"average rank (macro AUC-PR)": average_ranks(auc.mean),
                          "average rank (accuracy)": average_ranks(acc.mean)})
    return ranks.sort_values("average rank (macro AUC-PR)"), average_ranks(auc.mean).attrs["n_datasets"]


def inflation_views(infl: pd.DataFrame, methods: Sequence[str]) -> list[pd.DataFrame]:
    """Method x dataset inflation (``selection_inflation``) and, where there was a choice, the setting
    each protocol picked."""
    views = [infl.pivot(index="method", columns="dataset", values="inflation").reindex(list(methods)).round(4)]
    choice = infl[infl["n_settings"] > 1]
    return views + ([choice.round(4)] if len(choice) else [])


def selection_note(infl: pd.DataFrame, profile: Any, paper: Any) -> str:
    """What selecting on the test set would have added per method, or why nothing was selected (``profile``
    and the ``paper`` profile say what each sweeps)."""
    multi = infl[infl["n_settings"] > 1]
    if len(multi):
        stats = multi.groupby("method")["inflation"].agg(["mean", "max"])
        return (f"{len(multi)} (dataset, method) pair(s) had more than one setting to choose from. Mean inflation "
                "of test macro AUC-PR from selecting on the test set: " + "; ".join(
                    f"{m}: {r['mean']:.4f} (max {r['max']:.4f})" for m, r in stats.iterrows()) + ".")
    return (f"Profile `{profile.name}` has {len(profile.teacher_seeds)} teacher seed(s) and {len(profile.tsd_weights)} "
            "TSD weight(s), so every (dataset, method) has a single setting: nothing is selected and both protocols "
            "give the same numbers. The `paper` profile sweeps the TSD weight over "
            f"{{{', '.join(f'{w:g}' for w in paper.tsd_weights)}}} and {len(paper.teacher_seeds)} teacher seeds, "
            "where the gap can appear.")


PAIR_COLUMNS = ("accuracy", "auc_pr", "agreement", "saliency_spearman")


def pair_views(pdf: pd.DataFrame) -> tuple[pd.DataFrame, str, str]:
    """The paper's own pair (``pdf``: its runs as a frame): mean and std per (dataset, pair, method), the
    chosen teachers, and TSD against its base method (no comparison while a run is capped)."""
    pdf = pdf.assign(pair=pdf["teacher"] + " → " + pdf["student"])
    cols = list(PAIR_COLUMNS)
    table = pdf.groupby(["dataset", "pair", "method"], sort=False)[cols].agg(["mean", "std"]).round(3)
    teach = pdf.groupby(["dataset", "pair"])[["teacher_seed_chosen", "teacher_accuracy"]].first()
    teachers = "Teachers: " + "; ".join(f"{d} ({p}): seed {int(r.teacher_seed_chosen)}, test accuracy "
                                        f"{r.teacher_accuracy:.3f}" for (d, p), r in teach.iterrows()) + "."
    capped = capped_runs(pdf)
    if len(capped):
        return table, teachers, f"- No comparison: {len(capped)} runs of the pair hit the epoch cap."
    means = pdf.groupby(["dataset", "method"])[cols].mean()
    lines = []
    for d in means.index.get_level_values(0).unique():
        m = means.loc[d]
        for base, plus in (("ce", "tsd"), ("kd", "kd+tsd")):
            if base in m.index and plus in m.index:
                acc, sp = (m.at[plus, c] - m.at[base, c] for c in ("accuracy", "saliency_spearman"))
                lines.append(f"- {d}: {plus} vs {base}: accuracy {acc:+.3f}, saliency Spearman {sp:+.3f}.")
    return table, teachers, "\n".join(lines)


def experiments_summary(auc: Any, infl: pd.DataFrame, found: Sequence[Claim], *, n_seeds: int, profile: str,
                        n_capped: int) -> str:
    """Chapter 6's "What we saw": the claims engine's verdict on each claim for the main grid (``found``:
    :func:`~tsd_lib.analysis.verdicts.claims` of its runs) with its test and p, then descriptions that decide
    nothing: average ranks, each TSD variant against its base per dataset, and test-set selection."""
    lines = ["- The claims engine's verdicts on this grid (datasets are the unit; each claim's comparisons "
             "Holm-adjusted; the results page lists every comparison with its effect and interval):",
             *[f"  - {line}" for line in verdict_lines(found)]]
    r = average_ranks(auc.mean)
    n_ranked = r.attrs["n_datasets"]
    lines.append(f"- Average ranks in test macro AUC-PR over {n_ranked} dataset(s), a description (claim 1's verdict "
                 "above is the test): " + " < ".join(f"{m} ({v:.2f})" for m, v in r.items()) + ".")
    for base, tsd in TSD_PAIRS:
        if base in auc.mean and tsd in auc.mean:
            d = (auc.mean[tsd] - auc.mean[base]).dropna()
            up, same, down = int((d > 1e-9).sum()), int((d.abs() <= 1e-9).sum()), int((d < -1e-9).sum())
            lines.append(f"- {tsd} against {base}: higher on {up}, equal on {same}, lower on {down} of {len(d)} "
                         f"datasets; mean change in test macro AUC-PR {d.mean():+.4f} (a description, not a test).")
    multi = infl[infl["n_settings"] > 1]
    if len(multi) and infl["inflation"].max() > 0:
        lines.append(f"- Selection: picking settings on the test set would have raised test macro AUC-PR by up to "
                     f"{infl['inflation'].max():.4f} (mean {multi['inflation'].mean():.4f} over the {len(multi)} "
                     "(dataset, method) pairs with a choice); the numbers above do not include that gain.")
    else:
        lines.append("- Selection: no inflation in this profile (nothing to select, or validation and test picked "
                     "the same setting).")
    if n_capped:
        lines.append(f"- {n_capped} runs of the main grid hit the epoch cap (see the audit): the numbers and verdicts "
                     "above include runs that had not converged.")
    lines.append(f"- Profile `{profile}`: {n_ranked} dataset(s), {n_seeds} student seed(s). Seeds say how consistent "
                 "a difference is within these datasets, not whether it holds on others.")
    return "\n".join(lines)
