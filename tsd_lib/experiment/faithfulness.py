"""Is shared saliency shared reasoning? Deletion and insertion curves of a finished run, stored
beside its record (``faithfulness.json``) and exported with it to a results archive.

A saliency map is *faithful* to a model when the time steps it ranks first are the ones the
model's decision rests on. Deletion (Petsiuk et al., 2018, for images) removes the most salient
non-overlapping windows first (sets them to 0, a z-normalised series' mean) and follows the
probability of the true class: the faster it falls, the more faithful the ranking (a low area
under the curve). Insertion starts from the all-zero series and reveals the most salient windows
first: the faster the probability rises, the better (a high area). Ranking a *student's* windows
by the *teacher's* saliency asks whether the student now relies on the teacher's time steps.

Computed after training from the stored models on the run's saliency evaluation series (the maps
of its saliency-alignment metrics), so it never changes a run's record; the file carries its own
digest (this module's code and the results code) and is recomputed when either changes.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tsd_lib.experiment.config import RunConfig
from tsd_lib.experiment.datasets import get_dataset
from tsd_lib.experiment.runner import load_student
from tsd_lib.experiment.store import RunStore
from tsd_lib.experiment.teachers import (
    choose_teacher,
    saliency_eval_series,
    saliency_maps,
    teacher_saliency,
)
from tsd_lib.metrics import saliency_similarity
from tsd_lib.provenance import results_digest, source_digest
from tsd_lib.saliency.gradients import integrated_gradients_map
from tsd_lib.utils import atomic_write_json

MODES = ("deletion", "insertion")
FILE = "faithfulness.json"
#: The rankings of a student's windows: its own saliency's and the teacher's.
RANKINGS = ("own", "teacher")


def window_ranking(saliency: np.ndarray, window: int) -> np.ndarray:
    """``(n, W)``: for each series, its non-overlapping windows ``[w L, (w + 1) L)`` (the last one
    may be shorter) by mean saliency, most salient first (ties: earlier window first)."""
    n, length = saliency.shape
    edges = list(range(0, length, window)) + [length]
    means = np.stack([saliency[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)
    return np.argsort(-means, axis=1, kind="stable")


def perturbation_curve(model: nn.Module, X: np.ndarray, y: np.ndarray, saliency: np.ndarray, window: int, *,
                       mode: str = "deletion", fill: float = 0.0) -> np.ndarray:
    """``(W + 1,)``: the mean probability of the true class after the ``k`` most salient windows
    (by ``saliency``) are removed (deletion: set to ``fill``) or revealed from an all-``fill``
    series (insertion), for ``k = 0 .. W``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    X = np.asarray(X, dtype=np.float32)
    n, _, length = X.shape
    ranking = window_ranking(np.asarray(saliency), window)
    n_windows = ranking.shape[1]
    keep = np.zeros((n, length), dtype=bool) if mode == "insertion" else np.ones((n, length), dtype=bool)
    batches = []
    for k in range(n_windows + 1):
        batches.append(np.where(keep[:, None, :], X, np.float32(fill)))
        if k < n_windows:
            for i in range(n):
                a = ranking[i, k] * window
                keep[i, a:a + window] = mode == "insertion"
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    with torch.no_grad():
        logits = model(torch.as_tensor(np.concatenate(batches), device=device)).cpu()
    proba = torch.softmax(logits, dim=1).numpy().reshape(n_windows + 1, n, -1)
    return proba[:, np.arange(n), np.asarray(y)].mean(axis=1)


def curve_area(curve: np.ndarray) -> float:
    """Area under a curve sampled at ``k / W``, ``k = 0 .. W`` (trapezoids on [0, 1])."""
    curve = np.asarray(curve, dtype=float)
    return float(((curve[1:] + curve[:-1]) / 2).mean())


