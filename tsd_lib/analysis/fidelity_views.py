"""Chapter 7: calibration, substitution series by series, and the chapter's "What we saw"."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.analysis.logits import student_logits
from tsd_lib.experiment import RunStore, get_dataset, load_teacher
from tsd_lib.metrics import agreement, ece, kl_teacher_student, softmax
from tsd_lib.profiles import Profile
from tsd_lib.report import reliability_diagram
from tsd_lib.report.style import COLUMN_WIDTH, method_color, method_colors, other_color
from tsd_lib.train import predict_logits

Probas = Mapping[tuple[str, int], np.ndarray]
KL_FLOOR = 1e-6


def tsd_colors(methods: Sequence[str]) -> list[str]:
    """Each method's one colour (:func:`~tsd_lib.report.style.method_colors`): the TSD methods warm
    (vermillion, orange, wine), the others cool or grey, as in every figure of the book."""
    return method_colors(methods)


def reliability_plot(y: np.ndarray, p_teacher: np.ndarray, p_student: Probas, methods: Sequence[str], seed: int,
                     title: str) -> Figure:
    """Reliability diagram of the teacher and the ``methods``' students of one ``seed``."""
    fig, ax = plt.subplots(figsize=(6.6, 4.4), layout="constrained")
    reliability_diagram(y, {"teacher": p_teacher, **{f"{m} student": p_student[m, seed] for m in methods}},
                        n_bins=10, ax=ax)
    ax.set_title(title, fontsize=10)
    return fig


def ece_table(y: np.ndarray, p_teacher: np.ndarray, p_student: Probas) -> pd.DataFrame:
    """ECE per student (mean, std over seeds, seeds) and of the teacher (last row, no std)."""
    eces = pd.DataFrame([{"model": f"{m} student", "seed": s, "ECE": ece(y, p)} for (m, s), p in p_student.items()])
    table = eces.groupby("model", sort=False)["ECE"].agg(["mean", "std"])
    table.loc["teacher"] = [ece(y, p_teacher), np.nan]
    table["seeds"] = eces.groupby("model").size().reindex(table.index).fillna(1).astype(int)
    return table


