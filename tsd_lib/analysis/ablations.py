"""Ablations (chapter 8): one axis varied at a time around a base setting, read against the
seed-to-seed spread."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.experiment import RunStore
from tsd_lib.profiles import Profile
from tsd_lib.report.style import COLUMN_WIDTH, method_color

if TYPE_CHECKING:
    import matplotlib.figure

    from tsd_lib.archive import Records

METRICS: tuple[str, ...] = ("accuracy", "auc_pr", "saliency_spearman")
_KEEP = (*METRICS, "train_seconds", "epochs_run", "wall_seconds")


def ablation_runs(profile: Profile, source: RunStore | Records) -> pd.DataFrame:
    """One row per ablation run (the base runs once per axis): axis, value, base, seed, metrics."""
    rows = []
    for axis, value, config in profile.ablation_axes():
        record = source.load_record(config)
        base = config.key() == profile.ablation_base(config.seed).key()
        rows.append({"axis": axis, "value": value, "base": base, "seed": config.seed,
                     **{k: record.get(k) for k in _KEEP}})
    if not rows:
        raise ValueError(f"profile {profile.name} has no ablations")
    return pd.DataFrame(rows)


def _ordered(values: list[Any]) -> list[Any]:
    numeric = all(isinstance(v, numbers.Number) for v in values)
    return sorted(values, key=float) if numeric else sorted(values, key=str)


def ablation_stats(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per axis: mean and std over seeds of every metric per value, the seed count, which value is
    the base setting; values in their natural order."""
    stats = {}
    for axis, part in runs.groupby("axis", sort=False):
        g = part.groupby("value")
        agg = pd.DataFrame({f"{m}_{f}": getattr(g[m], f)() for m in METRICS for f in ("mean", "std")})
        agg["seeds"], agg["is_base"] = g.size(), g["base"].any()
        stats[axis] = agg.reindex(_ordered(list(agg.index)))
    return stats


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.3f}" if np.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def ablation_table(agg: pd.DataFrame, axis: str) -> pd.DataFrame:
    """One axis's ``mean ± std`` table, the base value marked."""
    index = pd.Index([f"{v} (base)" if agg.at[v, "is_base"] else str(v) for v in agg.index], name=axis)
    table = pd.DataFrame({m: [_fmt(agg.at[v, f"{m}_mean"], agg.at[v, f"{m}_std"]) for v in agg.index]
                          for m in METRICS}, index=index)
    table["seeds"] = agg["seeds"].to_numpy()
    return table


#: The panels of :func:`ablation_plot`: the two scores share the left panel, the saliency Spearman the right.
PANELS: tuple[tuple[str, ...], ...] = (("accuracy", "auc_pr"), ("saliency_spearman",))
_STYLE = {"accuracy": ("o", "-"), "auc_pr": ("s", "--"), "saliency_spearman": ("D", "-")}
_TITLES = {"accuracy": "test accuracy", "auc_pr": "macro AUC-PR", "saliency_spearman": "saliency Spearman"}


