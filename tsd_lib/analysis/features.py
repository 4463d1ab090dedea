"""Chapter 3's look inside the networks: features of several models on the same series, attention
over time (what AT matches, and each student's AT loss as a table) and pairwise distances between
series (what RKD matches)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from tsd_lib.analysis.seed_tables import method_label
from tsd_lib.data import Dataset
from tsd_lib.losses import at_loss, rkd_loss
from tsd_lib.report.style import COLUMN_WIDTH, method_color, other_color, panel_grid

Features = Mapping[str, torch.Tensor]


def forward_features(models: Mapping[str, nn.Module], X: np.ndarray) -> tuple[dict[str, torch.Tensor],
                                                                              dict[str, Features]]:
    """Logits and feature tensors (``sequence``, ``embedding``) of every model on ``X``, without gradients."""
    x = torch.as_tensor(X)
    with torch.no_grad():
        out = {name: model(x, return_features=True) for name, model in models.items()}
    return {n: o[0] for n, o in out.items()}, {n: o[1] for n, o in out.items()}


def attention_profile(feats: Features) -> np.ndarray:
    """AT's attention over time, (n, T): the channel mean of the squared sequence features, L2-normalised
    over time."""
    a = feats["sequence"].pow(2).mean(dim=1)
    return (a / a.norm(dim=1, keepdim=True)).numpy()


def at_gaps(feats: Mapping[str, Features], methods: Sequence[str], teacher: str = "teacher") -> dict[str, float]:
    """AT loss of each method's features against the teacher's."""
    return {m: float(at_loss(feats[m]["sequence"], feats[teacher]["sequence"])) for m in methods}


def attention_plot(series: np.ndarray, profiles: Mapping[str, np.ndarray], title: str) -> Figure:
    """A series (top) and the attention profiles of several models on it (bottom), each model in its method's
    colour (:func:`~tsd_lib.report.style.method_color`; the first profile, the teacher, thicker)."""
    fig, axes = plt.subplots(2, 1, figsize=(COLUMN_WIDTH, 4.6), sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [1, 1.4]})
    axes[0].plot(series, color="0.3")
    axes[0].set(ylabel="value", title=title)
    for j, (label, a) in enumerate(profiles.items()):
        axes[1].plot(a, color=method_color(label, other_color(j)), lw=2 if j == 0 else 1.3, label=label)
    axes[1].set(xlabel="time step", ylabel="attention a(t)")
    axes[1].legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return fig


def attention_view(data: Dataset, feats: Mapping[str, Features], labels: Mapping[str, str], i: int = 0) -> Figure:
    """:func:`attention_plot` of test series ``i``: the attention profile of each model in ``labels`` (name ->
    label, the teacher first), from ``feats`` (features of the test series in order)."""
    profiles = {label: attention_profile(feats[name])[i] for name, label in labels.items()}
    return attention_plot(data.X_test[i, 0], profiles, title=f"{data.name} test series {i} (class {data.y_test[i]})")


def class_sorted_sample(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` distinct rows drawn at random (``seed``), sorted by class (stable) and then by row."""
    pick = np.sort(np.random.default_rng(seed).choice(len(y), min(n, len(y)), replace=False))
    return pick[np.argsort(y[pick], kind="stable")]


def flat_sequence(feats: Features, rows: np.ndarray) -> torch.Tensor:
    """The flattened feature sequences RKD compares, (len(rows), D*T)."""
    return feats["sequence"][torch.as_tensor(rows)].flatten(1)


def relative_distances(flat: torch.Tensor) -> np.ndarray:
    """Pairwise Euclidean distances divided by their mean off-diagonal (non-zero) value."""
    d = torch.cdist(flat, flat)
    return (d / d[d > 0].mean()).numpy()


def distance_heatmaps(dists: Mapping[str, np.ndarray], y_rows: np.ndarray, title: str) -> Figure:
    """One heat map per model, on the colour scale of the first (the teacher; up to its 98th percentile),
    with white lines at class boundaries."""
    vmax = float(np.quantile(next(iter(dists.values())), 0.98))
    fig, axes = panel_grid(len(dists), 3.3, single_width=4.6, head=0.6)
    edges = np.flatnonzero(np.diff(y_rows)) + 0.5
    for ax, (label, d) in zip(axes, dists.items(), strict=True):
        im = ax.imshow(d, cmap="viridis", vmin=0, vmax=vmax)
        ax.set(title=label, xticks=[], yticks=[])
        for e in edges:
            ax.axhline(e, color="white", lw=0.8)
            ax.axvline(e, color="white", lw=0.8)
    fig.colorbar(im, ax=axes, label="distance / mean distance", shrink=0.9)
    fig.suptitle(title, fontsize=10)
    return fig


def distance_view(feats: Mapping[str, Features], labels: Mapping[str, str], rows: np.ndarray, y: np.ndarray,
                  name: str) -> Figure:
    """:func:`distance_heatmaps` of the :func:`relative_distances` between the feature sequences of the test
    series ``rows`` (``y``: the labels of every test series) for each model in ``labels`` (name -> label)."""
    dists = {label: relative_distances(flat_sequence(feats[n], rows)) for n, label in labels.items()}
    return distance_heatmaps(dists, y[rows], title=f"{name}: feature-sequence distances of {len(rows)} test series "
                                                   "(white lines: class boundaries)")


def rkd_comparison(feats: Mapping[str, Features], rows: np.ndarray, methods: Sequence[str],
                   teacher: str = "teacher") -> tuple[dict[str, float], dict[str, float]]:
    """Per method, on ``rows``: the RKD loss against the teacher and the correlation of its relative
    distance matrix with the teacher's."""
    t_flat = flat_sequence(feats[teacher], rows)
    t_dist = relative_distances(t_flat).ravel()
    gap, corr = {}, {}
    for m in methods:
        flat = flat_sequence(feats[m], rows)
        gap[m] = float(rkd_loss(flat, t_flat))
        corr[m] = float(np.corrcoef(relative_distances(flat).ravel(), t_dist)[0, 1])
    return gap, corr


def at_table(at_gap: Mapping[str, float]) -> pd.DataFrame:
    """The AT loss of each student against the teacher (from :func:`at_gaps`), closest first, one row per
    student by its method's name."""
    rows = sorted(at_gap.items(), key=lambda kv: kv[1])
    return pd.DataFrame({"AT loss against the teacher": [v for _, v in rows]},
                        index=pd.Index([f"{method_label(m)} student" for m, _ in rows], name="student"))
