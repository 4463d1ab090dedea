"""Chapter 2's look at logit distillation: softened targets (and how soft, in numbers), the tau^2 factor of
the KD gradient, the KD term during training and how faithfully a student follows the teacher's
probabilities."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from tsd_lib.analysis.seed_tables import gap_words, mean_std, significant, students_table
from tsd_lib.experiment import RunConfig, RunStore, load_student, run
from tsd_lib.losses import kd_loss
from tsd_lib.metrics import softmax
from tsd_lib.report import learning_curves
from tsd_lib.report.style import COLUMN_WIDTH, NEUTRAL, method_color, other_color, panel_grid
from tsd_lib.train import predict_logits

if TYPE_CHECKING:
    from tsd_lib.profiles import Profile

#: The temperatures of the entropy curve (log-spaced).
ENTROPY_GRID = np.geomspace(0.5, 64, 40)


def median_margin_index(proba: np.ndarray, y: np.ndarray) -> int:
    """A typical series: among the correctly classified ones (all, if none is), the one with the median
    margin between the two largest probabilities."""
    right = np.flatnonzero(proba.argmax(1) == y)
    pool = right if len(right) else np.arange(len(proba))
    top2 = np.sort(proba[pool], axis=1)
    margin = top2[:, -1] - top2[:, -2]
    return int(pool[np.argsort(margin)[len(margin) // 2]])


def soft_entropy(logits: np.ndarray, tau: float) -> float:
    """Mean entropy (nats) of ``softmax(logits / tau)`` over the rows."""
    p = softmax(logits, tau=tau)
    return float(-(p * np.log(p + 1e-12)).sum(1).mean())


def temperature_plot(logits: np.ndarray, i: int, y_i: int, taus: Sequence[float], profile_tau: float) -> Figure:
    """Left: series ``i``'s softened teacher probabilities at each of ``taus``; right: the mean entropy of
    the softened targets over :data:`ENTROPY_GRID`, against the uniform distribution's."""
    k = logits.shape[1]
    fig, axes = plt.subplots(1, 2, figsize=(COLUMN_WIDTH, 3.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1.3, 1]})
    width = 0.8 / len(taus)
    for j, tau in enumerate(taus):
        axes[0].bar(np.arange(k) + (j - len(taus) / 2 + 0.5) * width, softmax(logits[i], tau=tau), width=width,
                    color=plt.cm.viridis(j / max(len(taus) - 1, 1)), label=f"τ = {tau:g}")
    axes[0].axhline(1 / k, color="0.5", ls=":", lw=1)
    axes[0].set_xticks(range(k), [f"class {c}" for c in range(k)])
    axes[0].set(ylabel="teacher probability", ylim=(0, 1), title=f"test series {i} (true class {y_i})")
    axes[0].legend(fontsize=9, loc="best")
    axes[1].semilogx(ENTROPY_GRID, [soft_entropy(logits, t) for t in ENTROPY_GRID], color=method_color("teacher"))
    axes[1].axhline(np.log(k), color="0.5", ls=":", lw=1, label="uniform (log k)")
    axes[1].axvline(profile_tau, color=NEUTRAL, ls="--", lw=1, label=f"τ = {profile_tau:g} (profile)")
    axes[1].set(xlabel="temperature τ", ylabel="mean entropy (nats)",
                title="softness of the targets, test set")
    axes[1].legend(fontsize=9, loc="best")
    return fig


def temperature_view(logits: np.ndarray, y: np.ndarray, tau: float) -> Figure:
    """:func:`temperature_plot` of a typical series (:func:`median_margin_index`) at τ = 1, 2, 4, 16 and ``tau``."""
    i = median_margin_index(softmax(logits), y)
    return temperature_plot(logits, i, y[i], taus=sorted({1.0, 2.0, 4.0, tau, 16.0}), profile_tau=tau)


def student_logits(config: RunConfig, X: np.ndarray, store: RunStore | None = None) -> np.ndarray:
    """The logits on ``X`` of ``config``'s student, trained and stored first when the store lacks it."""
    run(config, store)
    return predict_logits(load_student(config, store), X)