def substitution(y: np.ndarray, p_teacher: np.ndarray, p_student: Probas,
                 methods: Sequence[str]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per method, mean and std over seeds of agreement, breaks (teacher right, student wrong), repairs
    and the per-series KL's median and 90th percentile; and each method's per-series KL, seeds pooled."""
    teacher_right = p_teacher.argmax(1) == y
    rows, kl_series = [], {}
    for (m, s), p in p_student.items():
        kl = np.array([kl_teacher_student(p_teacher[i:i + 1], p[i:i + 1]) for i in range(len(y))])
        kl_series.setdefault(m, []).append(kl)
        student_right = p.argmax(1) == y
        rows.append({"method": m, "seed": s, "agreement": agreement(p_teacher, p),
                     "breaks (teacher right, student wrong)": float(np.mean(teacher_right & ~student_right)),
                     "repairs (teacher wrong, student right)": float(np.mean(~teacher_right & student_right)),
                     "median per-series KL": float(np.median(kl)), "90th pct KL": float(np.quantile(kl, 0.9))})
    table = pd.DataFrame(rows).drop(columns="seed").groupby("method", sort=False).agg(["mean", "std"])
    return table.reindex(list(methods)), {m: np.concatenate(v) for m, v in kl_series.items()}


def substitution_text(subst: pd.DataFrame) -> pd.DataFrame:
    """The :func:`substitution` table as "mean ± std" text, one row per student."""
    cols = subst.columns.get_level_values(0).unique()
    return pd.DataFrame({c: [f"{subst.at[m, (c, 'mean')]:.4f} ± {subst.at[m, (c, 'std')]:.4f}" for m in subst.index]
                         for c in cols}, index=pd.Index(subst.index, name="student"))


def kl_cdf_plot(kl_series: Mapping[str, np.ndarray], title: str) -> Figure:
    """Share of test series at or below each per-series KL, one step line per student (log x, floored)."""
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 3.6), layout="constrained")
    for i, (m, kl) in enumerate(kl_series.items()):
        kl = np.sort(kl)
        ax.step(np.maximum(kl, KL_FLOOR), np.arange(1, len(kl) + 1) / len(kl), where="post",
                color=method_color(m, other_color(i)), label=f"{m} student")
    ax.set(xscale="log", xlabel=f"per-series KL(teacher || student) (nats, floored at {KL_FLOOR:g})",
           ylabel="share of test series\nat or below")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)
    return fig


def _gap(stats: pd.DataFrame, a: str, b: str, col: str, higher: bool = True) -> str:
    ma, mb = stats.at[a, (col, "mean")], stats.at[b, (col, "mean")]
    noise = np.nanmax([stats.at[a, (col, "std")], stats.at[b, (col, "std")]])
    better = (ma > mb) if higher else (ma < mb)
    word = "better" if better else ("equal" if ma == mb else "worse")
    if np.isnan(noise):
        tail = "single seed: no noise estimate"
    else:
        tail = "beyond the seed spread" if abs(ma - mb) > noise else "within the seed spread"
    return f"{ma:.3f} vs {mb:.3f} ({word}; {tail})"


def beyond_accuracy_summary(fid: pd.DataFrame, sal: pd.DataFrame, eces: pd.DataFrame, subst: pd.DataFrame, *,
                            dataset: str, profile: str, n_seeds: int) -> str:
    """Chapter 7's "What we saw": fidelity and saliency of KD+TSD against KD (``fid``, ``sal`` from
    :func:`~tsd_lib.analysis.tables.seed_stats`), calibration (:func:`ece_table`) and substitution."""
    lines = []
    if {"kd", "kd+tsd"} <= set(fid.index):
        lines += [
            f"- Across the grid, KD+TSD vs KD: agreement {_gap(fid, 'kd+tsd', 'kd', 'agreement')}, "
            f"KL(teacher || student) {_gap(fid, 'kd+tsd', 'kd', 'kl_teacher_student', higher=False)}, "
            f"JS {_gap(fid, 'kd+tsd', 'kd', 'js_teacher_student', higher=False)}.",
            f"- Saliency Spearman, KD+TSD vs KD: {_gap(sal, 'kd+tsd', 'kd', 'saliency_spearman')}; "
            f"vs CE: {_gap(sal, 'kd+tsd', 'ce', 'saliency_spearman')}.",
        ]
    students, t_ece = eces["mean"].drop("teacher"), eces.at["teacher", "mean"]
    best = students.idxmin()
    lines.append(f"- Calibration on {dataset}: the best-calibrated student is the **{best}** (mean ECE "
                 f"{students[best]:.3f}), {'better' if students[best] < t_ece else 'no better'} than the teacher "
                 f"({t_ece:.3f}); " + ", ".join(f"{m}: {v:.3f}" for m, v in students.items()) + ".")
    agree, kl = subst[("agreement", "mean")], subst[("median per-series KL", "mean")]
    closest = kl.idxmin()
    lines.append(f"- Substitution on {dataset}: the student closest to the teacher by median per-series KL is "
                 f"**{closest}** ({kl[closest]:.4f}), with top-1 agreement {agree[closest]:.3f}; the highest agreement "
                 f"is {agree.idxmax()}'s ({agree.max():.3f}).")
    if "kd+tsd" in agree and "kd" in agree:
        safer = agree["kd+tsd"] >= agree["kd"] and kl["kd+tsd"] <= kl["kd"]
        lines.append("- Conclusion for this dataset and profile: " + (
            "the KD+TSD student is at least as safe a substitute as the KD student on both counts (agreement and KL)."
            if safer else "the evidence does not show KD+TSD as the safer substitute here: it is not ahead of KD on "
            "both agreement and KL."))
    lines.append(f"- Profile `{profile}`, {n_seeds} seed(s): treat differences within one seed std as noise.")
    return "\n".join(lines)


@dataclass
class Predictions:
    """The test-split probabilities chapter 7 compares on one dataset: ``p_teacher`` and, keyed
    ``(method, seed)``, every student's; ``methods`` in order, ``y`` the labels."""

    methods: list[str]
    y: np.ndarray
    p_teacher: np.ndarray
    p_student: dict[tuple[str, int], np.ndarray]


def predictions_on_test(profile: Profile, dataset: str, methods: Sequence[str] = ("ce", "kd", "kd+tsd"),
                     store: RunStore | None = None) -> Predictions:
    """The teacher's and the students' (``methods`` the profile runs, else all of them; every
    student seed) test probabilities from the stored models (a missing run is trained first)."""
    methods = [m for m in methods if m in profile.methods] or list(methods)
    configs = {(m, s): profile.base_config(dataset, method=m, seed=s) for m in methods for s in profile.seeds}
    first = next(iter(configs.values()))
    data = get_dataset(first)
    p_student = {key: softmax(student_logits(c, data.X_test, store)) for key, c in configs.items()}
    return Predictions(methods, data.y_test, softmax(predict_logits(load_teacher(first, store), data.X_test)),
                       p_student)
