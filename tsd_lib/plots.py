"""Figures the chapters draw: saliency over series, learning curves, reliability diagrams.

Every function draws on a given matplotlib ``Axes`` (or makes a figure) and returns it, so
notebooks stay thin and figures look the same across chapters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

from tsd_lib.metrics import reliability_curve


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7, 2.6)) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=figsize, layout="constrained")[1]


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


def saliency_band(saliency: np.ndarray, *, ax: Axes | None = None, cmap: str = "inferno",
                  label: str | None = None) -> Axes:
    """A saliency map as a one-row heat band (useful to stack several methods)."""
    ax = _axes(ax, (7, 0.6))
    ax.imshow(np.asarray(saliency, dtype=float).reshape(1, -1), aspect="auto", cmap=cmap, interpolation="nearest")
    ax.set_yticks([])
    if label:
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    return ax


def compare_saliency(
    series: np.ndarray, maps: Mapping[str, np.ndarray], *, truth: np.ndarray | None = None,
    title: str | None = None, cmap: str = "inferno",
) -> Figure:
    """One series coloured by each saliency map in ``maps`` (one row per method)."""
    fig, axes = plt.subplots(len(maps), 1, figsize=(7.5, 1.9 * len(maps)), sharex=True, layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, (name, m) in zip(axes, maps.items(), strict=True):
        saliency_line(series, m, ax=ax, truth=truth, cmap=cmap, colorbar=False)
        ax.set_title(name, fontsize=10, loc="left")
        ax.set_xlabel("")
    axes[-1].set_xlabel("time step")
    if title:
        fig.suptitle(title)
    return fig


def learning_curves(histories: Mapping[str, Mapping[str, Any]], *, keys: Sequence[str] = ("train_loss", "val_loss"),
                    title: str | None = None) -> Figure:
    """Loss (and validation accuracy when present) per epoch, one line per run.

    ``histories`` maps a label to a stored history (``History.to_dict()``).
    """
    has_acc = any("val_accuracy" in row for h in histories.values() for row in h["epochs"])
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 6, 3.2), layout="constrained")
    axes = np.atleast_1d(axes)
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
    if title:
        fig.suptitle(title)
    return fig


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
    fig, axes = plt.subplots(n, 1, figsize=(7, 1.7 * n), sharex=True, layout="constrained")
    axes = np.atleast_1d(axes)
    x = np.asarray(series)[0] if np.asarray(series).ndim == 2 else np.asarray(series)
    for ax, copy, start in zip(axes, perturbed[:n], starts[:n], strict=False):
        c = np.asarray(copy)[0] if np.asarray(copy).ndim == 2 else np.asarray(copy)
        ax.plot(x, color="0.5", lw=1, label="original")
        ax.plot(c, color="tab:red", lw=1.2, label="perturbed")
        ax.axvspan(int(start), int(start) + window, color="tab:red", alpha=0.12)
        ax.set_ylabel(f"t={int(start)}")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("time step")
    if title:
        fig.suptitle(title)
    return fig


def metric_bars(frame: Any, metrics: Sequence[str], *, title: str | None = None) -> Figure:
    """Mean ± std bars per method for several metrics (``frame``: one row per run, a ``method`` column)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.4 * len(metrics), 3.2), layout="constrained")
    axes = np.atleast_1d(axes)
    methods = list(dict.fromkeys(frame["method"]))
    for ax, metric in zip(axes, metrics, strict=True):
        grouped = frame.groupby("method")[metric]
        means, stds = grouped.mean().reindex(methods), grouped.std().reindex(methods).fillna(0.0)
        ax.bar(range(len(methods)), means, yerr=stds, color=[f"C{i}" for i in range(len(methods))], capsize=3)
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
        ax.set_title(metric.replace("_", " "))
    if title:
        fig.suptitle(title)
    return fig