def kd_gradient_table(z_student: torch.Tensor, z_teacher: torch.Tensor,
                      taus: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)) -> pd.DataFrame:
    """Per temperature: the norm of the gradient, with respect to the student's logits, of the plain KL
    and of ``kd_loss`` (which carries the tau^2 factor)."""
    rows = []
    for t in taus:
        z = z_student.detach().clone().requires_grad_(True)
        plain = F.kl_div(F.log_softmax(z / t, 1), F.log_softmax(z_teacher / t, 1), reduction="batchmean",
                         log_target=True)
        g_plain, = torch.autograd.grad(plain, z)
        g_kd, = torch.autograd.grad(kd_loss(z, z_teacher, tau=t), z)
        rows.append({"temperature τ": t, "gradient norm, plain KL": g_plain.norm().item(),
                     "gradient norm, τ² KL (kd_loss)": g_kd.norm().item()})
    return pd.DataFrame(rows).set_index("temperature τ")


def gradient_ratios(grads: pd.DataFrame) -> tuple[float, float]:
    """How much the plain and the tau^2-scaled gradient shrink from the first to the last temperature."""
    return float(grads.iloc[0, 0] / grads.iloc[-1, 0]), float(grads.iloc[0, 1] / grads.iloc[-1, 1])


def kd_table(frame: pd.DataFrame, metrics: Sequence[str], methods: Sequence[str],
             teacher_record: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`~tsd_lib.analysis.seed_tables.students_table` of the students (methods by name, headers in words,
    3 significant digits) with a ``teacher`` row below: its test accuracy and AUC-PR, agreement 1 and KL 0
    (the teacher against itself), "–" for other metrics."""
    table = students_table(frame, metrics, methods)
    own = {"accuracy": teacher_record["test_accuracy"], "auc_pr": teacher_record["test_auc_pr"],
           "agreement": 1.0, "kl_teacher_student": 0.0}
    table.loc["teacher"] = [significant(own.get(m)) for m in metrics]
    return table


def fidelity_scatter(p_teacher: np.ndarray, students: Mapping[str, np.ndarray], title: str) -> Figure:
    """Per student (a panel each, two per row): the teacher's probability of its predicted class (x) against
    the student's probability of that class (y), in the student's method colour; open circles: the student
    predicts another class."""
    top = p_teacher.argmax(1)
    rows = np.arange(len(top))
    fig, axes = panel_grid(len(students), 3.7, head=0.6, sharey=True)
    for j, (ax, (label, p_s)) in enumerate(zip(axes, students.items(), strict=False)):
        agree = (p_s.argmax(1) == top)[:, None]
        color = np.array([matplotlib.colors.to_rgba(method_color(label, other_color(j)), alpha=0.6)])
        ax.scatter(p_teacher[rows, top], p_s[rows, top], s=14, linewidths=0.8, label=label,
                   facecolors=np.where(agree, color, np.array([[1.0, 1.0, 1.0, 0.0]])),  # open: disagrees
                   edgecolors=np.where(agree, color, np.array([[0.0, 0.0, 0.0, 0.8]])))
        ax.plot([0, 1], [0, 1], color="0.5", ls=":")
        ax.set(xlabel="teacher probability of its class", title=label, xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    for ax in axes[::2]:  # the first panel of each row
        ax.set_ylabel("student probability\nof the teacher's class")
    fig.suptitle(title, fontsize=10)
    return fig


def kd_term(history: Mapping[str, Any]) -> dict[str, float]:
    """The KD term of a KD student's training loss in epoch 1 (``first``) and at its best epoch (``best``),
    and that epoch (``best_epoch``)."""
    kd = [row.get("train_kd", np.nan) for row in history["epochs"]]
    best = int(history["best_epoch"])
    return {"first": float(kd[0]), "best": float(kd[best - 1]), "best_epoch": best}


def softening(logits: np.ndarray, tau: float) -> dict[str, float]:
    """How much ``tau`` softens the teacher's outputs (``logits`` on the test set): the mean probability of
    the top class at τ = 1 (``top_1``) and at ``tau`` (``top_tau``), the mean entropy at ``tau`` in nats
    (``entropy_tau``) and the uniform distribution's, log k (``entropy_uniform``)."""
    return {"top_1": float(softmax(logits).max(1).mean()), "top_tau": float(softmax(logits, tau=tau).max(1).mean()),
            "entropy_tau": soft_entropy(logits, tau), "entropy_uniform": float(np.log(logits.shape[1]))}


def fidelity_view(teacher_logits: np.ndarray, configs: Mapping[tuple[str, int], RunConfig], methods: Sequence[str],
                  seed: int, X: np.ndarray, name: str, store: RunStore | None = None) -> Figure:
    """:func:`fidelity_scatter` of the teacher (``teacher_logits`` on ``X``) against the stored student of
    each of ``methods`` for student ``seed`` (``configs`` keyed by method and seed)."""
    students = {f"{m.upper()} student (seed {seed})": softmax(predict_logits(load_student(configs[m, seed], store), X))
                for m in methods}
    return fidelity_scatter(softmax(teacher_logits), students,
                            title=f"{name} test series (open circles: student disagrees with the teacher)")


def shared_loss_curves(histories: Mapping[str, Mapping[str, Any]], name: str, seed: int) -> Figure:
    """Learning curves of the losses every student has (training cross-entropy, validation loss), one line per
    history (``{"CE": history, "KD": history}``)."""
    return learning_curves(histories, keys=("train_ce", "val_loss"),
                           title=f"{name}: {' vs '.join(histories)} student, seed {seed} (vertical lines: best epoch)")


def temperature_runs(profile: Profile, dataset: str, method: str = "kd", *, teacher_seed: int) -> pd.DataFrame:
    """The records of ``method``'s students on ``dataset`` at every temperature the profile's main grid trains
    (its ``grids`` entry, or the profile's own τ), one row per run with its temperature in a ``tau`` column
    (a missing run is trained first)."""
    configs = [c for c in profile.main_configs()
               if c.dataset == dataset and c.method == method and c.teacher_seed == teacher_seed]
    if not configs:
        raise ValueError(f"the profile {profile.name!r} trains no {method!r} students on {dataset!r}")
    return pd.DataFrame([{**run(c), "tau": c.loss_settings()[method].tau} for c in configs])


def temperature_table(runs: pd.DataFrame, reference: pd.DataFrame, *, profile_tau: float,
                      metric: str = "accuracy", select_on: str = "val_auc_pr") -> tuple[pd.DataFrame, dict[str, Any]]:
    """A distilled method at each temperature (``runs``, from :func:`temperature_runs`) against the students of
    ``reference`` (one method's runs, CE say): a table for readers, one row per τ (test ``metric`` and
    ``select_on`` as "mean ± std" over seeds, the profile's τ and the one validation picks marked), and the
    numbers a chapter quotes: how many temperatures there are (``n_taus``) and at how many the mean test
    ``metric`` lies below the reference's (``n_below``), the reference's mean (``reference``), the profile's
    τ and its mean (``profile_tau``, ``profile_mean``), the τ with the best mean ``select_on`` (``val_tau``,
    the way chapter 6 selects a setting) and its mean test ``metric`` (``val_mean``), and the best mean test
    ``metric`` over the temperatures (``best_mean``) with its τ (``best_tau``); and the validation pick against
    the reference as :func:`~tsd_lib.analysis.seed_tables.mean_gap` reads it, to 3 decimals (``val_gap``,
    ``val_size``, ``val_side``, ``val_spread``, ``val_reading``)."""
    agg = runs.groupby("tau")[[metric, select_on]].agg(["mean", "std"]).sort_index()
    ref, ref_std = float(reference[metric].mean()), float(reference[metric].std())
    val_tau = float(agg[(select_on, "mean")].idxmax())
    means = agg[(metric, "mean")]
    mark = {t: ", ".join(w for w, on in (("the profile's", t == profile_tau), ("validation's pick", t == val_tau))
                         if on) for t in agg.index}
    table = pd.DataFrame({
        f"test {metric.replace('_', ' ')}": [mean_std(agg.at[t, (metric, "mean")], agg.at[t, (metric, "std")],
                                                      significant=3) for t in agg.index],
        select_on.replace("val_", "validation ").replace("auc_pr", "macro AUC-PR"):
            [mean_std(agg.at[t, (select_on, "mean")], agg.at[t, (select_on, "std")], significant=3)
             for t in agg.index],
        "note": [mark[t] for t in agg.index]}, index=pd.Index([f"{t:g}" for t in agg.index], name="τ"))
    numbers = {"n_taus": len(agg), "n_below": int((means < ref).sum()), "reference": ref,
               "profile_tau": float(profile_tau),
               "profile_mean": float(means.get(profile_tau, np.nan)), "val_tau": val_tau,
               "val_mean": float(means[val_tau]), "best_tau": float(means.idxmax()), "best_mean": float(means.max())}
    gap = gap_words(means[val_tau], ref, [agg.at[val_tau, (metric, "std")], ref_std], decimals=3)  # as quoted
    numbers |= {f"val_{k}": v for k, v in gap.items()}
    return table, numbers
