"""The results page: the claims engine's verdicts (:mod:`tsd_lib.analysis.verdicts`, the only code that
decides one) as tables, again on the datasets whose teacher is strong, and the numbers beside them that
decide nothing: average ranks and means over datasets, the per-dataset tables (the page folds them),
validation ties, TSD's change per dataset and the gains by epoch budget."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tsd_lib.analysis.budget import CONVERGED, budget_gap, nearest_budget
from tsd_lib.analysis.seed_tables import mean_std, method_label
from tsd_lib.analysis.teacher_quality import flagged
from tsd_lib.analysis.verdicts import Claim, claims, claims_frame, verdict_summary
from tsd_lib.report import average_ranks, order_methods, select, summary_table
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


#: The columns of :func:`comparisons_table`: what a reader needs to weigh each comparison.
COMPARISON_COLUMNS = ["claim", "comparison", "metric", "effect [95% CI]", "datasets", "p (Holm)", "verdict",
                      "decides"]


def _short_effect(effect: str, comparison: str) -> str:
    """The effect's name without a difference the comparison already states: ``"median change (tsd − ce)"``
    beside ``"tsd vs ce"`` reads ``"median change"``."""
    match = re.fullmatch(r"(.*) \((\S+) − (\S+)\)", str(effect))
    if match and str(comparison) == f"{match.group(2)} vs {match.group(3)}":
        return match.group(1)
    return str(effect)


def comparisons_table(found: Sequence[Claim]) -> pd.DataFrame:
    """:func:`claims_table` in short, to read first: per comparison that some dataset could measure, the
    effect with its 95% interval in one cell ("median change: +0.05 [+0.01, +0.2]"; the difference the
    comparison names is not repeated), the datasets,
    the Holm-adjusted p, the verdict and whether the row decides its claim. The test, raw p, consistency,
    note and the comparisons no dataset measured stay in :func:`claims_table`."""
    full = claims_table(found)
    full = full[full["datasets"] > 0]
    effect = [f"{_short_effect(e, c)}: {v}" for e, c, v in zip(full["effect"], full["comparison"],
                                                                full["estimate [95% CI]"], strict=True)]
    return full.assign(**{"effect [95% CI]": effect, "decides": full["decides the claim"]})[COMPARISON_COLUMNS]


def every_comparison(found_by_arm: Mapping[str, Sequence[Claim]]) -> pd.DataFrame:
    """:func:`claims_table` of every arm in one frame, the arm first ("a → b"): every column the engine
    reports, for a folded table."""
    parts = [claims_table(rows).assign(arm=str(arm).replace(" -> ", " → ")) for arm, rows in found_by_arm.items()]
    if not parts:
        return pd.DataFrame(columns=["arm", *claims_table([]).columns])
    table = pd.concat(parts, ignore_index=True)
    return table[["arm", *[c for c in table.columns if c != "arm"]]]


def strong_teacher_claims(df: pd.DataFrame, quality: pd.DataFrame, **kwargs: Any
                          ) -> dict[str, tuple[list[str], list[Claim]]]:
    """Per (teacher, student) arm of ``df`` (``records_to_frame`` runs), keyed "teacher -> student": the
    datasets where that arm's teacher is neither weak, near chance nor beaten by its students (``quality`` from
    :func:`~tsd_lib.analysis.teacher_quality.teacher_quality`) and the engine's claims on those datasets
    alone (``[]`` when there is none)."""
    out = {}
    for (teacher, student), part in df.groupby(["teacher", "student"], sort=False):
        mine = quality[quality["teacher"] == teacher]
        strong = [d for d in dict.fromkeys(part["dataset"]) if d in set(mine.loc[~flagged(mine), "dataset"])]
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
    the number of datasets. A mean is NaN unless every record of the method holds the column (older
    records lack the trapezoidal AUC-PRC: a mean over the newer ones alone would compare other datasets)."""
    chosen = select(df, "auc_pr", by=by)
    cols = [c for c in columns if c in chosen and chosen[c].notna().any()]
    seeds = chosen.groupby(["dataset", "method"])[cols]
    means = seeds.mean().where(seeds.count().eq(seeds.size(), axis=0))  # a mean of every record, or none
    per = means.groupby("method")
    out = per.mean().where(per.count().eq(per.size(), axis=0)).rename(columns=dict(columns))
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


def _pair_label(pair: str) -> str:
    """``"kd → kd+tsd"`` as the methods' names, ``"KD → KD+TSD"``."""
    return " → ".join(method_label(m.strip()) for m in str(pair).split("→"))