def saliency_auprc(maps: np.ndarray, truth: np.ndarray) -> float:
    """Mean over series of the average precision of each step's saliency as a score for the
    planted pattern's steps (``truth``, boolean ``(n, T)``); chance is the planted share."""
    from sklearn.metrics import average_precision_score

    truth = np.asarray(truth, dtype=bool)
    scores = [average_precision_score(t, m) for m, t in zip(np.asarray(maps), truth, strict=True) if t.any()]
    return float(np.mean(scores))


def faithfulness_digest() -> str:
    """The code behind a stored ``faithfulness.json``: this module and the results code."""
    return f"{source_digest([Path(__file__)])}-{results_digest()}"


def measure(student: nn.Module, teacher: nn.Module, maps: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray,
            window: int, truth: np.ndarray | None = None) -> dict[str, Any]:
    """The faithfulness of one run: ``{"areas": {...}, "curves": {...}}`` keyed ``student_<ranking>_<mode>``
    (the student's windows ranked by its own or the teacher's saliency) and ``teacher_<mode>``;
    ``gradient_agreement``, the mean per-series Spearman correlation of the teacher's and the student's
    integrated-gradients maps (true class): saliency agreement measured without TSD's perturbation; with
    planted ``truth``, the AUPRC of both maps against it and the planted share (chance)."""
    curves = {f"teacher_{mode}": perturbation_curve(teacher, X, y, maps["teacher"], window, mode=mode)
              for mode in MODES}
    for ranking in RANKINGS:
        for mode in MODES:
            saliency = maps["student" if ranking == "own" else "teacher"]
            curves[f"student_{ranking}_{mode}"] = perturbation_curve(student, X, y, saliency, window, mode=mode)
    out: dict[str, Any] = {"n_series": len(X), "window": window,
                           "areas": {k: curve_area(c) for k, c in curves.items()},
                           "curves": {k: [float(v) for v in c] for k, c in curves.items()}}
    ig = {who: integrated_gradients_map(model, X, y) for who, model in (("teacher", teacher), ("student", student))}
    out["gradient_agreement"] = saliency_similarity(ig["teacher"], ig["student"])["spearman"]
    if truth is not None:
        out["auprc"] = {"student": saliency_auprc(maps["student"], truth),
                        "teacher": saliency_auprc(maps["teacher"], truth), "chance": float(np.mean(truth))}
    return out


def _cached(path: Path) -> dict[str, Any] | None:
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return stored if isinstance(stored, dict) and stored.get("digest") == faithfulness_digest() else None


def has_faithfulness(config: RunConfig, store: RunStore) -> bool:
    """Whether the run's folder holds a current ``faithfulness.json``."""
    return _cached(store.run_dir(config) / FILE) is not None


def load_faithfulness(config: RunConfig, store: RunStore) -> dict[str, Any] | None:
    """The run's stored faithfulness, or ``None`` (none yet, or made by other code)."""
    return _cached(store.run_dir(config) / FILE)


def run_faithfulness(config: RunConfig, store: RunStore | str | None = None, *,
                     progress: bool | None = False) -> dict[str, Any]:
    """:func:`measure` for a finished run (its student and chosen teacher loaded from ``store``),
    computed once and kept in the run's folder as ``faithfulness.json``."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    if not store.has(config):
        raise FileNotFoundError(f"run {config.dataset} {config.method} seed {config.seed} (key {config.key()}) is "
                                f"not finished in {store.root}: train it first (tsd run / tsd grid)")
    path = store.run_dir(config) / FILE
    if (stored := _cached(path)) is not None:
        return stored
    data = get_dataset(config)
    tconfig, teacher, _ = choose_teacher(config, data, store, progress=progress)
    student = load_student(config, store)
    X, y = saliency_eval_series(config, data)
    maps = {"teacher": teacher_saliency(teacher, tconfig, data, store, progress=progress),
            "student": saliency_maps(student, config, data, progress)}
    truth = (data.masks or {}).get("test")
    result = {"digest": faithfulness_digest(), "key": config.key(),
              **measure(student, teacher, maps, X, y, config.window, None if truth is None else truth[:len(X)])}
    with contextlib.suppress(OSError):  # a read-only store: measured, not kept
        atomic_write_json(path, result)
    return result
