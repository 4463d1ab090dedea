"""Chapter 4's views of temporal saliency: the shift of each window, maps over series, maps under
other baselines and methods, and the planted-pattern check with known answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from tsd_lib import report
from tsd_lib.analysis.architectures import ARCH
from tsd_lib.data import Dataset
from tsd_lib.experiment import RunConfig, RunStore, get_teacher
from tsd_lib.metrics import saliency_precision, saliency_similarity, softmax
from tsd_lib.report.style import COLUMN_WIDTH, method_color, other_color
from tsd_lib.saliency import BASELINES
from tsd_lib.saliency.gradients import gradient_map, integrated_gradients_map
from tsd_lib.saliency.maps import saliency_map
from tsd_lib.train import predict_logits

if TYPE_CHECKING:
    from tsd_lib.profiles import Profile

#: The three maps of the planted-pattern check, as the chapter names them.
SYNTHETIC_MAPS = ("occlusion (TSD)", "|gradient|", "|integrated gradients|")


def series_tensors(data: Dataset, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Test series ``i`` of ``data`` and its label as a batch of one, and the donor pool (the training set)."""
    return (torch.as_tensor(data.X_test[i:i + 1]), torch.as_tensor(data.y_test[i:i + 1]),
            torch.as_tensor(data.X_train), torch.as_tensor(data.y_train))


def perturbed_copies_plot(data: Dataset, i: int, copies: np.ndarray, starts: Sequence[int], window: int) -> Figure:
    """Test series ``i`` of ``data`` and three of its perturbed ``copies`` (windows at ``starts`` shaded)."""
    name = data.class_names[data.y_test[i]]
    return report.perturbation_examples(data.X_test[i], copies, list(starts), window, n=3,
                                        title=f"{data.name} test series {i} (class {name}): windows of "
                                              f"length {window} replaced from other-class series")


@dataclass
class WindowShifts:
    """One series' shift per window, windows sorted by start: ``starts``, ``shift`` (summed over classes),
    ``q_true`` (the model's probability of the true class on each perturbed copy) and ``p_true`` (on the
    clean series)."""

    starts: np.ndarray
    shift: np.ndarray
    q_true: np.ndarray
    p_true: float

    @property
    def top_start(self) -> int:
        """The start of the window with the largest shift."""
        return int(self.starts[self.shift.argmax()])

    @property
    def top_q_true(self) -> float:
        """The model's probability of the true class on the copy with the largest shift."""
        return float(self.q_true[self.shift.argmax()])

    def plot(self, series: np.ndarray, window: int, label: int, class_name: str | None = None) -> Figure:
        """:func:`window_shift_plot` of these shifts over ``series``."""
        return window_shift_plot(series, self.starts, self.shift, self.q_true, self.p_true, window, label,
                                 class_name=class_name)


def window_shifts(starts: np.ndarray, shift: np.ndarray, logits: np.ndarray, logits_perturbed: np.ndarray,
                  label: int) -> WindowShifts:
    """Sort one series' windows by start (``starts``, ``shift``: one per perturbed copy) and read the
    probability of class ``label`` off the clean ``logits`` (``(1, k)``) and the copies' (``(K, k)``)."""
    order = np.argsort(starts)
    return WindowShifts(starts[order], shift[order], softmax(logits_perturbed)[order, label],
                        float(softmax(logits)[0, label]))


def window_shift_plot(series: np.ndarray, starts: np.ndarray, shift: np.ndarray, q_true: np.ndarray,
                      p_true: float, window: int, label: int, *, class_name: str | None = None) -> Figure:
    """Series with its three most salient windows shaded; the shift per window start; the teacher's
    probability of class ``label`` (named ``class_name``, the data set's own label) on each perturbed
    copy against the clean series (starts sorted)."""
    fig, axes = plt.subplots(3, 1, figsize=(COLUMN_WIDTH, 6), sharex=True, layout="constrained")
    axes[0].plot(series, color="0.3")
    for t0 in starts[np.argsort(shift)[-3:]]:
        axes[0].axvspan(t0, t0 + window, color="tab:red", alpha=0.15)
    axes[0].set(ylabel="value", title="series; shaded: the three windows with the largest shift")
    axes[1].plot(starts, shift, color="tab:red")
    axes[1].set(ylabel="normalised τ² KL(p‖q_t)")
    axes[2].plot(starts, q_true, color=method_color("teacher"), label="perturbed copy")
    axes[2].axhline(p_true, color="0.4", ls=":", label="clean series")
    shown = label if class_name is None else class_name
    axes[2].set(xlabel="window start t", ylabel=f"P(class {shown})", ylim=(-0.02, 1.02))
    axes[2].legend(fontsize=9, loc="best")
    return fig


