"""Teachers and what is cached per teacher: datasets of a config, stored models, teacher
training and choice, the teacher's test probabilities, saliency maps and TSD bank.

Every cached file is checked when loaded: a damaged teacher (unreadable ``model.pt``, weights
that do not match its record), bank or array is named in a :class:`StoreWarning` and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tsd_lib.data import Dataset
from tsd_lib.experiment.config import RunConfig, digest
from tsd_lib.experiment.store import (
    RunStore,
    StoreError,
    StoreWarning,
    error_line,
    load_or_none,
    read_json,
    same_data,
)
from tsd_lib.metrics import classification_metrics, softmax
from tsd_lib.models import build_model
from tsd_lib.runtime import resolve_device
from tsd_lib.saliency.maps import saliency_map
from tsd_lib.saliency.perturb import TeacherBank
from tsd_lib.train import History, predict_logits, train_model
from tsd_lib.utils import atomic_torch_save, atomic_write_bytes, atomic_write_json, json_safe, versions

SALIENCY_SEED = 0  # one fixed generator seed: teacher and student see identical perturbations
BANK_SEED = 0  # the teacher bank is built once per teacher and shared by every student
_BANK_FORMAT = TeacherBank.FORMAT  # a cached bank of another layout is not loaded


def save_model(path: Path, name: str, model: nn.Module, data: Dataset) -> None:
    """A checkpoint :func:`load_model` rebuilds: registry name, shapes and CPU weights (atomic)."""
    atomic_torch_save(path, {"model": name, "n_channels": data.n_channels, "n_classes": data.n_classes,
                             "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}})


def load_model(path: Path) -> nn.Module:
    """The model saved by :func:`save_model`, in eval mode."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(blob["model"], blob["n_channels"], blob["n_classes"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def load_stored_model(path: Path, what: str) -> nn.Module:
    """:func:`load_model` for a model that cannot be recomputed here: ``FileNotFoundError`` when
    absent, :class:`StoreError` naming the file and the fix when damaged."""
    if not path.exists():
        raise FileNotFoundError(f"no stored {what} {path}")
    try:
        return load_model(path)
    except Exception as err:  # noqa: BLE001 - any unreadable checkpoint gets the same advice
        raise StoreError(f"damaged {what} {path} ({error_line(err)}); delete {path.parent} "
                         "and rerun `tsd grid` to retrain it") from None


def _stored_teacher(folder: Path, data: Dataset) -> tuple[nn.Module, dict[str, Any]] | None:
    """The stored teacher and its record, or None when missing, damaged or trained on other data
    than ``data`` (then retrained)."""
    record = read_json(folder / "record.json", what="teacher record", fix="retraining the teacher")
    if record is None or not same_data(record, data.fingerprint(), f"teacher {folder.name} of {data.name}"):
        return None
    teacher = load_or_none(folder / "model.pt", load_model, "teacher model")
    if teacher is None:
        return None
    if record.get("weights_digest") not in (None, weights_digest(teacher)):
        warnings.warn(f"damaged teacher model {folder / 'model.pt'} (its weights do not match its record); "
                      "retraining the teacher", StoreWarning, stacklevel=2)
        return None
    return teacher, record


