"""Chapter 1's look at a data set: its splits, a few series per class, preprocessing, class shares
and how sure a trained model is."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from tsd_lib.data import Dataset, load_dataset, normalise_series
from tsd_lib.experiment import RunConfig
from tsd_lib.metrics import softmax
from tsd_lib.train import predict_logits


def dataset_line(data: Dataset) -> str:
    """One markdown sentence: classes, channels, length and split sizes."""
    s = data.summary()
    return (f"**{s['name']}**: {s['n_classes']} classes, {s['n_channels']} channel(s), series of length "
            f"{s['length']} after preprocessing; {s['n_train']} training, {s['n_val']} validation and "
            f"{s['n_test']} test series.")


def split_counts(data: Dataset) -> pd.DataFrame:
    """Series per class (rows) and split (columns: train, validation, test)."""
    return pd.DataFrame(
        {split: np.bincount(y, minlength=data.n_classes)
         for split, y in [("train", data.y_train), ("validation", data.y_val), ("test", data.y_test)]},
        index=[f"class {c} (label {name})" for c, name in enumerate(data.class_names)],
    )


def class_examples_plot(data: Dataset, *, max_classes: int = 6) -> Figure:
    """Five training series per class (thin lines) and the class mean (black), one panel per class."""
    shown = list(range(min(data.n_classes, max_classes)))
    fig, axes = plt.subplots(1, len(shown), figsize=(3.6 * len(shown), 2.8), sharey=True, layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, c in zip(axes, shown, strict=True):
        members = data.X_train[data.y_train == c, 0]
        for series in members[:5]:
            ax.plot(series, color=f"C{c}", lw=0.8, alpha=0.6)
        ax.plot(members.mean(axis=0), color="black", lw=2, label="class mean")
        ax.set_title(f"class {c} (label {data.class_names[c]}), n={len(members)}", fontsize=10)
        ax.set_xlabel("time step")
    axes[0].set_ylabel("z-normalised value")
    axes[0].legend(fontsize=8)
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
    fig, axes = plt.subplots(1, 2, figsize=(11, 3), layout="constrained")
    axes[0].plot(np.linspace(0, 1, len(x_raw)), x_raw, "o", ms=3, color="0.3", label=f"original ({len(x_raw)} points)")
    axes[0].plot(np.linspace(0, 1, len(x_res)), x_res, "-", color="C1", lw=1.2,
                 label=f"resampled ({len(x_res)} points)")
    axes[0].set(xlabel="relative time", ylabel="raw value", title="linear resampling")
    axes[0].legend(fontsize=8)
    axes[1].plot(x_final, color="C0")
    axes[1].axhline(0, color="0.7", lw=0.8)
    axes[1].set(xlabel="time step", ylabel="z-normalised value", title="z-normalisation")
    fig.suptitle(f"{data.name}, training series {i} (class {data.y_train[i]})")
    return fig


def preprocessing_note(raw: Dataset, resampled: Dataset, data: Dataset, i: int = 0) -> str:
    """The lengths before and after, the z-normalised series' mean and std, and that
    ``normalise_series`` on the resampled series gives the loaded one."""
    x_final = data.X_train[i, 0]
    gap = float(np.abs(normalise_series(resampled.X_train[i:i + 1]) - data.X_train[i:i + 1]).max())
    return (f"Original length {raw.length} → {resampled.length}. After z-normalisation the series has "
            f"mean {x_final.mean():.2e} and standard deviation {x_final.std():.3f}; "
            f"`normalise_series` applied to the resampled series reproduces the loaded one "
            f"(largest difference {gap:.1e}).")


def preprocessing_view(config: RunConfig, data: Dataset, data_dir: str | None = None, i: int = 0) -> str:
    """Draw :func:`preprocessing_plot` of training series ``i`` (pyplot) and return its
    :func:`preprocessing_note`; for a set without a raw version (:func:`preprocessing_stages` raises),
    draw nothing and return a markdown line saying why."""
    try:
        raw, resampled = preprocessing_stages(config, data_dir)
    except ValueError as err:  # the synthetic set, or a variable-length set
        return f"*No raw version to show for `{config.dataset}`: {err}*"
    preprocessing_plot(raw, resampled, data, i=i)
    return preprocessing_note(raw, resampled, data, i=i)


def class_share_plot(counts: pd.DataFrame, name: str) -> Figure:
    """Stacked bars: each class's share of each split (``counts`` from :func:`split_counts`)."""
    ax = (counts / counts.sum(axis=0)).T.plot.bar(stacked=True, figsize=(5.5, 3), rot=0, colormap="tab10", width=0.6)
    ax.set(ylabel="share of the split", title=f"{name}: class proportions per split")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    return ax.figure


def class_share_note(counts: pd.DataFrame) -> str:
    """The largest difference in class share between the train and validation splits."""
    shares = counts / counts.sum(axis=0)
    gap = float((shares["train"] - shares["validation"]).abs().max())
    return (f"The largest difference in class share between train and validation is {gap:.3f} "
            f"(stratification keeps it at the rounding level); the test split keeps the archive's own proportions.")


def confidence_plot(proba: np.ndarray, y: np.ndarray, title: str) -> Figure:
    """Histogram of the probability of the predicted class, stacked by right (green) and wrong (red)."""
    confidence, correct = proba.max(axis=1), proba.argmax(axis=1) == y
    fig, ax = plt.subplots(figsize=(6, 3), layout="constrained")
    bins = np.linspace(1 / proba.shape[1], 1, 21)
    ax.hist([confidence[correct], confidence[~correct]], bins=bins, stacked=True, color=["tab:green", "tab:red"],
            label=[f"correct ({correct.sum()})", f"wrong ({(~correct).sum()})"])
    ax.set(xlabel="teacher probability of its predicted class", ylabel="test series", title=title)
    ax.legend(fontsize=8)
    return fig


def model_confidence_plot(model: nn.Module, data: Dataset, title: str) -> Figure:
    """:func:`confidence_plot` of ``model``'s softmax probabilities on the test split of ``data``."""
    return confidence_plot(softmax(predict_logits(model, data.X_test)), data.y_test, title)
