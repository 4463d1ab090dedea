"""Every figure: results figures for the report and the chapters, and the chapters' teaching figures.

Results figures (critical difference, baseline vs TSD, fidelity, selection) are bare
``Figure`` objects, outside pyplot, so :func:`tsd_lib.report.write_report` can save many
without keeping them alive; a notebook shows one with ``display(fig)``. Teaching figures
(saliency over series, learning curves, reliability, perturbations, metric bars) are
pyplot-managed, so a chapter's ``plt.show()`` shows them; functions that take ``ax`` draw on it.
Each function returns the figure (or axes) it drew.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from tsd_lib.metrics import reliability_curve
from tsd_lib.report.records import higher_is_better, metric_label, order_methods
from tsd_lib.report.selection import select, selection_inflation
from tsd_lib.report.tables import _complete

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("kd", "kd+tsd"), ("dkd", "dkd+tsd"), ("ce", "tsd"))


def _figure(figsize: tuple[float, float], *, pyplot: bool = False) -> Figure:
    """A constrained-layout figure: pyplot-managed (``plt.show()`` shows it) or bare (for files)."""
    make = plt.figure if pyplot else Figure
    return make(figsize=figsize, layout="constrained")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7, 2.6)) -> Axes:
    return ax if ax is not None else _figure(figsize, pyplot=True).add_subplot()


def _titled(fig: Figure, title: str | None) -> Figure:
    if title:
        fig.suptitle(title)
    return fig


def _placeholder(message: str, title: str = "", size: tuple[float, float] = (6.0, 2.0)) -> Figure:
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, transform=ax.transAxes)
    if title:
        ax.set_title(title)
    return fig


def _save(fig: Figure, path: str | Path | None) -> Figure:
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")  # a bare Figure renders with the Agg canvas
    return fig


def _close(fig: Figure) -> None:
    plt.close(fig)  # no-op for figures pyplot does not manage


# ----------------------------------------------------------------------------- results figures


def critical_difference(
    mean_frame: pd.DataFrame, path: str | Path | None = None, *, higher_is_better: bool = True,
    alpha: float = 0.1, title: str | None = None,
) -> Figure:
    """aeon's critical-difference diagram (Wilcoxon + Holm cliques) of a dataset x method frame.

    Uses datasets where every method ran. With fewer than 2 datasets or 2 methods (or when aeon
    fails) a placeholder figure saying why is drawn instead; never raises for small inputs.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = _complete(mean_frame)
    n_data, n_methods = full.shape
    if n_data < 2 or n_methods < 2:
        why = (f"Critical-difference diagram needs >= 2 datasets and >= 2 methods with complete results;\n"
               f"have {n_data} dataset(s) x {n_methods} method(s).")
        return _save(_placeholder(why, title or ""), path)
    try:
        from aeon.visualisation import plot_critical_difference

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fig, ax = plot_critical_difference(
                full.to_numpy(dtype=float), [str(c) for c in full.columns], lower_better=not higher_is_better,
                alpha=alpha, width=7, textspace=1.6,
            )
        _close(fig)
    except Exception as exc:  # noqa: BLE001 - a report must not die on a plotting corner case
        return _save(_placeholder(f"Critical-difference diagram failed: {exc}", title or ""), path)
    ax.set_title(title or f"Average ranks over {n_data} datasets (alpha={alpha}, Wilcoxon-Holm cliques)",
                 fontsize=9, pad=4)
    return _save(fig, path)