def first_per_class(y: np.ndarray, n: int, k: int) -> np.ndarray:
    """``n`` row indices: the first ``ceil(n / k)`` series of each of the ``k`` classes in class order, cut to
    ``n``."""
    per_class = int(np.ceil(n / k))
    return np.concatenate([np.flatnonzero(y == c)[:per_class] for c in range(k)])[:n]


def maps_plot(X: np.ndarray, y: np.ndarray, idx: np.ndarray, maps: np.ndarray, proba: np.ndarray,
              title: str, class_names: Sequence[Any] | None = None) -> Figure:
    """One saliency line per series (rows), titled with the series' class (its name in ``class_names``, the
    data set's own labels) and the model's probability of it."""
    fig, axes = plt.subplots(len(idx), 1, figsize=(COLUMN_WIDTH, 0.4 + 1.8 * len(idx)), sharex=True,
                             layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, j, series, m, p, c in zip(axes, idx, X, maps, proba, y, strict=True):
        report.saliency_line(series, m, ax=ax, colorbar=True)
        shown = c if class_names is None else class_names[c]
        ax.set_title(f"test series {j}: class {shown}, teacher P(class) = {p[c]:.2f}", fontsize=9, loc="left")
        ax.set_xlabel("")
    axes[-1].set_xlabel("time step")
    fig.suptitle(title, fontsize=10)
    return fig


def teacher_maps_plot(teacher: nn.Module, X: np.ndarray, y: np.ndarray, idx: np.ndarray, maps: np.ndarray,
                      name: str, *, window: int, tau: float, class_names: Sequence[Any] | None = None) -> Figure:
    """:func:`maps_plot` of the ``teacher``'s ``maps`` on test series ``idx`` of data set ``name``, with the
    teacher's probabilities."""
    return maps_plot(X, y, idx, maps, softmax(predict_logits(teacher, X)),
                     title=f"{name}: teacher saliency (window {window}, τ = {tau:g}, other-class replacement)",
                     class_names=class_names)


def late_mass(maps: np.ndarray, fraction: float = 0.2) -> float:
    """Mean share of each map's saliency mass on the last ``fraction`` of the time steps."""
    tail = max(1, int(np.ceil(maps.shape[1] * fraction)))
    return float((maps[:, -tail:].sum(1) / maps.sum(1).clip(min=1e-12)).mean())


def baselines_plot(X: np.ndarray, by_baseline: Mapping[str, np.ndarray], name: str, index: int) -> Figure:
    """The first series of ``X`` (test series ``index`` of data set ``name``) under each baseline's map."""
    return report.compare_saliency(X[0], {BASELINE_LABELS.get(b, b): m[0] for b, m in by_baseline.items()},
                                   title=f"{name} test series {index}: the same teacher, five replacement baselines")


def methods_plot(X: np.ndarray, occlusion: np.ndarray, others: Mapping[str, np.ndarray], name: str,
                 index: int) -> Figure:
    """The first series of ``X`` (test series ``index`` of ``name``) under the occlusion map and ``others``."""
    maps = {"occlusion, other-class (TSD)": occlusion, **others}
    return report.compare_saliency(X[0], {n: m[0] for n, m in maps.items()},
                                   title=f"{name} test series {index}: three saliency methods, one teacher")


def baseline_maps(model: nn.Module, X: np.ndarray, y: np.ndarray, data: Dataset, *, window: int, tau: float,
                  other_class: np.ndarray) -> dict[str, np.ndarray]:
    """Saliency maps of ``model`` on ``X`` under every replacement baseline of
    :data:`~tsd_lib.saliency.BASELINES` (donors: ``data``'s training set); ``other_class``, the maps
    already computed with other-class donors, is reused for that baseline."""
    return {b: other_class if b == "other_class" else
            saliency_map(model, X, y, X_pool=data.X_train, y_pool=data.y_train, window=window, tau=tau,
                         baseline=b, generator=0) for b in BASELINES}


#: The replacement baselines of :data:`~tsd_lib.saliency.BASELINES` in words, as the chapter's table and
#: figure name them.
BASELINE_LABELS = {"other_class": "other-class donor (TSD)", "zero": "zeros", "mean": "series mean",
                   "noise": "Gaussian noise", "same_class": "same-class donor"}

#: :func:`baseline_table`'s columns, and how the chapter formats them (three significant digits).
BASELINE_COLUMNS = ("Spearman with the other-class map", "mean saliency, τ²·KL (nats)",
                    "mean saliency relative to other-class")
BASELINE_FORMAT = dict.fromkeys(BASELINE_COLUMNS, "{:#.3g}")


def baseline_table(by_baseline: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per baseline (rows named by :data:`BASELINE_LABELS`, in the order of ``by_baseline``): the Spearman
    correlation of its maps with the other-class maps, its mean saliency, and that mean relative to the
    other-class maps' mean (columns :data:`BASELINE_COLUMNS`)."""
    ref = by_baseline["other_class"]
    mean = {b: float(m.mean()) for b, m in by_baseline.items()}
    spearman, raw, relative = BASELINE_COLUMNS
    return pd.DataFrame({spearman: [saliency_similarity(ref, m)["spearman"] for m in by_baseline.values()],
                         raw: list(mean.values()),
                         relative: [v / mean["other_class"] for v in mean.values()]},
                        index=pd.Index([BASELINE_LABELS.get(b, b) for b in by_baseline], name="replacement"))


def agreement_table(reference: np.ndarray, others: Mapping[str, np.ndarray], k: int = 10) -> pd.DataFrame:
    """Spearman correlation and top-``k`` overlap (intersection over union of the ``k`` most salient steps) of
    other maps with the reference (occlusion) maps; one row per map."""
    sims = {name: saliency_similarity(reference, m, k=k) for name, m in others.items()}
    return pd.DataFrame({"Spearman with the occlusion map": [s["spearman"] for s in sims.values()],
                         f"top-{k} overlap with the occlusion map (IoU)": [s["topk_iou"] for s in sims.values()]},
                        index=pd.Index(list(sims), name="saliency map"))


def planted_examples_plot(syn: Dataset) -> Figure:
    """Two test series per class of the synthetic set, their planted windows shaded green."""
    truth = syn.masks["test"]
    fig, axes = plt.subplots(2, 2, figsize=(COLUMN_WIDTH, 4.2), sharex=True, sharey=True, layout="constrained")
    for c in range(2):
        for k, j in enumerate(np.flatnonzero(syn.y_test == c)[:2]):
            ax = axes[c, k]
            ax.plot(syn.X_test[j, 0], color=other_color(c), lw=1)
            on = np.flatnonzero(truth[j])
            ax.axvspan(on[0], on[-1] + 1, color="tab:green", alpha=0.2)
            ax.set_title(f"class {c} ({syn.class_names[c]}), test series {j}", fontsize=9)
    fig.suptitle("Synthetic set: noise plus a class pattern in the green window")
    return fig


def synthetic_teachers(config: RunConfig, data: Dataset, store: RunStore, datasets: Sequence[str]
                       ) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
    """The teachers of the planted-pattern check on the synthetic set ``data`` (``config``): the profile's
    teacher when the profile trains on the synthetic set (``datasets``), and a small FCN under the same
    protocol; each as ``(model, record)``, trained or loaded from ``store``."""
    teachers = {}
    if any(d.lower() == "synthetic" for d in datasets):
        teachers[f"{ARCH[config.teacher]} (profile)"] = get_teacher(config, data, store)
    teachers["small FCN"] = get_teacher(config.replace(teacher="fcn_small"), data, store)
    return teachers


def gradient_maps(model: nn.Module, X: np.ndarray, y: np.ndarray, *, ig_steps: int) -> dict[str, np.ndarray]:
    """``model``'s ``|gradient|`` and ``|integrated gradients|`` maps on ``X`` (integrated from the zero series
    with ``ig_steps`` points)."""
    return {"|gradient|": gradient_map(model, X, y),
            "|integrated gradients|": np.abs(integrated_gradients_map(model, X, y, baseline="zero", steps=ig_steps))}


def synthetic_maps(model: nn.Module, X: np.ndarray, y: np.ndarray, syn: Dataset, *, window: int, tau: float,
                   ig_steps: int) -> dict[str, np.ndarray]:
    """The three maps of :data:`SYNTHETIC_MAPS` of ``model`` on ``X`` (donors: the synthetic training set)."""
    occlusion = saliency_map(model, X, y, X_pool=syn.X_train, y_pool=syn.y_train, window=window, tau=tau, generator=0)
    return dict(zip(SYNTHETIC_MAPS, (occlusion, *gradient_maps(model, X, y, ig_steps=ig_steps).values()), strict=True))


def precision_table(maps: Mapping[str, Mapping[str, np.ndarray]], accuracy: Mapping[str, float],
                    truth: np.ndarray) -> pd.DataFrame:
    """Long table: teacher, its test accuracy, map, saliency precision against the ``truth`` masks."""
    return pd.DataFrame([{"teacher": name, "test accuracy": accuracy[name], "map": method,
                          "precision": saliency_precision(m, truth)}
                         for name, ms in maps.items() for method, m in ms.items()])


def precision_plot(precision: pd.DataFrame, chance: float, n_eval: int) -> Figure:
    """Bars: each teacher's precision per map (TSD's occlusion map in TSD's colour), against chance (the planted
    share L/T); the legend outside the bars."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.2), layout="constrained")
    order = list(dict.fromkeys(precision["map"]))
    wide = precision.pivot(index="teacher", columns="map", values="precision")[order]
    colors = [method_color("tsd") if "TSD" in m else other_color(j + 1) for j, m in enumerate(order)]
    wide.plot.bar(ax=ax, rot=0, color=colors)
    ax.axhline(chance, color="0.3", ls="--", lw=1, label=f"chance ({chance:.2f}: the planted share)")
    ax.set(ylabel="saliency precision", ylim=(0, 1), title=f"Synthetic test set, first {n_eval} series")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return fig


def mid_series(truth: np.ndarray, lo: int = 25, hi: int = 65) -> int:
    """The first series whose planted window starts in ``[lo, hi]`` (0 when none does)."""
    middle = np.flatnonzero((truth.argmax(1) >= lo) & (truth.argmax(1) <= hi))
    return int(middle[0]) if len(middle) else 0


@dataclass
class PlantedCheck:
    """The planted-pattern check: the ``n_eval`` synthetic test series ``X``, ``y`` and their ``truth`` masks,
    ``chance`` (the planted share of the time steps), every teacher's :func:`synthetic_maps` and the
    :func:`precision_table`."""

    X: np.ndarray
    y: np.ndarray
    truth: np.ndarray
    chance: float
    maps: dict[str, dict[str, np.ndarray]]
    precision: pd.DataFrame

    @property
    def n_eval(self) -> int:
        """How many synthetic test series the check uses."""
        return len(self.y)


def planted_check(config: RunConfig, syn: Dataset, store: RunStore, profile: Profile, *, window: int, tau: float,
                  ig_steps: int) -> PlantedCheck:
    """Run the planted-pattern check on the synthetic set ``syn`` (``config``): the teachers of
    :func:`synthetic_teachers` (trained or loaded from ``store``), their maps on the first test series (at most
    the profile's ``saliency_eval_series``) and each map's saliency precision against the planted windows."""
    teachers = synthetic_teachers(config, syn, store, profile.datasets)
    n_eval = min(len(syn.y_test), profile.run.get("saliency_eval_series") or len(syn.y_test))
    X, y, truth = syn.X_test[:n_eval], syn.y_test[:n_eval], syn.masks["test"][:n_eval]
    maps = {name: synthetic_maps(model, X, y, syn, window=window, tau=tau, ig_steps=ig_steps)
            for name, (model, _) in teachers.items()}
    accuracy = {name: record["test_accuracy"] for name, (_, record) in teachers.items()}
    return PlantedCheck(X, y, truth, float(truth.sum(1).mean() / syn.length), maps,
                        precision_table(maps, accuracy, truth))


def planted_series_plot(check: PlantedCheck) -> Figure:
    """One series of the check whose pattern sits mid-series (:func:`mid_series`), its planted window shaded,
    with every teacher's maps."""
    j = mid_series(check.truth)
    panels = {f"{name}: {method}": m[j] for name, ms in check.maps.items() for method, m in ms.items()}
    return report.compare_saliency(check.X[j], panels, truth=check.truth[j],
                                   title=f"Synthetic test series {j} (class {check.y[j]})")
