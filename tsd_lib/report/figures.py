"""Every figure: results figures for the report and the chapters, and the chapters' teaching figures.

Results figures (baseline vs TSD, fidelity, selection; the critical-difference diagrams are in
:mod:`tsd_lib.report.cd_diagram`) are bare
``Figure`` objects, outside pyplot, so :func:`tsd_lib.report.write_report` can save many
without keeping them alive; a notebook shows one with ``display(fig)``. Teaching figures
(saliency over series, learning curves, reliability, perturbations, metric bars) are
pyplot-managed, so a chapter's ``plt.show()`` shows them; functions that take ``ax`` draw on it.
Each function returns the figure (or axes) it drew. Colours and markers of methods come from
:mod:`tsd_lib.report.style` (one per method, the same in every figure); figures are at most
:data:`~tsd_lib.report.style.COLUMN_WIDTH` inches wide with no more than two panels per row, and
text of at least :data:`~tsd_lib.report.style.MIN_FONT_SIZE` points. A chapter numbers and captions
a figure with :func:`glue_figure` and a ``{glue:figure}`` block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from tsd_lib.metrics import reliability_curve
from tsd_lib.report.records import higher_is_better, metric_label, order_methods
from tsd_lib.report.selection import select, selection_inflation
from tsd_lib.report.style import (
    COLUMN_WIDTH,
    NEUTRAL,
    legible,
    method_color,
    method_colors,
    method_marker,
    other_color,
)

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (("kd", "kd+tsd"), ("dkd", "dkd+tsd"), ("ce", "tsd"))


def _figure(figsize: tuple[float, float], *, pyplot: bool = False) -> Figure:
    """A constrained-layout figure: pyplot-managed (``plt.show()`` shows it) or bare (for files)."""
    make = plt.figure if pyplot else Figure
    return make(figsize=figsize, layout="constrained")


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7, 2.6)) -> Axes:
    return ax if ax is not None else _figure(figsize, pyplot=True).add_subplot()


def _grid(fig: Figure, n: int, **kw: Any) -> list[Axes]:
    """``n`` panels, at most two per row (the column's width); a spare cell of the last row is removed."""
    ncols = min(2, n)
    axes = list(fig.subplots(int(np.ceil(n / ncols)), ncols, squeeze=False, **kw).ravel())
    for ax in axes[n:]:
        ax.remove()
    return axes[:n]


def _panel_width(n: int, single: float = 4.6) -> float:
    """The figure width for ``n`` panels at most two per row: the column's, or ``single`` for one panel."""
    return COLUMN_WIDTH if n > 1 else single


def glue_figure(name: str, fig: Figure) -> None:
    """Store ``fig`` in the executing notebook under ``name`` for a ``{glue:figure}`` block (myst-nb numbers
    and captions it there) without showing it here: a pyplot figure is closed, and nothing is returned (a
    cell's last expression would show it again)."""
    from myst_nb import glue

    glue(name, legible(fig), display=False)
    plt.close(fig)


def _titled(fig: Figure, title: str | None) -> Figure:
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def _placeholder(message: str, title: str = "", size: tuple[float, float] = (6.0, 2.0)) -> Figure:
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=10, transform=ax.transAxes)
    legible(fig)
    if title:
        ax.set_title(title)
    return fig


def _save(fig: Figure, path: str | Path | None) -> Figure:
    legible(fig)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=150, bbox_inches="tight")  # a bare Figure renders with the Agg canvas
    return fig


def _close(fig: Figure) -> None:
    plt.close(fig)  # no-op for figures pyplot does not manage


# ----------------------------------------------------------------------------- results figures


def baseline_vs_tsd_scatter(
    mean_frame: pd.DataFrame, pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS, path: str | Path | None = None, *,
    metric: str = "auc_pr", tol: float = 1e-9, label_points: int = 5,
) -> Figure:
    """One panel per (baseline, TSD variant) pair, two per row: datasets as points, diagonal y = x.

    Points are in the TSD variant's colour: a triangle up where adding TSD helps (above the diagonal for
    higher-is-better metrics), down where it hurts, a circle for a tie. Pairs whose methods are absent are
    skipped; the ``label_points`` datasets farthest from the diagonal are named, each label set off on the
    side away from the diagonal and skipped where it would sit on a label already drawn.
    """
    avail = [(b, t) for b, t in pairs
             if b in mean_frame and t in mean_frame and mean_frame[[b, t]].notna().all(axis=1).any()]
    if not avail:
        return _save(_placeholder(f"No (baseline, TSD) pair with results among {list(pairs)}."), path)
    side = COLUMN_WIDTH / 2 if len(avail) > 1 else 4.4
    fig = _figure((_panel_width(len(avail), 4.4), side * int(np.ceil(len(avail) / 2)) + 0.2))
    higher = higher_is_better(metric)
    for ax, (base, tsd) in zip(_grid(fig, len(avail)), avail, strict=True):
        pair = mean_frame[[base, tsd]].dropna()
        x, y = pair[base].to_numpy(float), pair[tsd].to_numpy(float)
        d = (y - x) if higher else (x - y)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        pad = max((hi - lo) * 0.12, 0.01)
        lo, hi = lo - pad, hi + pad
        ax.plot([lo, hi], [lo, hi], color=NEUTRAL, lw=1, ls="--", zorder=1)
        color = method_color(tsd, NEUTRAL)
        for mask, marker, word in ((d > tol, "^", "better"), (np.abs(d) <= tol, "o", "tie"), (d < -tol, "v", "worse")):
            if mask.any():
                ax.scatter(x[mask], y[mask], marker=marker, s=40, color=color, edgecolor="k", linewidth=0.4,
                           zorder=2, label=f"{tsd} {word}")
        _label_farthest(ax, list(pair.index), x, y, np.abs(y - x), label_points, (hi - lo) * 0.06)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"{base} (test {metric_label(metric)})")
        ax.set_ylabel(f"{tsd} (test {metric_label(metric)})")
        w, t, l = int((d > tol).sum()), int((np.abs(d) <= tol).sum()), int((d < -tol).sum())
        ax.set_title(f"{tsd} vs {base}: W/T/L {w}/{t}/{l}", fontsize=10)
    from matplotlib.lines import Line2D

    shapes = [Line2D([], [], ls="", marker=mk, color="0.5", markeredgecolor="k", label=word)
              for mk, word in (("^", "better with TSD"), ("o", "tie"), ("v", "worse with TSD"))]
    fig.legend(handles=shapes, loc="outside lower center", ncols=3, fontsize=9)
    return _save(fig, path)


