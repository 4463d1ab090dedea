"""The results page: each claim of the paper checked against the runs, its verdict computed from them
(and "undecided" while a capped run stands behind it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from tsd_lib.analysis.audit import verdict
from tsd_lib.analysis.budget import CONVERGED, budget_gap, nearest_budget
from tsd_lib.report import average_ranks, select, summary_table

BASE_PAIRS: tuple[tuple[str, str], ...] = (("ce", "tsd"), ("kd", "kd+tsd"), ("dkd", "dkd+tsd"))
CLAIM_COLUMNS = ("agreement", "kl_teacher_student", "saliency_spearman")


def runs_note(df: pd.DataFrame, n_capped: int) -> str:
    """How many runs the page reads and how many of them early stopping ended."""
    n = len(df)
    return (f"{n} runs: {df['dataset'].nunique()} datasets × {df['method'].nunique()} methods × "
            f"{df['seed'].nunique()} student seeds.\n\nEarly stopping ended {n - n_capped} of these {n} runs"
            + ("." if not n_capped else f"; **{n_capped} hit the epoch cap, so no verdict below is decided**."))


def rank_claim(ranks: pd.Series, n_capped: int) -> str:
    """Claim 1: a TSD variant has the best average rank (``ranks`` from ``average_ranks``, with its
    ``attrs["n_datasets"]``)."""
    tsd = [m for m in ranks.index if "tsd" in m.split("+")]
    best = ranks.idxmin()
    holds = best in tsd
    lead = "A TSD variant ranks first here: " if holds else f"The best TSD variant ranks {ranks[tsd].min():.2f}: "
    return (f"Best average rank: **{best}** ({ranks.min():.2f}). " + lead + verdict(holds, n_capped) + "."
            + f" (Ranks over {ranks.attrs['n_datasets']} datasets; with few datasets ranks are noisy.)")


def tsd_gains(summary: Any, pairs: Sequence[tuple[str, str]] = BASE_PAIRS) -> pd.DataFrame:
    """Per dataset and (base, base+TSD) pair of a :class:`Summary`: both means, the relative change and
    the call ("better"/"worse" beyond the mean of the two seed stds, else "within noise")."""
    means, std = summary.mean, summary.std
    rows = []
    for base, plus in pairs:
        if base not in means or plus not in means:
            continue
        for ds in means.index:
            a, b = means.loc[ds, base], means.loc[ds, plus]
            noise = float(np.nanmean([std.loc[ds, base], std.loc[ds, plus]]))
            call = "better" if b - a > noise else "worse" if a - b > noise else "within noise"
            rows.append({"dataset": ds, "pair": f"{base} → {plus}", "base": a, "with TSD": b,
                         "relative change %": 100 * (b - a) / a, "call": call})
    return pd.DataFrame(rows, columns=["dataset", "pair", "base", "with TSD", "relative change %", "call"])


def gains_plot(gains: pd.DataFrame) -> Figure:
    """Relative change in macro AUC-PR per dataset, a bar per pair."""
    fig, ax = plt.subplots(figsize=(7.5, 3), layout="constrained")
    sns.barplot(data=gains, x="dataset", y="relative change %", hue="pair", ax=ax)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_title("Macro AUC-PR change when TSD is added (validation-selected, mean over seeds)")
    return fig


def gains_claim(gains: pd.DataFrame, n_capped: int, published: float = 3.7) -> str:
    """Claim 2: the mean relative change is positive and more pairs are better than worse."""
    mean_gain = gains["relative change %"].mean()
    counts = gains["call"].value_counts().to_dict()
    better, same, worse = (counts.get(k, 0) for k in ("better", "within noise", "worse"))
    holds = bool(mean_gain > 0 and better > worse)
    return (f"Mean relative change over all pairs and datasets: **{mean_gain:+.1f}%** "
            f"(better: {better}, within noise: {same}, worse: {worse}). Against the paper's +{published:g}%: "
            + verdict(holds, n_capped, "**agrees** in direction", "**does not reproduce** it on this profile") + ".")


def fidelity_claims(chosen: pd.DataFrame, n_capped: int,
                    pairs: Sequence[tuple[str, str]] = BASE_PAIRS) -> tuple[pd.DataFrame, str]:
    """Claims 3 and 4: per method mean and std of agreement, teacher-student KL and saliency Spearman
    (selected runs), and per pair whether TSD lowers the KL and raises the Spearman."""
    cols = list(CLAIM_COLUMNS)
    table = chosen.groupby("method")[cols].agg(["mean", "std"])
    if n_capped:
        return table, verdict(True, n_capped)
    per = chosen.groupby("method")[cols].mean()
    lines = []
    for base, plus in pairs:
        if base in per.index and plus in per.index:
            d_kl = per.loc[plus, "kl_teacher_student"] - per.loc[base, "kl_teacher_student"]
            d_sp = per.loc[plus, "saliency_spearman"] - per.loc[base, "saliency_spearman"]
            lines.append(f"- {plus} vs {base}: teacher–student KL {'lower' if d_kl < 0 else 'not lower'} "
                         f"({d_kl:+.4f}); saliency Spearman {'higher' if d_sp > 0 else 'not higher'} ({d_sp:+.3f}).")
    return table, "\n".join(lines) if lines else "No base/TSD pairs in this profile."


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


def budget_claim(gains: Mapping[str, pd.DataFrame], budget: pd.DataFrame, target: int = 40,
                 pairs: Sequence[tuple[str, str]] = BASE_PAIRS[:2]) -> str:
    """The gains of :func:`budget_gains` at the budget nearest ``target`` and at convergence, in ``pairs`` order."""
    tight = nearest_budget(budget, target)
    acc, sp = gains["accuracy"], gains["saliency Spearman"]
    shown = [c for c in (f"{plus} − {base}" for base, plus in pairs) if c in acc.index]
    return "\n".join(f"- **{c}**: accuracy {acc.at[c, tight]:+.3f} at {tight} epochs and {acc.at[c, CONVERGED]:+.3f} "
                     f"at convergence; saliency Spearman {sp.at[c, tight]:+.3f} and {sp.at[c, CONVERGED]:+.3f}."
                     for c in shown)


def _verdict_word(holds: bool | None, n_capped: int) -> str:
    if holds is None:
        return "not tested"
    return f"undecided ({n_capped} capped)" if n_capped else "agrees" if holds else "does not reproduce"


def claim_verdicts(df: pd.DataFrame, n_capped: int, pairs: Sequence[tuple[str, str]] = BASE_PAIRS) -> pd.Series:
    """Claims 1-4 in one word each, from a frame of runs (``records_to_frame``): the same tests
    as :func:`rank_claim`, :func:`gains_claim` and :func:`fidelity_claims`; claims 3 and 4 hold
    when every (base, base+TSD) pair lowers the teacher-student KL / raises the saliency Spearman."""
    summary = summary_table(df, "auc_pr")
    ranks = average_ranks(summary.mean)
    tsd = [m for m in ranks.index if "tsd" in m.split("+")]
    gains = tsd_gains(summary, pairs)
    counts = gains["call"].value_counts()
    per = select(df, "auc_pr", by="val").groupby("method")[list(CLAIM_COLUMNS)].mean()
    present = [(b, p) for b, p in pairs if b in per.index and p in per.index]
    kl = [per.at[p, "kl_teacher_student"] < per.at[b, "kl_teacher_student"] for b, p in present]
    sp = [per.at[p, "saliency_spearman"] > per.at[b, "saliency_spearman"] for b, p in present]
    holds = {
        "1. a TSD variant has the best average rank (AUC-PR)": bool(tsd) and ranks.idxmin() in tsd,
        "2. adding TSD raises AUC-PR": None if gains.empty else bool(
            gains["relative change %"].mean() > 0 and counts.get("better", 0) > counts.get("worse", 0)),
        "3. TSD brings the student's predictions closer (KL)": all(kl) if kl else None,
        "4. TSD makes the saliency more alike (Spearman)": all(sp) if sp else None,
    }
    return pd.Series({claim: _verdict_word(h, n_capped) for claim, h in holds.items()}, name="verdict")