def gains_plot(gains: pd.DataFrame) -> Figure:
    """Relative change in macro AUC-PR per dataset (:func:`tsd_gains`): one row of horizontal bars per
    dataset (the figure grows with the datasets, so 20 stay readable), a bar per pair in the colour of its
    TSD method, the pairs by the methods' names. No title: the chapter's caption says what it shows."""
    gains = gains.assign(pair=gains["pair"].map(_pair_label))
    pairs = list(dict.fromkeys(gains["pair"]))
    datasets = list(dict.fromkeys(gains["dataset"]))
    height = 1.2 + 0.16 * max(1, len(pairs)) * max(1, len(datasets))
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, max(2.6, height)), layout="constrained")
    palette = {p: method_color(str(p).split("→")[-1].strip(), other_color(i)) for i, p in enumerate(pairs)}
    sns.barplot(data=gains, y="dataset", x="relative change %", hue="pair", hue_order=pairs, order=datasets,
                palette=palette, saturation=1, orient="h", ax=ax)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel("relative change in test macro AUC-PR when TSD is added (%)")
    ax.set_ylabel("")
    if pairs:
        ax.legend(title="base → with TSD", fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
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


#: The columns of :func:`ranks_and_means` beside the headline's (:data:`HEADLINE`).
RANK_COLUMN = "average rank in macro AP (1 = best)"


def _labeller(labels: Mapping[str, str] | None):
    labels = dict(labels or {})
    return lambda m: labels.get(m) or method_label(m)


def ranks_and_means(df: pd.DataFrame, by: str = "val", labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One table per arm for readers: each method's average rank in macro AP (1 = best) over the datasets
    where every method has runs (:func:`~tsd_lib.report.average_ranks`, at the setting ``by`` selects),
    then :func:`headline_table` (datasets and the mean over them of the headline and, where recorded, the
    trapezoidal AUC-PRC). Best rank first, the methods by their names (``labels`` overrides some, e.g.
    ``{"dt2w": "DT2W (old adapter)"}``), index ``method``. ``attrs["n_ranked"]``: the datasets ranked over."""
    ranks = average_ranks(summary_table(df, "auc_pr", by=by).mean)
    table = headline_table(df, by)
    table.insert(0, RANK_COLUMN, ranks.reindex(table.index))
    table = table.sort_values(RANK_COLUMN, kind="mergesort", na_position="last").rename(index=_labeller(labels))
    table.index.name = "method"
    table.attrs["n_ranked"] = int(ranks.attrs.get("n_datasets", 0))
    return table


def per_dataset_table(frames: pd.DataFrame | Mapping[str, pd.DataFrame], metric: str = "auc_pr", by: str = "val",
                      labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Dataset x method test ``metric`` at the setting ``by`` selects, each cell "mean ± std" over the student
    seeds to 3 significant digits ("–": not run), the methods by their names (``labels`` overrides some),
    index ``dataset``. ``frames`` is one frame of runs or ``{arm: frame}``: then the columns are (arm,
    method), an arm "a -> b" written "a → b", one row per dataset of any arm."""
    if isinstance(frames, pd.DataFrame):
        summary = summary_table(frames, metric, by=by)
        table = pd.DataFrame({m: [mean_std(summary.mean.at[d, m], summary.std.at[d, m], significant=3)
                                  for d in summary.mean.index] for m in summary.mean.columns},
                             index=summary.mean.index)
        table.index.name = "dataset"
        return table.rename(columns=_labeller(labels))
    parts = {str(arm).replace(" -> ", " → "): per_dataset_table(part, metric, by, labels)
             for arm, part in frames.items()}
    if not parts:
        return pd.DataFrame(index=pd.Index([], name="dataset"),
                            columns=pd.MultiIndex.from_tuples([], names=["arm", "method"]))
    table = pd.concat(parts, axis=1, names=["arm", "method"])
    table = table.reindex(sorted(table.index, key=lambda d: str(d).lower())).fillna("–")
    table.index.name = "dataset"
    return table


#: :func:`~tsd_lib.report.validation_ties`'s columns in words (macro AP: the metric chosen on).
TIES_COLUMNS = {"arm": "arm", "dataset": "dataset", "method": "method", "settings": "settings tried",
                "tied at best validation": "settings tied at the best validation score",
                "selected": "setting chosen", "test of selected": "test macro AP, chosen setting",
                "test, worst setting": "test macro AP, worst setting",
                "test, best setting": "test macro AP, best setting"}


def ties_view(ties: pd.DataFrame, labels: Mapping[str, str] | None = None) -> pd.DataFrame:
    """:func:`~tsd_lib.report.validation_ties` (an ``arm`` column optional, then shown first) for readers:
    the columns in words, the methods by their names, the arms with an arrow."""
    view = ties[[c for c in TIES_COLUMNS if c in ties]].copy()
    if "method" in view:
        view["method"] = view["method"].map(_labeller(labels))
    if "arm" in view:
        view["arm"] = view["arm"].astype(str).str.replace(" -> ", " → ", regex=False)
    return view.rename(columns=TIES_COLUMNS).reset_index(drop=True)


def ties_numbers(ties: pd.DataFrame) -> dict[str, int]:
    """For the prose: how many (dataset, method) groups were ``tuned`` over several settings and in how many
    more than one setting ``tied`` at the best validation score."""
    tied = int((ties["tied at best validation"] > 1).sum()) if len(ties) else 0
    return {"tuned": len(ties), "tied": tied}


class ScrollBox:
    """A table for a folded section (:func:`scroll_box`): its caption, then the table in a box that scrolls
    sideways (the caption stays above the box, where a reader sees it however wide the table is)."""

    def __init__(self, styler: Any) -> None:
        self.caption = styler.caption if isinstance(styler.caption, str) else None
        self.styler = styler

    def _repr_html_(self) -> str:
        caption, self.styler.caption = self.styler.caption, None
        try:
            table = self.styler.to_html()
        finally:
            self.styler.caption = caption
        head = (f'<p style="text-align: center; opacity: 0.75; margin: 0.4em 0;">{html.escape(self.caption)}</p>'
                if self.caption else "")
        return f'{head}<div style="overflow-x: auto; max-width: 100%;">{table}</div>'

    def __repr__(self) -> str:
        return repr(self.styler.data)


def scroll_box(styler: Any, nowrap: bool = True) -> ScrollBox:
    """A reader's table (:func:`~tsd_lib.analysis.seed_tables.readers_table`) for a folded section, in a box that
    scrolls sideways, since a dropdown cuts off what is wider than the column; with ``nowrap`` its cells
    stay on one line ("0.912 ± 0.015" does not break; leave it off for columns of long text), a little apart.
    Glue it; myst-nb shows its HTML."""
    if nowrap:
        styler = styler.set_table_styles([{"selector": "td, tbody th",
                                           "props": [("white-space", "nowrap"), ("padding-right", "0.8em")]}],
                                         overwrite=False)
    return ScrollBox(styler)