def _label_farthest(ax: Axes, names: list[Any], x: np.ndarray, y: np.ndarray, gap: np.ndarray, n: int,
                    min_dist: float) -> None:
    """Name the ``n`` points with the largest ``gap``, each label set off away from the diagonal; a point
    closer than ``min_dist`` to one already named stays unnamed (no overprinting)."""
    named: list[tuple[float, float]] = []
    for k in np.argsort(-gap, kind="stable")[:n]:
        if any(np.hypot(x[k] - a, y[k] - b) < min_dist for a, b in named):
            continue
        above = y[k] >= x[k]
        ax.annotate(str(names[k]), (x[k], y[k]), fontsize=9, textcoords="offset points",
                    xytext=(-5, 5) if above else (5, -5), ha="right" if above else "left",
                    va="bottom" if above else "top", color="0.15")
        named.append((x[k], y[k]))


def fidelity_plot(
    df: pd.DataFrame | Iterable[Mapping[str, Any]], path: str | Path | None = None, *, select_metric: str = "auc_pr",
    metrics: Sequence[str] = ("agreement", "kl_teacher_student", "saliency_spearman"),
) -> Figure:
    """Box + strip plots per method of teacher-student fidelity (validation-selected runs), one metric per
    row, each method in its colour."""
    import seaborn as sns

    sel = select(df, select_metric, "val")
    methods = order_methods(sel["method"].unique())
    palette = dict(zip(methods, method_colors(methods), strict=True))
    fig = _figure((COLUMN_WIDTH, 0.4 + 2.3 * len(metrics)))
    axes = fig.subplots(len(metrics), 1, squeeze=False)[:, 0]
    for ax, col in zip(axes, metrics, strict=True):
        arrow = "↓" if not higher_is_better(col) else "↑"
        ax.set_title(f"{metric_label(col)} {arrow}", fontsize=10, loc="left")
        data = sel[["method", col]].dropna() if col in sel else pd.DataFrame()
        if data.empty:
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{col}: not recorded", ha="center", va="center", transform=ax.transAxes)
            continue
        data = data.assign(method=data["method"].astype(str))
        sns.boxplot(data=data, x="method", y=col, order=methods, hue="method", hue_order=methods, palette=palette,
                    ax=ax, fill=False, showfliers=False, linewidth=1.1, legend=False)
        sns.stripplot(data=data, x="method", y=col, order=methods, hue="method", hue_order=methods,
                      palette=palette, ax=ax, size=3, alpha=0.7, jitter=0.2, legend=False)
        ax.set_xlabel("")
        ax.set_ylabel("")  # the title names the metric
        ax.tick_params(axis="x", labelrotation=30, labelsize=9)
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
    fig = _figure((min(COLUMN_WIDTH, max(4.0, 0.6 * len(methods) + 2)), 3.6))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    for i, m in enumerate(methods):
        v = infl.loc[infl["method"] == m, "inflation"].to_numpy(float)
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(v)), v, s=18, color=method_color(m, NEUTRAL),
                   marker=method_marker(m), edgecolor="k", linewidth=0.3, label=m)
        ax.plot([i - 0.3, i + 0.3], [np.nanmean(v)] * 2, color="k", lw=2)
    ax.axhline(0, color="0.5", lw=1, ls="--")
    ax.set_xticks(range(len(methods)), methods, rotation=30, fontsize=9)
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
            ax.legend(loc="best", fontsize=9)
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
    title: str | None = None, cmap: str = "inferno", colorbar: bool = True,
) -> Figure:
    """One series coloured by each saliency map in ``maps`` (one row per method, each map on its own range).

    ``colorbar`` adds one colour bar for all rows, from each map's minimum to its maximum (the last axes).
    """
    fig = _figure((COLUMN_WIDTH - 0.3, 0.4 + 1.7 * len(maps)), pyplot=True)
    axes = fig.subplots(len(maps), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, m) in zip(axes, maps.items(), strict=True):
        saliency_line(series, m, ax=ax, truth=truth, cmap=cmap, colorbar=False)
        ax.set_title(name, fontsize=10, loc="left")
        ax.set_xlabel("")
    axes[-1].set_xlabel("time step")
    if colorbar:
        bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap), ax=list(axes), pad=0.01, shrink=0.9,
                           aspect=12 + 8 * len(maps), ticks=[0, 1])
        bar.ax.set_yticklabels(["low", "high"])
        bar.set_label("saliency (each row: its min to max)")
    return _titled(fig, title)


