"""Chapter 5's views of TSD: the per-class shift matrices of teacher and student on one series, and
teacher and student saliency maps side by side."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure
from torch import nn

from tsd_lib import report
from tsd_lib.data import Dataset
from tsd_lib.experiment import RunConfig
from tsd_lib.losses import TSDTerm, tsd_loss
from tsd_lib.metrics import saliency_similarity
from tsd_lib.saliency.maps import saliency_map


def shift_heatmaps(series: np.ndarray, starts: np.ndarray, shifts: Mapping[str, np.ndarray], window: int,
                   class_names: Sequence[object], label: str = "series") -> Figure:
    """Three panels: the series (``label``) with its replaced windows shaded, then one ``classes x windows``
    heat map per entry of ``shifts`` (each ``(K, k)``, windows in the order of ``starts``), windows sorted by
    start, on one centred colour scale (red: the class lost probability mass, blue: it gained)."""
    starts = np.asarray(starts)
    order = np.argsort(starts, kind="stable")
    K = len(starts)
    mats = {name: np.asarray(m)[order].T for name, m in shifts.items()}
    norm = CenteredNorm(halfrange=max(float(np.abs(m).max()) for m in mats.values()) or 1.0)
    ticks = np.linspace(0, K - 1, min(K, 10)).round().astype(int)
    fig, axes = plt.subplots(1 + len(mats), 1, figsize=(8, 5.6), layout="constrained",
                             gridspec_kw={"height_ratios": [1.3] + [1] * len(mats)})
    axes[0].plot(series, color="k", lw=1)
    for t in starts.tolist():
        axes[0].axvspan(t, t + window, color="tab:orange", alpha=max(0.03, min(0.25, 2 / K)))
    axes[0].set(title=f"{label}: the {K} replaced windows (overlaps look darker)", xlabel="time step",
                xlim=(0, len(series) - 1))
    for ax, (name, m) in zip(axes[1:], mats.items(), strict=True):
        im = ax.imshow(m, aspect="auto", cmap="RdBu_r", norm=norm, interpolation="nearest")
        ax.set_yticks(range(len(class_names)), [f"class {c}" for c in class_names])
        ax.set_xticks(ticks, [str(int(starts[order[i]])) for i in ticks])
        ax.set_title(name, loc="left", fontsize=10)
    axes[-1].set_xlabel("window start t (windows sorted by start)")
    fig.colorbar(im, ax=axes[1:], label="normalised shift", shrink=0.9)
    return fig


def maps_against_teacher(models: Mapping[str, nn.Module], X: np.ndarray, y: np.ndarray, X_pool: np.ndarray,
                         y_pool: np.ndarray, *, window: int, tau: float,
                         seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Sliding-window saliency maps of every model (the first is the teacher) under identical perturbations
    (one generator seed), and each other model's per-series Spearman with the teacher's maps."""
    maps = {name: saliency_map(m, X, y, X_pool=X_pool, y_pool=y_pool, window=window, tau=tau,
                               generator=torch.Generator().manual_seed(seed)) for name, m in models.items()}
    teacher = next(iter(maps.values()))
    rho = {name: saliency_similarity(teacher, m, per_series=True)["spearman"] for name, m in list(maps.items())[1:]}
    return maps, rho


def setting_note(data: Dataset, config: RunConfig, profile: str, student_seed: int) -> str:
    """The chapter's data set, the profile's TSD knobs (K, L, tau) and the models it follows."""
    return (f"**{data.name}**: {len(data.X_train)} training / {len(data.X_val)} validation / {len(data.X_test)} test "
            f"series of length T = {data.length}, {data.n_classes} classes. Profile `{profile}`: "
            f"K = {config.n_windows} windows of L = {config.window} steps, tau = {config.tau:g}; teacher "
            f"`{config.teacher}`, student `{config.student}` (here the CE student, seed {student_seed}).")


def bank_note(teacher: nn.Module, student: nn.Module, data: Dataset, config: RunConfig, X: torch.Tensor,
              y: torch.Tensor, *, seed: int = 0, draws: int = 5) -> str:
    """Build a :class:`~tsd_lib.losses.TSDTerm` bank of ``config.tsd_bank_size`` perturbations per training
    series, and compare its loss on the batch ``X`` (the first rows of the training set) with ``draws`` fresh
    draws of :func:`~tsd_lib.losses.tsd_loss`: sizes, build time, values and time per fresh draw."""
    if not config.tsd_bank_size:
        return "This profile trains with fresh perturbations (`tsd_bank_size` = 0): no bank to show."
    knobs = {"n_windows": config.n_windows, "window": config.window, "tau": config.tau}
    term = TSDTerm(teacher, data.X_train, data.y_train, bank_size=config.tsd_bank_size, seed=seed, **knobs)
    bank_loss = term(student, X, y, index=torch.arange(len(X))).item()  # the batch is rows 0..B-1 of the pool
    X_pool, y_pool = torch.as_tensor(data.X_train), torch.as_tensor(data.y_train)
    t0 = time.perf_counter()
    fresh = [tsd_loss(student, teacher, X, y, X_pool, y_pool, generator=torch.Generator().manual_seed(s),
                      **knobs).item() for s in range(draws)]
    fresh_s = (time.perf_counter() - t0) / draws
    return (f"Bank of {config.tsd_bank_size} perturbations x {len(data.X_train)} training series built in "
            f"{term.precompute_seconds:.2f} s ({term.bank.nbytes() / 2**20:.2f} MiB). One banked loss on our batch: "
            f"{bank_loss:.4f}; {'five' if draws == 5 else draws} fresh draws: {min(fresh):.4f} to {max(fresh):.4f} "
            f"({fresh_s * 1000:.0f} ms each, teacher forward included). Different draws give different values; "
            "what matters is that they agree on average.")


def teacher_comparison_plots(X: np.ndarray, y: np.ndarray, maps: Mapping[str, np.ndarray],
                             rho: Mapping[str, np.ndarray], class_names: Sequence[object], seed: int) -> list[Figure]:
    """One figure per series: every model's map (``maps``, the teacher first), each student's labelled with its
    Spearman with the teacher on that series (``rho`` from :func:`maps_against_teacher`)."""
    figs = []
    for i in range(len(X)):
        labels = {n: n if n not in rho else f"{n}: Spearman with teacher {rho[n][i]:.2f}" for n in maps}
        figs.append(report.compare_saliency(X[i], {labels[n]: m[i] for n, m in maps.items()},
                                           title=f"test series {i} (class {class_names[int(y[i])]}), seed {seed}"))
    return figs
