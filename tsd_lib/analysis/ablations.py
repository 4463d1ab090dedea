"""Ablations (chapter 8): one axis varied at a time around a base setting, read against the
seed-to-seed spread; tables for readers and plain numbers for the chapter's prose (myst-nb ``glue``)."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.seed_tables import mean_std, method_label
from tsd_lib.experiment import RunStore
from tsd_lib.profiles import Profile
from tsd_lib.report.style import COLUMN_WIDTH, method_color

if TYPE_CHECKING:
    import matplotlib.figure

    from tsd_lib.runs.archive import Records

METRICS: tuple[str, ...] = ("accuracy", "auc_pr", "saliency_spearman")
_KEEP = (*METRICS, "train_seconds", "epochs_run", "wall_seconds")

#: The metrics' column headers in words.
METRIC_LABELS = {"accuracy": "test accuracy", "auc_pr": "test macro AUC-PR",
                 "saliency_spearman": "saliency Spearman with the teacher"}

#: Every ablation axis a profile may vary, in words (with its symbol).
AXIS_LABELS = {"window": "window length L", "n_windows": "windows per series K", "tau": "temperature τ",
               "tsd_weight": "TSD weight w_tsd", "tsd_baseline": "replacement values",
               "tsd_bank_size": "teacher bank size (0: fresh sampling)"}


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


def _value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def ablation_table(agg: pd.DataFrame, axis: str) -> pd.DataFrame:
    """One axis's table for readers: its values (the base marked) as the index, named by the axis in words,
    each metric's "mean ± std" over seeds to 3 significant digits, and the number of seeds."""
    index = pd.Index([f"{_value(v)} (base)" if agg.at[v, "is_base"] else _value(v) for v in agg.index],
                     name=AXIS_LABELS.get(axis, axis))
    table = pd.DataFrame({METRIC_LABELS[m]: [mean_std(agg.at[v, f"{m}_mean"], agg.at[v, f"{m}_std"], significant=3)
                                             for v in agg.index] for m in METRICS}, index=index)
    table["seeds"] = agg["seeds"].to_numpy()
    return table


def ablation_setting(profile: Profile) -> tuple[dict[str, Any], pd.DataFrame]:
    """The ablations' setting for the prose (dataset, method, seeds, the base setting's L, K, tau, TSD weight,
    replacement values and bank size, the number of runs and axes) and a table of the axes: per axis in words,
    its base value and the values tried."""
    dataset, seeds, method, spec = profile.ablation_spec()
    base = profile.ablation_base(seeds[0])
    own = {axis: base.terms.get("tsd") if axis == "tsd_weight" else getattr(base, axis) for axis in spec}
    numbers = {"dataset": dataset, "method": method_label(method), "seeds": ", ".join(map(str, seeds)),
               "n_seeds": len(seeds), "L": int(base.window), "K": int(base.n_windows), "tau": float(base.tau),
               "w_tsd": float(base.terms.get("tsd", np.nan)), "baseline": str(base.tsd_baseline),
               "bank_size": int(base.tsd_bank_size), "runs": len(profile.ablation_configs()), "axes": len(spec)}
    table = pd.DataFrame({"base value": [_value(own[a]) for a in spec],
                          "values tried": [", ".join(_value(v) for v in values) for values in spec.values()]},
                         index=pd.Index([AXIS_LABELS.get(a, a) for a in spec], name="axis"))
    return numbers, table


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


def sensitivity_table(stats: dict[str, pd.DataFrame], metric: str = "auc_pr") -> pd.DataFrame:
    """Per axis (in words) with at least two values: the best value of the mean test ``metric`` (a tie goes
    to the base), the base value, the spread of the per-value means, the mean seed std and whether the spread
    exceeds it ("one seed" when there is no spread to compare with)."""
    rows = {}
    for axis, agg in stats.items():
        if len(agg) < 2:
            continue
        s = sensitivity(agg, metric)
        rows[AXIS_LABELS.get(axis, axis)] = {
            "best value": _value(s["best"]), "base value": _value(s["base"]), "spread of the means": s["spread"],
            "mean seed std": np.nan if s["noise"] is None else s["noise"],
            "spread beyond the seed std": "one seed" if s["noise"] is None else ("yes" if s["sensitive"] else "no")}
    table = pd.DataFrame.from_dict(rows, orient="index", columns=["best value", "base value", "spread of the means",
                                                                  "mean seed std", "spread beyond the seed std"])
    table.index.name = "axis"
    return table


