"""Chapter 1's look at a data set: its splits, a few series per class, preprocessing (checked in numbers),
class shares and how sure a trained model is."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from tsd_lib.data import Dataset, load_dataset, normalise_series
from tsd_lib.experiment import RunConfig
from tsd_lib.metrics import softmax
from tsd_lib.report.style import COLUMN_WIDTH, OTHER_COLORS, other_color, panel_grid
from tsd_lib.train import predict_logits


def split_counts(data: Dataset) -> pd.DataFrame:
    """Series per class (rows) and split (columns: train, validation, test)."""
    return pd.DataFrame(
        {split: np.bincount(y, minlength=data.n_classes)
         for split, y in [("train", data.y_train), ("validation", data.y_val), ("test", data.y_test)]},
        index=pd.Index([f"class {c} (label {name})" for c, name in enumerate(data.class_names)], name="class"),
    )


def class_examples_plot(data: Dataset, *, max_classes: int = 6) -> Figure:
    """Five training series per class (thin lines) and the class mean (black), one panel per class, two
    panels per row."""
    shown = list(range(min(data.n_classes, max_classes)))
    fig, axes = panel_grid(len(shown), 2.5, sharey=True)
    for ax, c in zip(axes, shown, strict=True):
        members = data.X_train[data.y_train == c, 0]
        for series in members[:5]:
            ax.plot(series, color=other_color(c + 1), lw=0.8, alpha=0.6)  # a class: no method's colour
        ax.plot(members.mean(axis=0), color="black", lw=2, label="class mean")
        ax.set_title(f"class {c} (label {data.class_names[c]}), n={len(members)}", fontsize=10)
        ax.set_xlabel("time step")
    for ax in axes[::2]:  # the first panel of each row
        ax.set_ylabel("z-normalised value")
    axes[0].legend(fontsize=9, loc="best")
    fig.suptitle(f"{data.name}: five training series per class")
    return fig


def preprocessing_stages(config: RunConfig, data_dir: str | None = None) -> tuple[Dataset, Dataset]:
    """``config``'s data set before preprocessing (raw length, not normalised) and resampled to
    ``config.length`` but not normalised. Raises ValueError for sets without a raw version (the
    synthetic set, a variable-length set)."""
    common = {"normalise": "none", "data_dir": data_dir, "val_fraction": config.val_fraction,
              "split_seed": config.split_seed}
    raw = load_dataset(config.dataset, length=None, **common)
    return raw, load_dataset(config.dataset, length=config.length, stretch=config.stretch, **common)


def preprocessing_plot(raw: Dataset, resampled: Dataset, data: Dataset, i: int = 0) -> Figure:
    """Training series ``i``: raw points against the resampled line (left), the z-normalised series (right)."""
    x_raw, x_res, x_final = raw.X_train[i, 0], resampled.X_train[i, 0], data.X_train[i, 0]
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 3.2), layout="constrained")
    axes[0].plot(np.linspace(0, 1, len(x_raw)), x_raw, "o", ms=3, color="0.3", label=f"original ({len(x_raw)} points)")
    axes[0].plot(np.linspace(0, 1, len(x_res)), x_res, "-", color=other_color(1), lw=1.2,
                 label=f"resampled ({len(x_res)} points)")
    axes[0].set(xlabel="relative time", ylabel="raw value", title="linear resampling")
    axes[0].legend(fontsize=9, loc="best")
    axes[1].plot(x_final, color=other_color(0))
    axes[1].axhline(0, color="0.7", lw=0.8)
    axes[1].set(xlabel="time step", ylabel="z-normalised value", title="z-normalisation")
    fig.suptitle(f"{data.name}, training series {i} (class {data.y_train[i]})")
    return fig


def preprocessing_check(raw: Dataset, resampled: Dataset, data: Dataset, i: int = 0) -> dict[str, float]:
    """Training series ``i`` through preprocessing, as numbers: its length before (``raw_length``) and after
    (``length``) resampling, the mean and standard deviation of the z-normalised series, and the largest
    difference between ``normalise_series`` of the resampled series and the loaded one (``gap``)."""
    x_final = data.X_train[i, 0]
    gap = float(np.abs(normalise_series(resampled.X_train[i:i + 1]) - data.X_train[i:i + 1]).max())
    return {"raw_length": int(raw.length), "length": int(resampled.length), "mean": float(x_final.mean()),
            "std": float(x_final.std()), "gap": gap}


def preprocessing_view(config: RunConfig, data: Dataset, data_dir: str | None = None,
                       i: int = 0) -> tuple[Figure, dict[str, float]]:
    """:func:`preprocessing_plot` of training series ``i`` (pyplot) and its :func:`preprocessing_check`; for a
    set without a raw version (:func:`preprocessing_stages` raises), the series as loaded (the figure's title
    says so) and a check whose ``raw_length`` and ``gap`` are NaN."""
    try:
        raw, resampled = preprocessing_stages(config, data_dir)
    except ValueError:  # the synthetic set, or a variable-length set
        fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 2.6), layout="constrained")
        ax.plot(data.X_train[i, 0], color="0.3")
        ax.set(xlabel="time step", ylabel="value as loaded", title=f"{data.name}, training series {i}: no raw version")
        x = data.X_train[i, 0]
        return fig, {"raw_length": math.nan, "length": int(data.length), "mean": float(x.mean()),
                     "std": float(x.std()), "gap": math.nan}
    return preprocessing_plot(raw, resampled, data, i=i), preprocessing_check(raw, resampled, data, i=i)


def class_share_plot(counts: pd.DataFrame, name: str) -> Figure:
    """Stacked bars: each class's share of each split (``counts`` from :func:`split_counts`)."""
    shares = (counts / counts.sum(axis=0)).T
    ax = shares.plot.bar(stacked=True, figsize=(5.5, 3), rot=0, width=0.6,
                         color=[OTHER_COLORS[c % len(OTHER_COLORS)] for c in range(shares.shape[1])])
    ax.set(ylabel="share of the split", title=f"{name}: class proportions per split")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.figure.set_layout_engine("constrained")
    return ax.figure


def class_share_gap(counts: pd.DataFrame) -> float:
    """The largest difference in one class's share between the train and validation splits (``counts`` from
    :func:`split_counts`)."""
    shares = counts / counts.sum(axis=0)
    return float((shares["train"] - shares["validation"]).abs().max())


def confidence_plot(proba: np.ndarray, y: np.ndarray, title: str) -> Figure:
    """Histogram of the probability of the predicted class, stacked by right (green) and wrong (red)."""
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    bins = np.linspace(1 / proba.shape[1], 1, 21)
    ax.hist([confidence[correct], confidence[~correct]], bins=bins, stacked=True, color=["tab:green", "tab:red"],
            label=[f"correct ({correct.sum()})", f"wrong ({(~correct).sum()})"])
    ax.set(xlabel="teacher probability of its predicted class", ylabel="test series", title=title)
    ax.legend(fontsize=9, loc="best")
    return fig


def model_confidence_plot(model: nn.Module, data: Dataset, title: str) -> Figure:
    """:func:`confidence_plot` of ``model``'s softmax probabilities on the test split of ``data``."""
    return confidence_plot(softmax(predict_logits(model, data.X_test)), data.y_test, title)