def ablation_plot(stats: dict[str, pd.DataFrame], title: str, method: str = "kd+tsd") -> matplotlib.figure.Figure:
    """A row per axis, two panels each (test accuracy and macro AUC-PR; saliency Spearman), in the colour of
    the ablated ``method``: mean with std whiskers over seeds, the base setting ringed in black."""
    import matplotlib.pyplot as plt

    color = method_color(method, "0.3")
    fig, axs = plt.subplots(len(stats), len(PANELS), figsize=(COLUMN_WIDTH, 0.9 + 2.2 * len(stats)),
                            layout="constrained", squeeze=False)
    for r, (axis, agg) in enumerate(stats.items()):
        x = np.arange(len(agg))
        numeric = all(isinstance(v, numbers.Number) for v in agg.index)
        is_base = agg["is_base"].to_numpy(bool)
        for ax, metrics in zip(axs[r], PANELS, strict=True):
            for m in metrics:
                marker, ls = _STYLE[m]
                mean, std = agg[f"{m}_mean"].to_numpy(float), agg[f"{m}_std"].fillna(0).to_numpy(float)
                ax.errorbar(x, mean, yerr=std, color=color, marker=marker, ms=5, capsize=3, lw=1,
                            ls=ls if numeric else "none", label=m.replace("_", " "))
                ax.scatter(x[is_base], mean[is_base], s=110, facecolors="none", edgecolors="k", linewidths=1.4,
                           zorder=3, label="base setting" if m == metrics[-1] else None)
            ax.set_xticks(x, [str(v) for v in agg.index], fontsize=9)
            ax.set_xlabel(axis, fontsize=9)
            if r == 0:
                ax.set_title(" and ".join(_TITLES[m] for m in metrics), fontsize=10)
    handles = [h for ax in axs[0] for h in ax.get_legend_handles_labels()[0]]
    labels = [lab for ax in axs[0] for lab in ax.get_legend_handles_labels()[1]]
    keep = dict(zip(labels, handles, strict=True))  # "base setting" once
    fig.legend(keep.values(), keep.keys(), loc="outside lower center", ncols=len(keep), fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def sensitivity(agg: pd.DataFrame, metric: str = "auc_pr") -> dict[str, Any]:
    """Whether an axis matters: the spread of the per-value means of ``metric`` against the mean
    seed std (``None`` with one seed), and the best value."""
    means = agg[f"{metric}_mean"]
    spread = float(means.max() - means.min())
    noise = float(np.nanmean(agg[f"{metric}_std"])) if (agg["seeds"] > 1).any() else None
    base = agg.index[agg["is_base"].to_numpy(bool)][0]
    best = base if means[base] >= means.max() - 1e-12 else means.idxmax()  # a tie goes to the base setting
    return {"best": best, "base": base, "spread": spread, "noise": noise,
            "sensitive": None if noise is None else spread > noise}


def ablation_findings(stats: dict[str, pd.DataFrame], metric: str = "auc_pr") -> list[str]:
    """One markdown line per axis: the best value and whether the axis moves ``metric`` beyond seed noise."""
    lines = []
    for axis, agg in stats.items():
        if len(agg) < 2:
            continue
        s = sensitivity(agg, metric)
        if s["noise"] is None:
            how = "no seed-noise estimate with one seed"
        elif s["sensitive"]:
            how = (f"the spread across values ({s['spread']:.3f}) exceeds the mean seed std "
                   f"({s['noise']:.3f}): sensitive here")
        else:
            how = f"the spread across values ({s['spread']:.3f}) is within the mean seed std ({s['noise']:.3f})"
        where = " (the base setting)" if s["best"] == s["base"] else f" (base: {s['base']})"
        lines.append(f"- **{axis}**: best mean test {metric.replace('_', '-')} at {s['best']}{where}; {how}.")
    return lines


def bank_vs_fresh(stats: dict[str, pd.DataFrame], runs: pd.DataFrame, banked: int) -> tuple[pd.DataFrame | None, str]:
    """The teacher bank (size ``banked``) against fresh sampling (bank size 0), per metric, with a
    verdict against seed noise and the cost per epoch; ``(None, message)`` without that axis."""
    if "tsd_bank_size" not in stats or 0 not in stats["tsd_bank_size"].index:
        return None, "This profile has no bank-size ablation."
    agg = stats["tsd_bank_size"]
    rows = []
    for m in METRICS:
        mb, sb = agg.at[banked, f"{m}_mean"], agg.at[banked, f"{m}_std"]
        mf, sf = agg.at[0, f"{m}_mean"], agg.at[0, f"{m}_std"]
        noise = np.nan if np.isnan(sb) and np.isnan(sf) else float(np.nanmax([sb, sf]))
        verdict = ("cannot be judged with one seed" if np.isnan(noise) else
                   "within seed noise" if abs(mb - mf) <= noise else "larger than seed noise")
        rows.append({"metric": m, f"bank ({banked})": mb, "fresh (0)": mf, "difference": mb - mf,
                     "largest seed std": noise, "verdict": verdict})
    table = pd.DataFrame(rows).set_index("metric")
    part = runs[runs["axis"] == "tsd_bank_size"]
    per_epoch = (part["train_seconds"] / part["epochs_run"]).groupby(part["value"]).mean()
    wall = part.groupby("value")["wall_seconds"].mean()
    verdicts = table["verdict"]
    if (verdicts == "cannot be judged with one seed").any():
        head = "With a single seed the differences cannot be compared with seed noise."
    elif (verdicts == "within seed noise").all():
        head = "On all three metrics the banked and the fresh-sampling runs differ by no more than seed noise."
    else:
        head = ("At least one metric differs by more than the seed-to-seed spread: "
                + ", ".join(i for i, v in verdicts.items() if v == "larger than seed noise") + ".")
    return table, (f"{head} Mean training time per epoch: {per_epoch.get(banked, np.nan):.2f} s with the bank vs "
                   f"{per_epoch.get(0, np.nan):.2f} s with fresh sampling; whole run (bank precomputation, training, "
                   f"evaluation): {wall.get(banked, np.nan):.0f} s vs {wall.get(0, np.nan):.0f} s. Timings depend on "
                   "the machine and its load.")