def sensitivity_numbers(stats: dict[str, pd.DataFrame], metric: str = "auc_pr") -> dict[str, Any]:
    """For the prose, per known axis (:data:`AXIS_LABELS`; NaN and ``"not varied"`` for one the profile does not
    vary): the spread of the per-value means of ``metric``, the mean seed std and the best value, and in words
    whether the spread exceeds the seed std (``{axis}_beyond``: ``"exceeds"``, ``"stays within"``, or
    ``"cannot be compared with"`` for one seed or an axis not varied) and so whether the best value counts as a
    finding (``{axis}_finding``: ``"counts"`` or ``"does not count"``); and the axes whose spread exceeds the
    seed std, in words (``"none"``; ``"none (one seed: no spread to compare with)"``)."""
    out: dict[str, Any] = {}
    sensitive, one_seed = [], False
    for axis in AXIS_LABELS:
        agg = stats.get(axis)
        if agg is None or len(agg) < 2:
            out |= {f"{axis}_spread": float("nan"), f"{axis}_noise": float("nan"), f"{axis}_best": "not varied",
                    f"{axis}_beyond": "cannot be compared with", f"{axis}_finding": "does not count"}
            continue
        s = sensitivity(agg, metric)
        out |= {f"{axis}_spread": s["spread"], f"{axis}_noise": float("nan") if s["noise"] is None else s["noise"],
                f"{axis}_best": _value(s["best"]),
                f"{axis}_beyond": {None: "cannot be compared with", True: "exceeds", False: "stays within"}[
                    s["sensitive"]],
                f"{axis}_finding": "counts" if s["sensitive"] else "does not count"}
        one_seed |= s["noise"] is None
        if s["sensitive"]:
            sensitive.append(AXIS_LABELS[axis])
    out["sensitive_axes"] = ", ".join(sensitive) or ("none (one seed: no spread to compare with)" if one_seed
                                                     else "none")
    return out


def paired_changes(runs: pd.DataFrame, axis: str, value: Any, metric: str = "auc_pr") -> dict[str, Any]:
    """Each seed's run at ``value`` of ``axis`` against the base run of the same seed (``runs`` from
    :func:`ablation_runs`), for the prose: the changes of ``metric`` in seed order, signed, as text
    (``changes``), the seed with the largest change in size and that change (``largest_seed``, ``largest``),
    the largest change in size among the other seeds (``rest``, NaN with one seed), and the seed whose base run
    scored lowest with that score (``low_seed``, ``low_base``) beside the other base runs' scores as text
    (``other_bases``, ``"–"`` with one seed)."""
    part = runs[runs["axis"] == axis]
    base = part[part["base"]].set_index("seed")[metric].sort_index()
    at = part[~part["base"] & (part["value"] == value)].set_index("seed")[metric].reindex(base.index)
    if at.isna().all():
        raise ValueError(f"no ablation run at {axis} = {value!r}")
    change = (at - base).dropna()
    largest = int(change.abs().idxmax())
    rest = change.drop(largest).abs()
    low = int(base.idxmin())
    return {"changes": ", ".join(f"{c:+.3f}".replace("-", "−") for c in change),
            "largest_seed": largest, "largest": float(change[largest]),
            "rest": float(rest.max()) if len(rest) else float("nan"),
            "low_seed": low, "low_base": float(base[low]),
            "other_bases": ", ".join(f"{b:.3f}" for b in base.drop(low)) or "–"}


def bank_vs_fresh(stats: dict[str, pd.DataFrame], runs: pd.DataFrame,
                 banked: int) -> tuple[pd.DataFrame | None, pd.DataFrame | None, str]:
    """The teacher bank (size ``banked``) against fresh sampling (bank size 0): per metric (in words) both
    means, their difference, the larger seed std and whether the difference exceeds it; the cost (training
    seconds per epoch, whole run); and, for the prose, the metrics whose difference exceeds the seed std
    (``"none"``; a phrase when it cannot be judged). ``(None, None, phrase)`` without that axis."""
    if "tsd_bank_size" not in stats or 0 not in stats["tsd_bank_size"].index:
        return None, None, "not measured (this profile does not vary the bank size)"
    agg = stats["tsd_bank_size"]
    rows = {}
    for m in METRICS:
        mb, sb = agg.at[banked, f"{m}_mean"], agg.at[banked, f"{m}_std"]
        mf, sf = agg.at[0, f"{m}_mean"], agg.at[0, f"{m}_std"]
        noise = np.nan if np.isnan(sb) and np.isnan(sf) else float(np.nanmax([sb, sf]))
        rows[METRIC_LABELS[m]] = {f"bank of {banked}": mb, "fresh sampling": mf, "difference (bank − fresh)": mb - mf,
                                  "larger seed std": noise, "difference beyond the seed std":
                                      "one seed" if np.isnan(noise) else ("yes" if abs(mb - mf) > noise else "no")}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "metric"
    part = runs[runs["axis"] == "tsd_bank_size"]
    per_epoch = (part["train_seconds"] / part["epochs_run"]).groupby(part["value"]).mean()
    wall = part.groupby("value")["wall_seconds"].mean()
    cost = pd.DataFrame({"training time per epoch (s)": [per_epoch.get(banked, np.nan), per_epoch.get(0, np.nan)],
                         "whole run (s)": [wall.get(banked, np.nan), wall.get(0, np.nan)]},
                        index=pd.Index([f"bank of {banked}", "fresh sampling"], name="teacher side"))
    beyond = table["difference beyond the seed std"]
    if (beyond == "one seed").any():
        phrase = "cannot be judged with one seed"
    else:
        phrase = ", ".join(i for i, v in beyond.items() if v == "yes") or "none"
    return table, cost, phrase
