"""Evaluation metrics: classification quality, teacher-student fidelity, saliency agreement.

All functions take NumPy arrays (torch tensors are converted) and return Python floats or
small dicts / arrays. ``proba`` is an ``(n, k)`` matrix of class probabilities (rows sum to
one; use :func:`softmax` on logits), ``y`` integer labels in ``0..k-1``.

* Classification (the TSD paper reports accuracy, ROC-AUC, macro AUC-PRC and micro average
  precision): :func:`accuracy`, :func:`auc_pr`, :func:`average_precision_micro`,
  :func:`roc_auc`, :func:`classification_metrics`.
* Fidelity of a student to its teacher ("safe substitution"): :func:`agreement`,
  :func:`kl_teacher_student`, :func:`js_teacher_student`, :func:`ece`,
  :func:`reliability_curve`, :func:`fidelity_metrics`.
* Saliency maps shaped ``(n, length)``: :func:`saliency_similarity`,
  :func:`saliency_precision`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from scipy.special import rel_entr
from scipy.stats import rankdata
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

__all__ = [
    "ReliabilityCurve",
    "accuracy",
    "agreement",
    "auc_pr",
    "average_precision_micro",
    "classification_metrics",
    "ece",
    "fidelity_metrics",
    "js_teacher_student",
    "kl_teacher_student",
    "reliability_curve",
    "roc_auc",
    "saliency_precision",
    "saliency_similarity",
    "softmax",
]

_SUM_TOL = 1e-3  # tolerance on row sums when true probabilities are required


# --------------------------------------------------------------------------- validation


def _to_numpy(a: Any) -> np.ndarray:
    """Convert array-likes (including torch tensors, on any device) to a NumPy array."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _proba(proba: Any, name: str = "proba", strict: bool = False) -> np.ndarray:
    """``(n, k)`` float64 matrix; a 1-D vector is read as P(class 1) of a binary problem."""
    p = _to_numpy(proba).astype(np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ValueError(f"{name} must be shaped (n_samples, n_classes), got {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    if strict and p.size:
        sums = p.sum(axis=1)
        if (p < 0).any() or np.abs(sums - 1.0).max() > _SUM_TOL:
            raise ValueError(
                f"{name} must hold probabilities (non-negative rows summing to 1; max deviation "
                f"{np.abs(sums - 1.0).max():.3g}); apply softmax to logits first"
            )
    return p


def _labels(y: Any, proba: np.ndarray, name: str = "proba") -> np.ndarray:
    """1-D int64 labels matching ``proba`` rows and in ``0..k-1``."""
    y = _to_numpy(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D integer labels, got shape {y.shape}")
    if y.shape[0] != proba.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels but {name} has {proba.shape[0]} rows")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError("y must hold integer class labels")
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= proba.shape[1]):
        raise ValueError(f"labels must lie in 0..{proba.shape[1] - 1}, got range [{y.min()}, {y.max()}]")
    return y


def _pair(p_teacher: Any, p_student: Any) -> tuple[np.ndarray, np.ndarray]:
    p = _proba(p_teacher, "p_teacher", strict=True)
    q = _proba(p_student, "p_student", strict=True)
    if p.shape != q.shape:
        raise ValueError(f"p_teacher {p.shape} and p_student {q.shape} must have the same shape")
    return p, q


def softmax(logits: Any, tau: float = 1.0, axis: int = -1) -> np.ndarray:
    """Temperature softmax ``exp(z/tau) / sum exp(z/tau)`` (numerically stable), float64."""
    z = _to_numpy(logits).astype(np.float64) / tau
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


# ----------------------------------------------------------------------- classification


def accuracy(y: Any, proba: Any) -> float:
    """Share of samples whose arg-max class equals the label."""
    p = _proba(proba)
    y = _labels(y, p)
    if y.size == 0:
        return math.nan
    return float(np.mean(p.argmax(axis=1) == y))


def auc_pr(y: Any, proba: Any, method: str = "ap") -> float:
    """Macro AUC-PRC: mean over classes of the one-vs-rest area under the precision-recall curve.

    ``method="ap"`` (default) uses average precision ``AP = sum_n (R_n - R_{n-1}) P_n``
    (sklearn's ``average_precision_score``); ``method="trapezoid"`` integrates the PR curve
    with the trapezoidal rule (``auc(recall, precision)``), the definition in the TSD
    authors' evaluation script. Every class (both classes of a binary problem) counts;
    classes absent from ``y`` are skipped; ``nan`` when none is present.
    """
    if method not in {"ap", "trapezoid"}:
        raise ValueError(f"method must be 'ap' or 'trapezoid', got {method!r}")
    p = _proba(proba)
    y = _labels(y, p)
    scores = []
    for c in range(p.shape[1]):
        pos = y == c
        if not pos.any():
            continue
        if method == "ap":
            scores.append(average_precision_score(pos, p[:, c]))
        else:
            precision, recall, _ = precision_recall_curve(pos, p[:, c])
            scores.append(auc(recall, precision))
    return float(np.mean(scores)) if scores else math.nan


def average_precision_micro(y: Any, proba: Any) -> float:
    """Micro average precision: AP of all (sample, class) one-vs-rest decisions pooled."""
    p = _proba(proba)
    y = _labels(y, p)
    if y.size == 0:
        return math.nan
    onehot = np.eye(p.shape[1], dtype=np.int64)[y]
    return float(average_precision_score(onehot.ravel(), p.ravel()))


def roc_auc(y: Any, proba: Any) -> float:
    """ROC-AUC; binary: AUC of ``proba[:, 1]``; multi-class: one-vs-rest macro average.

    Classes without both positives and negatives in ``y`` are skipped; ``nan`` when the
    score is undefined (e.g. a single class present).
    """
    p = _proba(proba)
    y = _labels(y, p)
    k = p.shape[1]
    classes = [1] if k == 2 else range(k)
    scores = [roc_auc_score(y == c, p[:, c]) for c in classes if 0 < np.sum(y == c) < y.size]
    return float(np.mean(scores)) if scores else math.nan


def classification_metrics(y: Any, proba: Any) -> dict[str, float]:
    """``accuracy``, ``auc_pr`` (macro AP), ``auc_pr_trapezoid`` (the TSD authors' macro
    AUC-PRC: trapezoidal area under each class's PR curve), ``roc_auc`` and ``ap_micro``."""
    return {
        "accuracy": accuracy(y, proba),
        "auc_pr": auc_pr(y, proba),
        "auc_pr_trapezoid": auc_pr(y, proba, "trapezoid"),
        "roc_auc": roc_auc(y, proba),
        "ap_micro": average_precision_micro(y, proba),
    }


# ----------------------------------------------------------------------------- fidelity


def agreement(p_teacher: Any, p_student: Any) -> float:
    """Top-1 agreement: share of samples where teacher and student predict the same class."""
    p = _proba(p_teacher, "p_teacher")
    q = _proba(p_student, "p_student")
    if p.shape != q.shape:
        raise ValueError(f"p_teacher {p.shape} and p_student {q.shape} must have the same shape")
    if p.shape[0] == 0:
        return math.nan
    return float(np.mean(p.argmax(axis=1) == q.argmax(axis=1)))


def kl_teacher_student(p_teacher: Any, p_student: Any, eps: float = 1e-12) -> float:
    """Mean over samples of ``KL(p_T || p_S) = sum_c p_T,c ln(p_T,c / p_S,c)`` (nats).

    Student probabilities are clipped below at ``eps``; teacher zeros contribute 0.
    """
    p, q = _pair(p_teacher, p_student)
    if p.shape[0] == 0:
        return math.nan
    kl = rel_entr(np.clip(p, 0.0, 1.0), np.clip(q, eps, 1.0)).sum(axis=1)
    return float(np.maximum(kl, 0.0).mean())


def js_teacher_student(p_teacher: Any, p_student: Any) -> float:
    """Mean Jensen-Shannon divergence ``(KL(p||m) + KL(q||m)) / 2``, ``m = (p+q)/2`` (nats, <= ln 2)."""
    p, q = _pair(p_teacher, p_student)
    if p.shape[0] == 0:
        return math.nan
    p, q = np.clip(p, 0.0, 1.0), np.clip(q, 0.0, 1.0)
    m = 0.5 * (p + q)
    js = 0.5 * (rel_entr(p, m).sum(axis=1) + rel_entr(q, m).sum(axis=1))
    return float(np.clip(js, 0.0, math.log(2.0)).mean())


class ReliabilityCurve(NamedTuple):
    """Per-bin mean confidence, accuracy (``nan`` for empty bins) and sample counts."""

    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray


def reliability_curve(y: Any, proba: Any, n_bins: int = 15) -> ReliabilityCurve:
    """Top-1 confidence binned into ``n_bins`` equal-width bins ``((b-1)/n_bins, b/n_bins]``.

    Returns per-bin mean confidence, accuracy and counts, for reliability diagrams
    (Guo et al., 2017). Bin edges are ``np.linspace(0, 1, n_bins + 1)``.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    p = _proba(proba, strict=True)
    y = _labels(y, p)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:-1], conf, side="left")
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        mean_acc = np.bincount(idx, weights=correct, minlength=n_bins) / counts
    return ReliabilityCurve(mean_conf, mean_acc, counts)


def ece(y: Any, proba: Any, n_bins: int = 15) -> float:
    """Expected calibration error ``sum_b (n_b / n) |acc_b - conf_b|`` over equal-width bins."""
    curve = reliability_curve(y, proba, n_bins)
    n = curve.counts.sum()
    if n == 0:
        return math.nan
    filled = curve.counts > 0
    gaps = np.abs(curve.accuracy[filled] - curve.confidence[filled])
    return float(np.sum(curve.counts[filled] / n * gaps))


def fidelity_metrics(p_teacher: Any, p_student: Any, y: Any = None) -> dict[str, float]:
    """``agreement``, ``kl_teacher_student``, ``js_teacher_student`` and the student's ``ece``.

    ``ece`` is ``nan`` when ``y`` is not given.
    """
    return {
        "agreement": agreement(p_teacher, p_student),
        "kl_teacher_student": kl_teacher_student(p_teacher, p_student),
        "js_teacher_student": js_teacher_student(p_teacher, p_student),
        "ece": ece(y, p_student) if y is not None else math.nan,
    }


# ----------------------------------------------------------------------------- saliency


def _maps(a: Any, name: str) -> np.ndarray:
    """``(n, length)`` float64; ``(length,)`` becomes one row, extra axes are flattened."""
    m = _to_numpy(a).astype(np.float64)
    if m.ndim == 0:
        raise ValueError(f"{name} must be shaped (n, length) or (length,), got a scalar")
    m = m.reshape(1, -1) if m.ndim == 1 else m.reshape(m.shape[0], -1)
    if not np.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return m


def _row_corr(a: np.ndarray, b: np.ndarray, center: bool) -> np.ndarray:
    """Per-row Pearson correlation (``center``) or cosine; 0 where a row has zero norm."""
    if center:
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
    num = np.sum(a * b, axis=1)
    den = np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1))
    out = np.zeros_like(num)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return np.clip(out, -1.0, 1.0)


def _topk_mask(m: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest entries per row (ties: earliest index first)."""
    idx = np.argsort(-m, axis=1, kind="stable")[:, :k]
    mask = np.zeros(m.shape, dtype=bool)
    np.put_along_axis(mask, idx, True, axis=1)
    return mask


def saliency_similarity(
    teacher_map: Any, student_map: Any, k: int = 10, per_series: bool = False
) -> dict[str, Any]:
    """Agreement of two saliency maps shaped ``(n, length)`` (or ``(length,)``).

    * ``spearman``: Spearman rank correlation per series (Pearson correlation of average
      ranks); a constant map gives 0 for that series.
    * ``cosine``: ``<a, b> / (|a| |b|)`` per series (0 if a map is all zeros).
    * ``topk_iou``: ``|A ∩ B| / |A ∪ B|`` of the top-``k`` timestep sets (``k`` is clipped
      to the length; ties broken by earliest index).

    Means over series, or per-series arrays when ``per_series`` is true.
    """
    a, b = _maps(teacher_map, "teacher_map"), _maps(student_map, "student_map")
    if a.shape != b.shape:
        raise ValueError(f"teacher_map {a.shape} and student_map {b.shape} must have the same shape")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(int(k), a.shape[1])
    spearman = _row_corr(rankdata(a, axis=1), rankdata(b, axis=1), center=True)
    cosine = _row_corr(a, b, center=False)
    ta, tb = _topk_mask(a, k), _topk_mask(b, k)
    iou = (ta & tb).sum(axis=1) / (ta | tb).sum(axis=1)
    out = {"spearman": spearman, "cosine": cosine, "topk_iou": iou.astype(np.float64)}
    if per_series:
        return out
    return {key: float(v.mean()) if v.size else math.nan for key, v in out.items()}


def saliency_precision(saliency_map: Any, truth_mask: Any, k: int | None = None) -> float:
    """Share of the ``k`` most salient timesteps inside the planted window, mean over series.

    ``precision_i = |top_k(s_i) ∩ W_i| / k`` with ``W_i`` the True entries of
    ``truth_mask`` (same shape as the map). ``k`` defaults to the window size ``|W_i|``
    (series with an empty window are then skipped). Ties at the k-th value are credited
    fractionally (the expectation under random tie-breaking), so a constant map scores the
    chance level ``|W_i| / length``. Rank by value: pass ``abs(map)`` for signed attributions.
    """
    s = _maps(saliency_map, "saliency_map")
    mask = _maps(truth_mask, "truth_mask") != 0
    if s.shape != mask.shape:
        raise ValueError(f"saliency_map {s.shape} and truth_mask {mask.shape} must have the same shape")
    length = s.shape[1]
    if k is None:
        ks = mask.sum(axis=1)
    else:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        ks = np.full(s.shape[0], min(int(k), length))
    keep = ks > 0
    if not keep.any():
        return math.nan
    s, mask, ks = s[keep], mask[keep], ks[keep]
    ordered = -np.sort(-s, axis=1)
    kth = np.take_along_axis(ordered, (ks - 1)[:, None], axis=1)
    above, tied = s > kth, s == kth
    n_tied = tied.sum(axis=1)
    share = (ks - above.sum(axis=1)) / n_tied  # fraction of the tied entries in the top k
    hits = (above & mask).sum(axis=1) + share * (tied & mask).sum(axis=1)
    return float(np.mean(hits / ks))
