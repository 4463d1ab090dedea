"""The results page: the claims engine's verdicts (:mod:`tsd_lib.analysis.verdicts`, the only code that
decides one) as tables, again on the datasets whose teacher is strong, and the numbers beside them that
decide nothing: TSD's change per dataset and the gains by epoch budget."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tsd_lib.analysis.budget import CONVERGED, budget_gap, nearest_budget
from tsd_lib.analysis.verdicts import Claim, claims, claims_frame, verdict_summary
from tsd_lib.report import order_methods, select
from tsd_lib.report.style import COLUMN_WIDTH, method_color, other_color

BASE_PAIRS: tuple[tuple[str, str], ...] = (("ce", "tsd"), ("kd", "kd+tsd"), ("dkd", "dkd+tsd"))
HEADLINE = {"auc_pr": "macro AP (average precision; headline)",
            "auc_pr_trapezoid": "macro AUC-PRC (trapezoidal, the authors')"}
#: Saliency measures of claim 4: the first reuses TSD's own perturbation (the training objective), the others
#: are independent of it.
SALIENCY = {"saliency_spearman": "saliency Spearman (TSD's perturbation: the training objective)",
            "faith_student_teacher_deletion": "deletion area, teacher's ranking (lower: more faithful)",
            "faith_student_teacher_insertion": "insertion area, teacher's ranking (higher: more faithful)",
            "grad_saliency_spearman": "integrated-gradients Spearman with the teacher"}


def _span(values: Sequence[float], fmt: str) -> str:
    """``a`` or ``a–b`` (smallest to largest of the finite ``values``), "—" when there is none."""
    finite = sorted(v for v in values if isinstance(v, (int, float)) and math.isfinite(v))
    if not finite:
        return "—"
    lo, hi = format(finite[0], fmt), format(finite[-1], fmt)
    return lo if lo == hi else f"{lo}–{hi}"


def verdict_table(found: Sequence[Claim]) -> pd.DataFrame:
    """One row per claim: the engine's :func:`~tsd_lib.analysis.verdicts.verdict_summary` and, from the rows
    that decide it (measured, ``decides``), their test, datasets, Holm-adjusted p (smallest to largest) and how
    many of the claim's deciding comparisons could be tested."""
    columns = ["claim", "verdict", "test", "datasets", "p (Holm)", "comparisons tested"]
    rows = []
    for statement, verdict in verdict_summary(found).items():
        deciding = [c for c in found if c.statement == statement and c.decides]
        measured = [c for c in deciding if c.n_datasets > 0]
        rows.append({"claim": statement, "verdict": verdict,
                     "test": "; ".join(dict.fromkeys(c.test for c in measured)) or "—",
                     "datasets": _span([c.n_datasets for c in measured], "d"),
                     "p (Holm)": _span([c.p_adjusted for c in measured], ".3g"),
                     "comparisons tested": f"{len(measured)} of {len(deciding)}"})
    return pd.DataFrame(rows, columns=columns)


def verdict_words(found: Sequence[Claim]) -> dict[str, str]:
    """Claim id ("1".."4") -> the engine's verdict on it (:func:`~tsd_lib.analysis.verdicts.verdict_summary`)."""
    ids = {c.statement: c.claim for c in found}
    return {ids[statement]: verdict for statement, verdict in verdict_summary(found).items()}


def verdict_lines(found: Sequence[Claim]) -> list[str]:
    """Markdown, one line per claim: its statement (its number escaped, so a list item stays a bullet), the
    engine's verdict in bold and, beside it, the test, datasets and Holm-adjusted p of the rows that decide it
    (:func:`verdict_table`)."""
    lines = []
    for _, r in verdict_table(found).iterrows():
        claim = re.sub(r"^(\d+)\. ", r"\1\\. ", r["claim"])
        lines.append(f"{claim}: **{r['verdict']}** ({r['test']}; {r['datasets']} datasets; Holm p {r['p (Holm)']})"
                     if r["test"] != "—" else f"{claim}: **{r['verdict']}** (no comparison measured)")
    return lines


def _estimate(value: float, lo: float, hi: float) -> str:
    if not math.isfinite(value):
        return "—"
    return f"{value:+.3g} [{lo:+.3g}, {hi:+.3g}]"


def claims_table(found: Sequence[Claim]) -> pd.DataFrame:
    """:func:`~tsd_lib.analysis.verdicts.claims_frame` for reading: claim, comparison, metric, test, datasets,
    p, Holm p, the effect with its 95% interval in one cell, verdict, whether the row decides the claim, the
    (dataset, seed) consistency and the note."""
    frame = claims_frame(found)
    frame["estimate [95% CI]"] = [_estimate(*v) for v in
                                  frame[["effect value", "95% CI low", "95% CI high"]].itertuples(index=False)]
    return frame[["claim", "comparison", "metric", "test", "datasets", "p", "p (Holm)", "effect", "estimate [95% CI]",
                  "verdict", "decides the claim", "consistency (dataset, seed)", "note"]]