def get_teacher(
    config: RunConfig, data: Dataset, store: RunStore, *, progress: bool | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load the config's teacher from the store, training and storing it when missing or damaged.
    One process trains a teacher at a time; another waits for it and loads the result."""
    folder = store.teacher_dir(config)
    stored = _stored_teacher(folder, data)
    if stored is not None:
        return stored
    store.check_writable()
    with store.lock(f"teacher-{config.teacher_key()}"):
        stored = _stored_teacher(folder, data)  # trained meanwhile by another process
        if stored is not None:
            return stored
        return _train_teacher(config, data, store, progress)


def _train_teacher(config: RunConfig, data: Dataset, store: RunStore,
                   progress: bool | None) -> tuple[nn.Module, dict[str, Any]]:
    folder = store.teacher_dir(config)
    teacher, history = train_model(config.teacher, data, config.train_config(teacher=True, progress=progress))
    save_model(folder / "model.pt", config.teacher, teacher, data)
    proba_val = softmax(predict_logits(teacher, data.X_val, device=config.device))
    proba_test = teacher_test_proba(teacher, config, data, store)
    record = json_safe({
        **config.teacher_fields(), "teacher_key": config.teacher_key(), "weights_digest": weights_digest(teacher),
        "data_fingerprint": data.fingerprint(),
        **{f"val_{k}": v for k, v in classification_metrics(data.y_val, proba_val).items()},
        **{f"test_{k}": v for k, v in classification_metrics(data.y_test, proba_test).items()},
        **convergence(history), "train_seconds": history.seconds, "versions": versions(),
    })
    atomic_write_json(folder / "history.json", history.to_dict())
    atomic_write_json(folder / "record.json", record)
    return teacher.eval(), record


def choose_teacher(
    config: RunConfig, data: Dataset, store: RunStore, *, progress: bool | None = None
) -> tuple[RunConfig, nn.Module, dict[str, Any]]:
    """The config's teacher: with ``teacher_seeds``, the candidate with the best *validation*
    macro AUC-PR (ties: lower validation loss), every candidate trained or loaded first.
    Returns ``(config of the chosen teacher, teacher, its record)``."""
    candidates = [(c, *get_teacher(c, data, store, progress=progress)) for c in config.teacher_candidates()]
    return min(candidates, key=lambda t: teacher_rank(t[2]))


def teacher_rank(record: dict[str, Any]) -> tuple[float, float]:
    """The rule that picks a teacher among seeds, as a sort key (smallest is chosen): the best
    validation macro AUC-PR, ties broken by the lower validation loss (a missing value ranks last)."""
    return -_finite(record["val_auc_pr"]), _finite(record["val_loss"], 1e9)


def _finite(x: float | None, default: float = 0.0) -> float:
    return default if x is None or np.isnan(x) else float(x)


def convergence(history: History) -> dict[str, Any]:
    """How a training run ended: ``stopped_early`` is true when patience ended it, false when
    the epoch cap did (``val_loss`` is None without a validation split)."""
    return json_safe({"val_loss": min(history.column("val_loss"), default=float("nan")),
                      "epochs_run": history.epochs_run, "best_epoch": history.best_epoch,
                      "stopped_early": history.stopped_early})


def weights_digest(model: nn.Module) -> str:
    """A 12-hex-digit digest of a model's weights: ties cached teacher files to one teacher."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def saliency_eval_series(config: RunConfig, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The test series (and labels) saliency metrics are computed on."""
    n = len(data.X_test) if config.saliency_eval_series is None else config.saliency_eval_series
    return data.X_test[:n], data.y_test[:n]


def saliency_maps(model: nn.Module, config: RunConfig, data: Dataset, progress: bool | None) -> np.ndarray:
    """``model``'s saliency maps on :func:`saliency_eval_series`, with the fixed generator seed."""
    X, y = saliency_eval_series(config, data)
    return saliency_map(
        model, X, y, X_pool=data.X_train, y_pool=data.y_train, window=config.window,
        baseline="other_class", score="kl", tau=config.tau,
        generator=torch.Generator().manual_seed(SALIENCY_SEED), progress=progress,
        device=config.device,
    )


def teacher_saliency(
    teacher: nn.Module, config: RunConfig, data: Dataset, store: RunStore, *, progress: bool | None = None
) -> np.ndarray:
    """The teacher's saliency maps on the evaluation series, computed once and cached."""
    key = digest({"window": config.window, "tau": config.tau, "n": config.saliency_eval_series,
                  "seed": SALIENCY_SEED})
    rows = len(saliency_eval_series(config, data)[0])
    return _cached_array(store.teacher_dir(config) / f"saliency-{key}-{_tied(teacher, data)}.npy",
                         lambda: saliency_maps(teacher, config, data, progress), rows)


def teacher_test_proba(teacher: nn.Module, config: RunConfig, data: Dataset, store: RunStore) -> np.ndarray:
    """The teacher's test-set probabilities, computed once per teacher and cached."""
    return _cached_array(store.teacher_dir(config) / f"test-proba-{_tied(teacher, data)}.npy",
                         lambda: softmax(predict_logits(teacher, data.X_test, device=config.device)), len(data.X_test))


def _tied(teacher: nn.Module, data: Dataset) -> str:
    """The part of a cached file's name that ties it to one teacher's weights and one dataset's data."""
    return f"{weights_digest(teacher)}-{data.fingerprint()}"


def _load_array(path: Path, rows: int) -> np.ndarray:
    array = np.load(path, allow_pickle=False)
    if len(array) != rows:
        raise ValueError(f"{len(array)} rows, expected {rows}")
    return array


def _cached_array(path: Path, compute: Callable[[], np.ndarray], rows: int) -> np.ndarray:
    array = load_or_none(path, lambda p: _load_array(p, rows), "cached array")
    if array is not None:
        return array
    array = compute()
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())
    return array


def teacher_bank(teacher: nn.Module, config: RunConfig, data: Dataset, store: RunStore) -> TeacherBank:
    """The teacher's TSD bank for ``config`` (built once per teacher and setting, then loaded)."""
    tsd = config.tsd_settings()
    key = digest({"window": tsd.window, "bank_size": tsd.bank_size, "baseline": tsd.baseline,
                  "n_windows": tsd.n_windows, "format": _BANK_FORMAT, "seed": BANK_SEED})
    path = store.teacher_dir(config) / f"bank-{key}-{_tied(teacher, data)}.pt"

    def load(p: Path) -> TeacherBank:
        state = torch.load(p, map_location="cpu", weights_only=True)
        return TeacherBank.from_state(state, data.X_train, data.y_train, tau=tsd.tau)

    bank = load_or_none(path, load, "teacher bank")
    if bank is not None:
        return bank
    bank = TeacherBank(teacher, data.X_train, data.y_train, bank_size=tsd.bank_size, window=tsd.window,
                       n_windows=tsd.n_windows, tau=tsd.tau, baseline=tsd.baseline, seed=BANK_SEED,
                       device=resolve_device(config.device), show_progress=False)
    atomic_torch_save(path, bank.state_dict())
    return bank


def load_teacher(config: RunConfig, store: RunStore | str | None = None) -> nn.Module:
    """The stored teacher of ``config``, in eval mode."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    path = store.teacher_dir(config) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"no stored teacher for {config.dataset} (key {config.teacher_key()}) in {store.root}")
    return load_stored_model(path, "teacher model")