def baseline_vs_tsd_scatter(
    mean_frame: pd.DataFrame, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, path: str | Path | None = None, *,
    metric: str = "auc_pr", tol: float = 1e-9, label_points: int = 15,
) -> Figure:
    """One panel per (baseline, TSD variant) pair: datasets as points, diagonal y = x.

    Points above the diagonal are datasets where adding TSD helps (for higher-is-better
    metrics). Pairs whose methods are absent are skipped; dataset names are shown when there
    are at most ``label_points`` datasets.
    """
    avail = [(b, t) for b, t in pairs
             if b in mean_frame and t in mean_frame and mean_frame[[b, t]].notna().all(axis=1).any()]
    if not avail:
        return _save(_placeholder(f"No (baseline, TSD) pair with results among {list(pairs)}."), path)
    fig = _figure((4.2 * len(avail), 4.2))
    axes = fig.subplots(1, len(avail), squeeze=False)[0]
    higher = higher_is_better(metric)
    for ax, (base, tsd) in zip(axes, avail, strict=True):
        pair = mean_frame[[base, tsd]].dropna()
        x, y = pair[base].to_numpy(float), pair[tsd].to_numpy(float)
        d = (y - x) if higher else (x - y)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = max((hi - lo) * 0.08, 0.01)
        lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=1, ls="--", zorder=1)
        colors = np.where(d > tol, "tab:blue", np.where(d < -tol, "tab:red", "0.4"))
        ax.scatter(x, y, c=colors, s=28, edgecolor="k", linewidth=0.4, zorder=2)
        if len(pair) <= label_points:
            for name, xi, yi in zip(pair.index, x, y, strict=True):
                ax.annotate(str(name), (xi, yi), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{base} (test {metric_label(metric)})")
        ax.set_ylabel(f"{tsd} (test {metric_label(metric)})")
        w, t, l = int((d > tol).sum()), int((np.abs(d) <= tol).sum()), int((d < -tol).sum())
        side = "above" if higher else "below"
        ax.set_title(f"{tsd} vs {base}: W/T/L {w}/{t}/{l}\n({side} the diagonal: {tsd} better)", fontsize=9)
    return _save(fig, path)


def fidelity_plot(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], path: str | Path | None = None, *, select_metric: str = "auc_pr",
    metrics: Sequence[str] = ("agreement", "kl_teacher_student", "saliency_spearman"),
) -> Figure:
    """Box + strip plots per method of teacher-student fidelity (validation-selected runs)."""
    import seaborn as sns

    sel = select(df, select_metric, "val")
    methods = order_methods(sel["method"].unique())
    fig = _figure((max(4.0, 0.65 * len(methods) + 1.5) * len(metrics) / 1.6, 3.8))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, col in zip(axes, metrics, strict=True):
        arrow = "↓" if not higher_is_better(col) else "↑"
        ax.set_title(f"{metric_label(col)} {arrow}", fontsize=10)
        data = sel[["method", col]].dropna() if col in sel else pd.DataFrame()
        if data.empty:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{col}: not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        data = data.assign(method=data["method"].astype(str))
        sns.boxplot(data=data, x="method", y=col, order=methods, ax=ax, color="#cfe0f3", showfliers=False,
                    linewidth=0.8)
        sns.stripplot(data=data, x="method", y=col, order=methods, ax=ax, color="k", size=2.5, alpha=0.6,
                      jitter=0.2)
        ax.set_xlabel("")
        ax.set_ylabel(col)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.suptitle("Teacher-student fidelity on the test split (validation-selected settings)", fontsize=10)
    return _save(fig, path)


def selection_plot(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], metric: str = "auc_pr", path: str | Path | None = None,
) -> Figure:
    """Per method, the per-dataset gain test-set selection would add over validation selection."""
    infl = selection_inflation(df, metric)
    infl = infl[infl["n_settings"] > 1]
    if infl.empty:
        msg = "Every (dataset, method) has a single setting: validation and test selection coincide."
        return _save(_placeholder(msg, "Selection inflation"), path)
    methods = order_methods(infl["method"].unique())
    fig = _figure((max(4.0, 0.8 * len(methods) + 2), 3.6))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, m in enumerate(methods):
        v = infl.loc[infl["method"] == m, "inflation"].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=14, color="tab:orange", edgecolor="k", linewidth=0.3)
        ax.plot([i - 0.3, i + 0.3], [np.nanmean(v)] * 2, color="k", lw=2)
    ax.axhline(0, color="0.5", lw=1, ls="--")
    ax.set_xticks(range(len(methods)), methods, rotation=45, fontsize=8)
    ax.set_ylabel(f"test {metric_label(metric)}:\ntest-selected − val-selected")
    ax.set_title("How much selecting on the test set would inflate results (bar = mean)", fontsize=10)
    return _save(fig, path)


# ----------------------------------------------------------------------------- teaching figures


def saliency_line(
    series: np.ndarray, saliency: np.ndarray, *, ax: Axes | None = None, cmap: str = "inferno",
    truth: np.ndarray | None = None, title: str | None = None, colorbar: bool = True, linewidth: float = 2.5,
) -> Axes:
    """A series drawn as a line coloured by saliency (one channel; the first if several).

    ``truth`` (a 0/1 mask over time) shades the planted window of synthetic series.
    """
    ax = _axes(ax)
    y = np.asarray(series, dtype=float)
    y = y[0] if y.ndim == 2 else y
    s = np.asarray(saliency, dtype=float).reshape(-1)
    t = np.arange(len(y))
    segments = np.stack([np.column_stack([t[:-1], y[:-1]]), np.column_stack([t[1:], y[1:]])], axis=1)
    lo, hi = float(np.min(s)), float(np.max(s))
    lines = LineCollection(segments, cmap=cmap, norm=plt.Normalize(lo, hi if hi > lo else lo + 1e-12),
                           linewidth=linewidth)
    lines.set_array((s[:-1] + s[1:]) / 2)
    ax.add_collection(lines)
    ax.plot(t, y, color="0.8", lw=0.6, zorder=0)
    if truth is not None:
        inside = np.flatnonzero(np.asarray(truth).reshape(-1) > 0)
        if len(inside):
            ax.axvspan(inside[0], inside[-1] + 1, color="tab:green", alpha=0.15, label="planted window")
            ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, len(y) - 1)
    pad = 0.05 * (np.ptp(y) or 1.0)
    ax.set_ylim(y.min() - pad, y.max() + pad)
    ax.set_xlabel("time step")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(lines, ax=ax, label="saliency", pad=0.01)
    return ax


