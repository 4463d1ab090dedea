"""Chapter 5's views of TSD: the per-class shift matrices of teacher and student on one series, and
teacher and student saliency maps side by side."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import CenteredNorm
from matplotlib.figure import Figure
from torch import nn

from tsd_lib import report
from tsd_lib.analysis.seed_tables import method_label
from tsd_lib.data import Dataset
from tsd_lib.experiment import RunConfig, get_dataset, load_student, load_teacher, run
from tsd_lib.losses import TSDTerm, tsd_loss
from tsd_lib.metrics import saliency_similarity
from tsd_lib.report.style import COLUMN_WIDTH
from tsd_lib.saliency.maps import saliency_map

if TYPE_CHECKING:
    from tsd_lib.profiles import Profile


def tsd_setting(profile: Profile, dataset: str) -> tuple[RunConfig, Dataset, nn.Module, nn.Module]:
    """Where chapter 5 starts: ``profile``'s KD+TSD config on ``dataset`` (first student seed), its data set,
    its teacher and the CE student of the same seed (that run trained and stored first when missing)."""
    config = profile.base_config(dataset, method="kd+tsd", seed=profile.seeds[0])
    ce = profile.base_config(dataset, method="ce", seed=profile.seeds[0])
    run(ce)
    return config, get_dataset(config), load_teacher(config), load_student(ce)


def first_batch(data: Dataset, size: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first ``size`` training series and labels (a batch), and the donor pool: the whole training set."""
    B = min(size, len(data.X_train))
    X_pool, y_pool = torch.as_tensor(data.X_train), torch.as_tensor(data.y_train)
    return X_pool[:B], y_pool[:B], X_pool, y_pool


def followed_heatmaps(X: torch.Tensor, starts: torch.Tensor, s_T: torch.Tensor, s_S: torch.Tensor, b: int, *,
                      window: int, class_names: Sequence[object]) -> Figure:
    """:func:`shift_heatmaps` of series ``b`` of the batch: the teacher's and the CE student's shifts."""
    return shift_heatmaps(X[b, 0].numpy(), starts[b].numpy(),
                          {"teacher  $\\hat s_T$": s_T[b].numpy(), "CE student  $\\hat s_S$": s_S[b].detach().numpy()},
                          window=window, class_names=class_names, label=f"series {b}")


def grad_norm(model: nn.Module) -> torch.Tensor:
    """The L2 norm of ``model``'s parameter gradients (those that have one)."""
    return torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None))


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
    fig, axes = plt.subplots(1 + len(mats), 1, figsize=(COLUMN_WIDTH, 5.6), layout="constrained",
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


@dataclass
class BankComparison:
    """A :class:`~tsd_lib.losses.TSDTerm` bank against fresh draws of :func:`~tsd_lib.losses.tsd_loss` on one
    batch: the bank's size per series, the training series it covers, its build time and memory, the loss with
    the bank, the loss of each fresh draw and the time one fresh draw takes (teacher forward included)."""

    bank_size: int
    n_series: int
    build_seconds: float
    mebibytes: float
    bank_loss: float
    fresh: list[float]
    fresh_seconds: float


def bank_comparison(teacher: nn.Module, student: nn.Module, data: Dataset, config: RunConfig, X: torch.Tensor,
                    y: torch.Tensor, *, bank_size: int, seed: int = 0, draws: int = 5) -> BankComparison:
    """Build a :class:`~tsd_lib.losses.TSDTerm` bank of ``bank_size`` perturbations per training series (TSD's
    knobs from ``config``) and compare its loss on the batch ``X`` (the first rows of the training set) with
    ``draws`` fresh draws of :func:`~tsd_lib.losses.tsd_loss` (generator seeds ``0..draws-1``)."""
    if bank_size < 1:
        raise ValueError(f"bank_size must be positive, got {bank_size}")
    knobs = {"n_windows": config.n_windows, "window": config.window, "tau": config.tau}
    term = TSDTerm(teacher, data.X_train, data.y_train, bank_size=bank_size, seed=seed, **knobs)
    bank_loss = term(student, X, y, index=torch.arange(len(X))).item()  # the batch is rows 0..B-1 of the pool
    X_pool, y_pool = torch.as_tensor(data.X_train), torch.as_tensor(data.y_train)
    t0 = time.perf_counter()
    fresh = [tsd_loss(student, teacher, X, y, X_pool, y_pool, generator=torch.Generator().manual_seed(s),
                      **knobs).item() for s in range(draws)]
    return BankComparison(bank_size, len(data.X_train), term.precompute_seconds, term.bank.nbytes() / 2**20,
                          bank_loss, fresh, (time.perf_counter() - t0) / draws)


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


def before_after_maps(teacher: nn.Module, configs: Mapping[tuple[str, int], RunConfig], data: Dataset, *,
                      seed: int, window: int, tau: float, n_show: int = 3,
                      after: Sequence[str] = ("kd+tsd",)) -> tuple[list[Figure], dict[str, Any]]:
    """The teacher's, the CE student's (before) and the maps of the students of the methods ``after`` (KD+TSD
    by default; labelled "KD+TSD student (after)") on the first ``n_show`` test series (students of ``seed``,
    loaded from ``configs``), one figure per series, and each student's per-series Spearman with the teacher
    (:func:`maps_against_teacher`)."""
    n = min(n_show, len(data.X_test))
    X, y = data.X_test[:n], data.y_test[:n]
    models = {"teacher": teacher, "CE student (before)": load_student(configs["ce", seed]),
              **{f"{method_label(m)} student (after)": load_student(configs[m, seed]) for m in after}}
    maps, rho = maps_against_teacher(models, X, y, data.X_train, data.y_train, window=window, tau=tau, seed=0)
    return teacher_comparison_plots(X, y, maps, rho, data.class_names, seed=seed), rho