def learning_curves(histories: Mapping[str, Mapping[str, Any]], *, keys: Sequence[str] = ("train_loss", "val_loss"),
                    title: str | None = None) -> Figure:
    """Loss (and validation accuracy when present) per epoch, one line per run.

    ``histories`` maps a label to a stored history (``History.to_dict()``).
    """
    has_acc = any("val_accuracy" in row for h in histories.values() for row in h["epochs"])
    fig = _figure((COLUMN_WIDTH if has_acc else 5.5, 3.6), pyplot=True)
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    for i, (label, h) in enumerate(histories.items()):
        color = method_color(label, other_color(i))
        epochs = [row["epoch"] for row in h["epochs"]]
        for key, style in zip(keys, ("-", "--"), strict=False):
            axes[0].plot(epochs, [row.get(key, np.nan) for row in h["epochs"]], style, color=color,
                         label=f"{label} ({key.replace('_', ' ')})")
        if h.get("best_epoch"):
            axes[0].axvline(h["best_epoch"], color=color, lw=0.8, alpha=0.5)
        if has_acc:
            axes[1].plot(epochs, [row.get("val_accuracy", np.nan) for row in h["epochs"]], color=color, label=label)
    axes[0].set(xlabel="epoch", ylabel="loss")
    if has_acc:
        axes[1].set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(2, len(labels)), fontsize=9)
    return _titled(fig, title)


def reliability_diagram(y: np.ndarray, probas: Mapping[str, np.ndarray], *, n_bins: int = 10,
                        ax: Axes | None = None) -> Axes:
    """Accuracy against confidence per bin for each model; the diagonal is perfect calibration."""
    ax = _axes(ax, (6.4, 4.2))
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", label="perfectly calibrated")
    for i, (name, proba) in enumerate(probas.items()):
        curve = reliability_curve(y, proba, n_bins=n_bins)
        ok = np.asarray(curve.counts) > 0
        ax.plot(np.asarray(curve.confidence)[ok], np.asarray(curve.accuracy)[ok], "-",
                marker=method_marker(name), color=method_color(name, other_color(i)), label=name)
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1.02), ylim=(0, 1.02))
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)  # outside the data
    return ax


def perturbation_examples(series: np.ndarray, perturbed: np.ndarray, starts: Sequence[int], window: int, *,
                          n: int = 3, title: str | None = None) -> Figure:
    """The original series and a few window-perturbed copies, windows shaded."""
    n = min(n, len(perturbed))
    fig = _figure((COLUMN_WIDTH - 0.3, 0.4 + 1.6 * n), pyplot=True)
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    x = np.asarray(series)[0] if np.asarray(series).ndim == 2 else np.asarray(series)
    for ax, copy, start in zip(axes, perturbed[:n], starts[:n], strict=False):
        c = np.asarray(copy)[0] if np.asarray(copy).ndim == 2 else np.asarray(copy)
        ax.plot(x, color="0.5", lw=1, label="original")
        ax.plot(c, color="tab:red", lw=1.2, label="perturbed")
        ax.axvspan(int(start), int(start) + window, color="tab:red", alpha=0.12)
        ax.set_ylabel(f"t={int(start)}")
    axes[0].legend(fontsize=9, loc="best")
    axes[-1].set_xlabel("time step")
    return _titled(fig, title)


def metric_bars(frame: Any, metrics: Sequence[str], *, title: str | None = None,
                colors: Sequence[str] | None = None) -> Figure:
    """Mean ± std bars per method for several metrics, two panels per row (``frame``: one row per run, a
    ``method`` column); ``colors``, one per method in :func:`order_methods` order, default to each method's
    colour (:func:`~tsd_lib.report.style.method_color`)."""
    methods = order_methods(frame["method"])
    rows = int(np.ceil(len(metrics) / 2))
    fig = _figure((_panel_width(len(metrics), 4.2), 0.5 + 2.9 * rows), pyplot=True)
    for ax, metric in zip(_grid(fig, len(metrics)), metrics, strict=True):
        grouped = frame.groupby("method")[metric]
        means, stds = grouped.mean().reindex(methods), grouped.std().reindex(methods).fillna(0.0)
        ax.bar(range(len(methods)), means, yerr=stds, capsize=3,
               color=list(colors) if colors else method_colors(methods))
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(metric_label(metric), fontsize=10)
    return _titled(fig, title)