def compare_saliency(
    series: np.ndarray, maps: Mapping[str, np.ndarray], *, truth: np.ndarray | None = None,
    title: str | None = None, cmap: str = "inferno",
) -> Figure:
    """One series coloured by each saliency map in ``maps`` (one row per method)."""
    fig = _figure((7.5, 1.9 * len(maps)), pyplot=True)
    axes = fig.subplots(len(maps), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, m) in zip(axes, maps.items(), strict=True):
        saliency_line(series, m, ax=ax, truth=truth, cmap=cmap, colorbar=False)
        ax.set_title(name, fontsize=10, loc="left")
        ax.set_xlabel("")
    axes[-1].set_xlabel("time step")
    return _titled(fig, title)


def learning_curves(histories: Mapping[str, Mapping[str, Any]], *, keys: Sequence[str] = ("train_loss", "val_loss"),
                    title: str | None = None) -> Figure:
    """Loss (and validation accuracy when present) per epoch, one line per run.

    ``histories`` maps a label to a stored history (``History.to_dict()``).
    """
    has_acc = any("val_accuracy" in row for h in histories.values() for row in h["epochs"])
    fig = _figure((10 if has_acc else 6, 3.2), pyplot=True)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    for i, (label, h) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in h["epochs"]]
        for key, style in zip(keys, ("-", "--"), strict=False):
            axes[0].plot(epochs, [row.get(key, np.nan) for row in h["epochs"]], style, color=f"C{i}",
                         label=f"{label} ({key.replace('_', ' ')})")
        if h.get("best_epoch"):
            axes[0].axvline(h["best_epoch"], color=f"C{i}", lw=0.8, alpha=0.5)
        if has_acc:
            axes[1].plot(epochs, [row.get("val_accuracy", np.nan) for row in h["epochs"]], color=f"C{i}", label=label)
    axes[0].set(xlabel="epoch", ylabel="loss")
    axes[0].legend(fontsize=8)
    if has_acc:
        axes[1].set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02))
        axes[1].legend(fontsize=8)
    return _titled(fig, title)


def reliability_diagram(y: np.ndarray, probas: Mapping[str, np.ndarray], *, n_bins: int = 10,
                        ax: Axes | None = None) -> Axes:
    """Accuracy against confidence per bin for each model; the diagonal is perfect calibration."""
    ax = _axes(ax, (4.5, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", label="perfectly calibrated")
    for i, (name, proba) in enumerate(probas.items()):
        curve = reliability_curve(y, proba, n_bins=n_bins)
        ok = np.asarray(curve.counts) > 0
        ax.plot(np.asarray(curve.confidence)[ok], np.asarray(curve.accuracy)[ok], "o-", color=f"C{i}", label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(fontsize=8)
    return ax


def perturbation_examples(series: np.ndarray, perturbed: np.ndarray, starts: Sequence[int], window: int, *,
                          n: int = 3, title: str | None = None) -> Figure:
    """The original series and a few window-perturbed copies, windows shaded."""
    n = min(n, len(perturbed))
    fig = _figure((7, 1.7 * n), pyplot=True)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    x = np.asarray(series)[0] if np.asarray(series).ndim == 2 else np.asarray(series)
    for ax, copy, start in zip(axes, perturbed[:n], starts[:n], strict=False):
        c = np.asarray(copy)[0] if np.asarray(copy).ndim == 2 else np.asarray(copy)
        ax.plot(x, color="0.5", lw=1, label="original")
        ax.plot(c, color="tab:red", lw=1.2, label="perturbed")
        ax.axvspan(int(start), int(start) + window, color="tab:red", alpha=0.12)
        ax.set_ylabel(f"t={int(start)}")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("time step")
    return _titled(fig, title)


def metric_bars(frame: Any, metrics: Sequence[str], *, title: str | None = None,
                colors: Sequence[str] | None = None) -> Figure:
    """Mean ± std bars per method for several metrics (``frame``: one row per run, a ``method`` column);
    ``colors``, one per method in :func:`order_methods` order, default to the colour cycle."""
    fig = _figure((3.4 * len(metrics), 3.2), pyplot=True)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    methods = order_methods(frame["method"])
    for ax, metric in zip(axes, metrics, strict=True):
        grouped = frame.groupby("method")[metric]
        means, stds = grouped.mean().reindex(methods), grouped.std().reindex(methods).fillna(0.0)
        ax.bar(range(len(methods)), means, yerr=stds, capsize=3,
               color=list(colors) if colors else [f"C{i}" for i in range(len(methods))])
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(metric_label(metric))
    return _titled(fig, title)
