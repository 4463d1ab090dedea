"""What the epoch budget does: each run's metrics at every budget, from one training run.

A run capped at E epochs follows the trajectory of a longer run up to epoch E, so a run
trained to convergence with ``budgets`` evaluates its best-on-validation weights so far at
each budget (``record["budgets"]``): one run per method and seed gives every point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.report.style import COLUMN_WIDTH, method_color, method_marker, other_color

CONVERGED = "converged"
_METRICS = ("accuracy", "auc_pr", "saliency_spearman", "agreement")
_LABELS = {"accuracy": "test accuracy", "auc_pr": "test macro AUC-PR", "saliency_spearman": "saliency Spearman",
           "agreement": "agreement with teacher"}


def budget_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Long frame: one row per (run, budget) with ``budget`` (an int, or ``"converged"`` for
    the final model), ``epochs`` (the budget, or the epochs the run took) and the metrics."""
    rows = []
    for r in records:
        if not r.get("budgets"):
            continue
        base = {k: r[k] for k in ("dataset", "method", "seed", "student", "teacher") if k in r}
        for budget, m in sorted(r["budgets"].items(), key=lambda kv: int(kv[0])):
            rows.append({**base, "budget": int(budget), "epochs": min(int(budget), r["epochs_run"]),
                         **{k: m.get(k, np.nan) for k in _METRICS}})
        rows.append({**base, "budget": CONVERGED, "epochs": r["epochs_run"], **{k: r.get(k, np.nan) for k in _METRICS}})
    if not rows:
        raise ValueError("no record has budget evaluations (run the profile with `budgets`)")
    return pd.DataFrame(rows)


def _order(budgets: Iterable[Any]) -> list[Any]:
    ints = sorted(b for b in set(budgets) if b != CONVERGED)
    return ints + ([CONVERGED] if CONVERGED in set(budgets) else [])


def budget_table(frame: pd.DataFrame, metric: str = "accuracy", decimals: int = 3) -> pd.DataFrame:
    """``(dataset, method)`` x budget: "mean ± std" of ``metric`` over seeds."""
    g = frame.groupby(["dataset", "method", "budget"], sort=False)[metric]
    mean, std = g.mean().unstack("budget"), g.std().unstack("budget")
    cols = _order(mean.columns)
    text = pd.DataFrame(
        [[f"{mean.at[i, c]:.{decimals}f} ± {std.at[i, c]:.{decimals}f}" if not np.isnan(std.at[i, c])
          else f"{mean.at[i, c]:.{decimals}f}" for c in cols] for i in mean.index],
        index=mean.index, columns=[f"{c} epochs" if c != CONVERGED else CONVERGED for c in cols])
    return text


def budget_plot(frame: pd.DataFrame, metrics: Sequence[str] = ("accuracy", "saliency_spearman"),
                methods: Sequence[str] | None = None, title: str | None = None) -> Figure:
    """Metrics (columns, at most two) against the epoch budget, one row of panels per dataset, a line per
    method in its colour: mean over seeds with a ±1 std band; the last point is the converged model. One
    legend below the panels."""
    datasets = list(dict.fromkeys(frame["dataset"]))
    methods = list(methods or dict.fromkeys(frame["method"]))
    if len(metrics) > 2:
        raise ValueError(f"at most two metrics side by side, got {list(metrics)}")
    budgets = _order(frame["budget"])
    x = np.arange(len(budgets))
    fig, axes = plt.subplots(len(datasets), len(metrics), figsize=(COLUMN_WIDTH, 0.9 + 2.3 * len(datasets)),
                             squeeze=False, sharex=True, layout="constrained")
    for i, ds in enumerate(datasets):
        sub = frame[frame["dataset"] == ds]
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for k, method in enumerate(methods):
                g = sub[sub["method"] == method].groupby("budget")[metric]
                if g.ngroups == 0:
                    continue
                color = method_color(method, other_color(k))
                mean, std = g.mean().reindex(budgets), g.std().reindex(budgets).fillna(0.0)
                ax.plot(x, mean, marker=method_marker(method), ms=4, color=color, label=method)
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15, lw=0)
            ax.set_xticks(x, [str(b) if b != CONVERGED else "conv." for b in budgets])
            ax.set_title(f"{ds}: {_LABELS.get(metric, metric)}", fontsize=10, loc="left")
            if i == len(datasets) - 1:
                ax.set_xlabel("epoch budget")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(1, len(labels)), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def budget_gap(frame: pd.DataFrame, metric: str, method: str, base: str, budget: Any) -> pd.Series:
    """Per dataset: mean ``metric`` of ``method`` minus that of ``base`` at one ``budget``
    (an epoch count or ``"converged"``), means over seeds."""
    g = frame[frame["budget"] == budget].groupby(["dataset", "method"])[metric].mean().unstack()
    if method not in g or base not in g:
        raise ValueError(f"no {method!r} or {base!r} runs at budget {budget!r}")
    return (g[method] - g[base]).dropna()


def nearest_budget(frame: pd.DataFrame, target: int = 40) -> int:
    """The evaluated epoch budget closest to ``target`` (the "tight budget" the chapters quote)."""
    budgets = [b for b in set(frame["budget"]) if b != CONVERGED]
    if not budgets:
        raise ValueError("no epoch budget in the frame")
    return min(budgets, key=lambda b: (abs(b - target), b))