def strong_teacher_claims(df: pd.DataFrame, quality: pd.DataFrame, **kwargs: Any
                          ) -> dict[str, tuple[list[str], list[Claim]]]:
    """Per (teacher, student) arm of ``df`` (``records_to_frame`` runs), keyed "teacher -> student": the
    datasets where that arm's teacher is neither weak nor beaten by its students (``quality`` from
    :func:`~tsd_lib.analysis.teacher_quality.teacher_quality`) and the engine's claims on those datasets
    alone (``[]`` when there is none)."""
    out = {}
    for (teacher, student), part in df.groupby(["teacher", "student"], sort=False):
        mine = quality[quality["teacher"] == teacher]
        flagged = mine["weak teacher"].astype(bool) | mine["students beat it"].astype(bool)
        strong = [d for d in dict.fromkeys(part["dataset"]) if d in set(mine.loc[~flagged, "dataset"])]
        kept = part[part["dataset"].isin(strong)]
        out[f"{teacher} -> {student}"] = (strong, claims(kept, **kwargs) if len(kept) else [])
    return out


def verdicts_side_by_side(named: Mapping[str, Sequence[Claim]]) -> pd.DataFrame:
    """Each claim's verdict, datasets and Holm p (:func:`verdict_table`) under each name (e.g. all datasets,
    strong teachers only), side by side; a name with no claims reads "no dataset"."""
    parts = []
    for name, found in named.items():
        table = verdict_table(found).set_index("claim")[["verdict", "datasets", "p (Holm)"]]
        parts.append(table.rename(columns=lambda c, n=name: f"{n}: {c}"))
    out = pd.concat(parts, axis=1)
    out.index.name = "claim"
    return out.fillna("no dataset")


def method_means(df: pd.DataFrame, columns: Mapping[str, str], by: str = "val") -> pd.DataFrame:
    """Per method, the mean over datasets of the seed means of each of ``columns`` ({column: label}; those
    the records hold), at the setting ``by`` selects (:func:`~tsd_lib.report.select` on macro AUC-PR), with
    the number of datasets."""
    chosen = select(df, "auc_pr", by=by)
    cols = [c for c in columns if c in chosen and chosen[c].notna().any()]
    per = chosen.groupby(["dataset", "method"])[cols].mean().groupby("method")
    out = per.mean().rename(columns=dict(columns))
    out.insert(0, "datasets", per.size())
    return out.reindex(order_methods(out.index))


def headline_table(df: pd.DataFrame, by: str = "val") -> pd.DataFrame:
    """:func:`method_means` of the headline metric (``auc_pr``, average precision) and, where the records
    have it, the authors' trapezoidal macro AUC-PRC beside it."""
    return method_means(df, HEADLINE, by)


def tsd_gains(summary: Any, pairs: Sequence[tuple[str, str]] = BASE_PAIRS) -> pd.DataFrame:
    """Per dataset and (base, base+TSD) pair of a :class:`Summary`: both means and the relative change (a
    description; the claims engine decides whether TSD raises the metric)."""
    means = summary.mean
    rows = [{"dataset": ds, "pair": f"{base} → {plus}", "base": means.loc[ds, base], "with TSD": means.loc[ds, plus],
             "relative change %": 100 * (means.loc[ds, plus] - means.loc[ds, base]) / means.loc[ds, base]}
            for base, plus in pairs if base in means and plus in means for ds in means.index]
    return pd.DataFrame(rows, columns=["dataset", "pair", "base", "with TSD", "relative change %"])


def gains_plot(gains: pd.DataFrame) -> Figure:
    """Relative change in macro AUC-PR per dataset, a bar per pair in the colour of its TSD method."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.4), layout="constrained")
    pairs = list(dict.fromkeys(gains["pair"]))
    palette = {p: method_color(str(p).split("→")[-1].strip(), other_color(i)) for i, p in enumerate(pairs)}
    sns.barplot(data=gains, x="dataset", y="relative change %", hue="pair", hue_order=pairs, palette=palette,
                saturation=1, ax=ax)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.legend(title="pair", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    ax.set_title("Macro AUC-PR change when TSD is added (validation-selected, mean over seeds)", fontsize=10)
    return fig


def budget_gains(budget: pd.DataFrame, pairs: Sequence[tuple[str, str]] = BASE_PAIRS[:2]) -> dict[str, pd.DataFrame]:
    """Comparison x budget tables (budgets in order, converged last) of the mean over datasets of
    base+TSD minus base, for "accuracy" and "saliency Spearman"."""
    budgets = sorted(b for b in set(budget["budget"]) if b != CONVERGED) + [CONVERGED]
    rows = [{"comparison": f"{plus} − {base}", "budget": b,
             "accuracy": budget_gap(budget, "accuracy", plus, base, b).mean(),
             "saliency Spearman": budget_gap(budget, "saliency_spearman", plus, base, b).mean()}
            for base, plus in pairs if {base, plus} <= set(budget["method"]) for b in budgets]
    gaps = pd.DataFrame(rows, columns=["comparison", "budget", "accuracy", "saliency Spearman"])
    return {col: gaps.pivot(index="comparison", columns="budget", values=col)[budgets]
            for col in ("accuracy", "saliency Spearman")}


def budget_numbers(gains: Mapping[str, pd.DataFrame], budget: pd.DataFrame, target: int = 40,
                   comparison: str = "tsd − ce") -> dict[str, float]:
    """For the prose: the budget nearest ``target`` and ``comparison``'s mean gains (:func:`budget_gains`) in
    accuracy and saliency Spearman there and at convergence (NaN where the comparison was not run)."""
    tight = nearest_budget(budget, target)
    out: dict[str, float] = {"epochs": int(tight)}
    for key, col in (("accuracy", "accuracy"), ("spearman", "saliency Spearman")):
        table = gains[col]
        have = comparison in table.index
        out[f"{key}_tight"] = float(table.at[comparison, tight]) if have else math.nan
        out[f"{key}_converged"] = float(table.at[comparison, CONVERGED]) if have else math.nan
    return out
