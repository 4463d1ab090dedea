"""Chapter 7: fidelity and saliency tables for readers, calibration, substitution series by series, and
the chapter's numbers for its hand-written prose (plain values for myst-nb's ``glue``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.analysis.logits import student_logits
from tsd_lib.analysis.seed_tables import METRIC_COLUMNS, mean_std, method_label
from tsd_lib.experiment import RunStore, get_dataset, load_teacher
from tsd_lib.metrics import agreement, ece, kl_teacher_student, softmax
from tsd_lib.profiles import Profile
from tsd_lib.report import reliability_diagram
from tsd_lib.report.style import COLUMN_WIDTH, method_color, method_colors, other_color
from tsd_lib.train import predict_logits

Probas = Mapping[tuple[str, int], np.ndarray]
KL_FLOOR = 1e-6

#: Chapter 7's metric columns in words, with units (the students' metrics of :data:`METRIC_COLUMNS` and more).
FIDELITY_COLUMNS = {**METRIC_COLUMNS, "js_teacher_student": "JS divergence, nats",
                    "ece": "expected calibration error (ECE)", "saliency_spearman": "saliency Spearman",
                    "saliency_cosine": "saliency cosine similarity", "saliency_topk_iou": "top-10 overlap (IoU)"}

#: :func:`substitution`'s columns in words.
SUBSTITUTION_COLUMNS = {"agreement": "agreement with the teacher",
                        "breaks (teacher right, student wrong)": "breaks (teacher right, student wrong)",
                        "repairs (teacher wrong, student right)": "repairs (teacher wrong, student right)",
                        "median per-series KL": "median per-series KL, nats",
                        "90th pct KL": "90th percentile per-series KL, nats"}


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


def ece_text(eces: pd.DataFrame) -> pd.DataFrame:
    """:func:`ece_table` for readers: one row per model by its name, the ECE as "mean ± std" over seeds to 3
    significant digits, and the number of seeds."""
    names = [m if m == "teacher" else f"{method_label(m.removesuffix(' student'))} student" for m in eces.index]
    return pd.DataFrame({"ECE (mean ± std over seeds)": [mean_std(r["mean"], r["std"], significant=3)
                                                          for _, r in eces.iterrows()],
                         "seeds": eces["seeds"].to_numpy()}, index=pd.Index(names, name="model"))


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
    """The :func:`substitution` table for readers: one row per student (by its method's name), columns in
    words with units, every cell "mean ± std" over seeds to 3 significant digits."""
    cols = subst.columns.get_level_values(0).unique()
    return pd.DataFrame({SUBSTITUTION_COLUMNS.get(c, c): [mean_std(subst.at[m, (c, "mean")], subst.at[m, (c, "std")],
                                                                   significant=3) for m in subst.index]
                         for c in cols}, index=pd.Index([method_label(m) for m in subst.index], name="student"))


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


def _key(method: str) -> str:
    """A method as part of a glue key: ``"kd+tsd"`` -> ``"kdtsd"``."""
    return method.replace("+", "")


def _stat(stats: pd.DataFrame, method: str, col: str, what: str = "mean") -> float:
    if method not in stats.index or (col, what) not in stats.columns:
        return float("nan")
    return float(stats.at[method, (col, what)])


def beyond_accuracy_numbers(fid: pd.DataFrame, sal: pd.DataFrame, eces: pd.DataFrame, subst: pd.DataFrame,
                            methods: Sequence[str] = ("ce", "kd", "tsd", "kd+tsd")) -> dict[str, float | str]:
    """Chapter 7's numbers for its prose, plain floats and names (NaN for a method the profile did not run):
    per method (keys with ``+`` dropped: ``kdtsd``) the mean and seed std over the grid of agreement, KL and
    saliency Spearman (``fid``, ``sal``: :func:`~tsd_lib.analysis.seed_tables.seed_stats`); on the chapter's
    dataset its student's ECE (:func:`ece_table`), median per-series KL, agreement, breaks and repairs
    (:func:`substitution`); the teacher's ECE, the best-calibrated student, the student closest to the
    teacher by median per-series KL and the one that agrees most."""
    out: dict[str, float | str] = {}
    for m in methods:
        k = _key(m)
        for name, stats, col in (("agreement", fid, "agreement"), ("kl", fid, "kl_teacher_student"),
                                 ("spearman", sal, "saliency_spearman")):
            out[f"{name}_{k}"] = _stat(stats, m, col)
            out[f"{name}_{k}_std"] = _stat(stats, m, col, "std")
        row = f"{m} student"
        out[f"ece_{k}"] = float(eces.at[row, "mean"]) if row in eces.index else float("nan")
        for name, col in (("median_kl", "median per-series KL"), ("subst_agreement", "agreement"),
                          ("breaks", "breaks (teacher right, student wrong)"),
                          ("repairs", "repairs (teacher wrong, student right)")):
            out[f"{name}_{k}"] = _stat(subst, m, col)
    students = eces["mean"].drop("teacher")
    best = students.idxmin()
    out |= {"ece_teacher": float(eces.at["teacher", "mean"]), "ece_best": float(students[best]),
            "ece_best_student": f"{method_label(best.removesuffix(' student'))} student"}
    kl, agree = subst[("median per-series KL", "mean")], subst[("agreement", "mean")]
    out |= {"closest_student": method_label(kl.idxmin()), "closest_median_kl": float(kl.min()),
            "closest_agreement": float(agree[kl.idxmin()]), "top_agreement_student": method_label(agree.idxmax()),
            "top_agreement": float(agree.max())}
    return out


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
