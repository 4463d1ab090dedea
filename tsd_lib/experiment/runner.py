"""One run = one config = one record: train (or load) the teacher, train the student with the
configured distillation objective, evaluate both and store the flat record.

A config already in the store is loaded, never retrained; one process trains a run at a time
(a second one waits for its record and loads it).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from torch import nn

from tsd_lib.data import Dataset
from tsd_lib.experiment.config import RunConfig
from tsd_lib.experiment.datasets import get_dataset
from tsd_lib.experiment.store import RunStore
from tsd_lib.experiment.teachers import (
    choose_teacher,
    convergence,
    load_stored_model,
    saliency_maps,
    save_model,
    teacher_bank,
    teacher_saliency,
    teacher_test_proba,
)
from tsd_lib.losses import Objective
from tsd_lib.metrics import classification_metrics, fidelity_metrics, saliency_similarity, softmax
from tsd_lib.provenance import results_digest
from tsd_lib.runtime import resolve_device
from tsd_lib.train import History, predict_logits, train_model
from tsd_lib.utils import atomic_write_json, json_safe, versions


def run(config: RunConfig, store: RunStore | str | os.PathLike | None = None, *,
        progress: bool | None = None) -> dict[str, Any]:
    """Train (or load) one run and return its flat record (see the module docstring)."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    if store.has(config):
        return store.load_record(config)
    store.check_writable()
    with store.lock(f"run-{config.key()}"):
        if store.has(config):  # trained meanwhile by another process
            return store.load_record(config)
        return _train_run(config, store, progress)


def _train_run(config: RunConfig, store: RunStore, progress: bool | None) -> dict[str, Any]:
    start = time.perf_counter()
    data = get_dataset(config)
    tconfig, teacher, teacher_record = choose_teacher(config, data, store, progress=progress)

    def objective(student: nn.Module) -> Objective:
        return Objective(config.terms, teacher, data.X_train, data.y_train, settings=config.loss_settings(),
                         seed=config.seed, student=student,
                         tsd_bank=lambda: teacher_bank(teacher, tconfig, data, store))

    student, history = train_model(config.student, data, config.train_config(progress=progress), objective=objective)
    record = evaluate_run(config, data, student, teacher, store, history, progress=progress, teacher_config=tconfig)
    record.update(data_fingerprint=data.fingerprint(), teacher_accuracy=teacher_record["test_accuracy"],
                  teacher_auc_pr=teacher_record["test_auc_pr"], teacher_seed_chosen=tconfig.teacher_seed,
                  wall_seconds=time.perf_counter() - start)

    folder = store.run_dir(config)
    save_model(folder / "model.pt", config.student, student, data)
    atomic_write_json(folder / "history.json", history.to_dict())
    atomic_write_json(folder / "record.json", record)
    return record


def evaluate_run(
    config: RunConfig, data: Dataset, student: nn.Module, teacher: nn.Module, store: RunStore,
    history: History, *, progress: bool | None = None, teacher_config: RunConfig | None = None,
) -> dict[str, Any]:
    """The record of a trained student: accuracy, fidelity, saliency alignment, how training
    ended, and (``config.budgets``) the same metrics at each epoch budget. ``teacher_config``
    is the chosen teacher's config when ``config`` has ``teacher_seeds``. Non-finite metrics
    (e.g. validation metrics without a validation split) are None."""
    tconfig = teacher_config or config
    p_teacher = teacher_test_proba(teacher, tconfig, data, store)
    maps_teacher = teacher_saliency(teacher, tconfig, data, store, progress=progress)
    record = {
        **config.to_dict(), "key": config.key(), "teacher_key": tconfig.teacher_key(),
        **_student_metrics(config, data, student, p_teacher, maps_teacher),
        **convergence(history), "train_seconds": history.seconds,
        **{f"{k}_used": v for k, v in config.protocol(config.student).items()},
        "device_used": str(resolve_device(config.device)), "n_test": len(data.X_test),
        "code": results_digest(), "versions": versions(),
    }
    if config.budgets:
        final = {k: v.clone() for k, v in student.state_dict().items()}
        record["budgets"] = {}
        for budget in config.budgets:
            student.load_state_dict(history.budget_states[budget])
            record["budgets"][str(budget)] = {
                **_student_metrics(config, data, student, p_teacher, maps_teacher, fidelity=False),
                "best_epoch": history.budget_best_epochs[budget],
            }
        student.load_state_dict(final)
        student.eval()
    return json_safe(record)


def _student_metrics(config: RunConfig, data: Dataset, student: nn.Module, p_teacher: np.ndarray,
                     maps_teacher: np.ndarray, *, fidelity: bool = True) -> dict[str, Any]:
    dev = config.device
    student.eval()
    p_val = softmax(predict_logits(student, data.X_val, device=dev))
    p_test = softmax(predict_logits(student, data.X_test, device=dev))
    val = classification_metrics(data.y_val, p_val)
    sal = saliency_similarity(maps_teacher, saliency_maps(student, config, data, False))
    out = {**classification_metrics(data.y_test, p_test),
           "saliency_spearman": sal["spearman"], "saliency_cosine": sal["cosine"],
           "saliency_topk_iou": sal["topk_iou"], "val_accuracy": val["accuracy"], "val_auc_pr": val["auc_pr"]}
    if fidelity:
        out.update(fidelity_metrics(p_teacher, p_test, data.y_test))
    else:
        out["agreement"] = fidelity_metrics(p_teacher, p_test, data.y_test)["agreement"]
    return out


def load_student(record_or_config: dict[str, Any] | RunConfig, store: RunStore | str | None = None) -> nn.Module:
    """The trained student of a stored run, in eval mode, ready for inference."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    config = record_or_config if isinstance(record_or_config, RunConfig) else RunConfig.from_dict(record_or_config)
    path = store.run_dir(config) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(
            f"no stored run for {config.dataset}/{config.method} (key {config.key()}) in {store.root}"
        )
    return load_stored_model(path, "student model")
