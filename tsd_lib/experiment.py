"""One run = one config = one record, kept in a run store keyed by the config's hash.

``run(RunConfig(...))`` trains (or loads) the teacher, trains the student with the
configured distillation objective, evaluates both on the validation and test splits and
returns a flat record. Every record lives in a folder named by the hash of the fields that
change results; a config already in the store is loaded, never retrained.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tsd_lib.data import Dataset, load_dataset, make_synthetic
from tsd_lib.losses import Objective, resolve_weights
from tsd_lib.metrics import classification_metrics, fidelity_metrics, saliency_similarity, softmax
from tsd_lib.models import build_model
from tsd_lib.provenance import results_digest
from tsd_lib.saliency.maps import saliency_map
from tsd_lib.saliency.perturb import BANK_BASELINES, TeacherBank
from tsd_lib.train import History, TrainConfig, fit, predict_logits
from tsd_lib.utils import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    resolve_device,
    set_seed,
    versions,
)

SALIENCY_SEED = 0  # one fixed generator seed: teacher and student see identical perturbations
BANK_SEED = 0  # the teacher bank is built once per teacher and shared by every student
_BANK_FORMAT = TeacherBank.FORMAT  # a cached bank of another layout is not loaded
SYNTHETIC_PREFIX = "synthetic"
SYNTHETIC_SIZE = (100, 100)  # train and test series of the planted-pattern set used in runs

# Fields that never change results: left out of the hash (a store made on a GPU machine
# is found by the same configs on a laptop).
_NOT_HASHED = {"device", "data_dir"}
_TSD_FIELDS = {"n_windows", "window", "tsd_bank_size", "tsd_reduce", "tsd_score", "tsd_baseline"}
_TEACHER_FIELDS = ("dataset", "length", "stretch", "split_seed", "val_fraction", "teacher", "teacher_seed",
                   "teacher_epochs", "teacher_patience", "batch_size", "lr", "lr_schedule", "warmup", "code")


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one student run (field names are a public contract).

    ``method`` is a ``+``-joined list of loss names (``"ce"``, ``"kd"``, ``"kd+tsd"``,
    ``"dkd+tsd"``, ...); CE is always included. ``weights`` overrides default term weights,
    e.g. ``{"tsd": 10.0}``. ``teacher_epochs``/``teacher_patience`` default to the student's.
    """

    dataset: str
    data_dir: str | None = None
    length: int | None = 100
    stretch: bool = False
    teacher: str = "lstm_teacher"
    teacher_seed: int = 0
    student: str = "lstm_student"
    method: str = "kd+tsd"
    weights: dict[str, float] | None = None
    tau: float = 8.0
    n_windows: int = 50
    window: int = 10
    epochs: int = 1000
    patience: int = 50
    seed: int = 0
    split_seed: int = 0
    saliency_eval_series: int | None = None
    device: str = "auto"
    teacher_epochs: int | None = None
    teacher_patience: int | None = None
    val_fraction: float = 0.2
    batch_size: int = 32
    lr: float = 0.005
    tsd_bank_size: int = 200
    tsd_reduce: str = "none"
    tsd_score: str = "kl"
    tsd_baseline: str = "other_class"
    lr_schedule: str | None = None
    warmup: int | None = None
    budgets: tuple[int, ...] = ()
    teacher_seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        resolve_weights(self.method, self.weights)  # validates the method and weights
        if self.window < 1 or self.n_windows < 1:
            raise ValueError("window and n_windows must be >= 1")
        if self.length is not None and self.window >= self.length:
            raise ValueError(f"window ({self.window}) must be shorter than the series ({self.length})")
        if self.weights is not None:  # a frozen dataclass must stay hashable
            object.__setattr__(self, "weights", dict(sorted(self.weights.items())))
        object.__setattr__(self, "budgets", tuple(sorted({int(b) for b in self.budgets or ()})))
        object.__setattr__(self, "teacher_seeds", tuple(int(s) for s in self.teacher_seeds or ()))
        if len(set(self.teacher_seeds)) != len(self.teacher_seeds):
            raise ValueError(f"teacher_seeds must be distinct, got {list(self.teacher_seeds)}")
        for model in (self.teacher, self.student):  # validates both
            TrainConfig(**self.protocol(model))

    def __hash__(self) -> int:
        return hash(self.key())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        """Build a config from a dict (a record, a profile row); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON would return them (``budgets`` as a list)."""
        return {**asdict(self), "budgets": list(self.budgets), "teacher_seeds": list(self.teacher_seeds)}

    def replace(self, **changes: Any) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **changes})

    @property
    def terms(self) -> dict[str, float]:
        return resolve_weights(self.method, self.weights)

    def hashed_fields(self) -> dict[str, Any]:
        """The fields that change results (TSD settings only matter when TSD is used), and the
        digest of the code that produces them (:func:`tsd_lib.provenance.results_digest`)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        d["code"] = results_digest()
        d.update(self.protocol(self.student))  # explicit values, so "paper" and the default are one run
        for name in ("budgets", "teacher_seeds"):
            if not d[name]:
                d.pop(name)
        if self.teacher_seeds:  # the teacher seed is chosen among the candidates
            d.pop("teacher_seed")
        d["teacher_epochs"] = self.teacher_epochs or self.epochs
        d["teacher_patience"] = self.teacher_patience or self.patience
        d["weights"] = self.terms
        d.pop("method")
        if "tsd" not in d["weights"]:
            for k in _TSD_FIELDS:
                d.pop(k)
        if d["weights"].keys() <= {"ce"}:
            d.pop("tau")
        return d

    def key(self) -> str:
        """The run's hash (16 hex digits)."""
        return _digest(self.hashed_fields())

    def teacher_fields(self) -> dict[str, Any]:
        if self.teacher_seeds:
            raise ValueError("a config with teacher_seeds has one teacher per candidate: use teacher_candidates()")
        d = {**self.hashed_fields(), **self.protocol(self.teacher)}
        return {k: d[k] for k in _TEACHER_FIELDS}

    def teacher_key(self) -> str:
        return _digest(self.teacher_fields())

    def teacher_candidates(self) -> list[RunConfig]:
        """One config per candidate teacher seed (``[self]`` without ``teacher_seeds``)."""
        if not self.teacher_seeds:
            return [self]
        return [self.replace(teacher_seed=s, teacher_seeds=()) for s in self.teacher_seeds]

    def protocol(self, model: str) -> dict[str, Any]:
        """``lr_schedule`` and ``warmup`` for ``model``: the config's, else :func:`default_protocol`."""
        auto = default_protocol(model)
        return {"lr_schedule": self.lr_schedule or auto["lr_schedule"],
                "warmup": auto["warmup"] if self.warmup is None else int(self.warmup)}

    def train_config(self, *, teacher: bool = False, progress: bool | None = None) -> TrainConfig:
        epochs = (self.teacher_epochs or self.epochs) if teacher else self.epochs
        patience = (self.teacher_patience or self.patience) if teacher else self.patience
        who = f"teacher {self.teacher}" if teacher else f"{self.method} {self.student}"
        return TrainConfig(
            epochs=epochs, patience=patience, batch_size=self.batch_size, lr=self.lr,
            **self.protocol(self.teacher if teacher else self.student), budgets=() if teacher else self.budgets,
            seed=self.teacher_seed if teacher else self.seed, device=self.device,
            progress=progress, desc=f"{self.dataset}: {who}",
        )


def default_protocol(model: str) -> dict[str, Any]:
    """The training protocol of an architecture when a config leaves it open (measured in the
    book, chapter 1). The default is the authors': their per-batch ``MultiStepLR`` and patience
    from the first epoch. Recurrent models (``lstm*``) add a 200-epoch warm-up before patience
    counts: their validation loss can sit on a plateau for ~200 epochs, which patience 50
    mistakes for convergence. The small students (``fcn_small``, ``lstm_student``) train with
    the step decay x0.5 every 100 epochs: the authors' schedule leaves them at 0.005/8 after 35
    steps, where the small FCN still improves at epoch 500 and the 1x16 LSTM stays on its
    plateau for 250-400 epochs."""
    schedule = "step" if model in ("fcn_small", "lstm_student") else "paper"
    return {"lr_schedule": schedule, "warmup": 200 if model.startswith("lstm") else 0}


def _digest(d: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def default_store() -> Path:
    """``$TSD_RUNS`` if set, else ``runs/`` at the project root (or the working directory)."""
    if os.environ.get("TSD_RUNS"):
        return Path(os.environ["TSD_RUNS"])
    root = Path(__file__).resolve().parents[1]
    return (root if (root / "pyproject.toml").exists() else Path.cwd()) / "runs"


class RunStore:
    """A folder of runs: ``runs/<key>/`` and ``teachers/<key>/``; a run is complete when its
    ``record.json`` exists (written last, atomically)."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_store()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def run_dir(self, config: RunConfig) -> Path:
        return self.root / "runs" / config.key()

    def teacher_dir(self, config: RunConfig) -> Path:
        return self.root / "teachers" / config.teacher_key()

    def has(self, config: RunConfig) -> bool:
        return (self.run_dir(config) / "record.json").exists()

    def load_record(self, config: RunConfig) -> dict[str, Any]:
        return json.loads((self.run_dir(config) / "record.json").read_text())

    def load_history(self, config: RunConfig) -> dict[str, Any]:
        return json.loads((self.run_dir(config) / "history.json").read_text())

    def failure_path(self, key: str) -> Path:
        return self.root / "failures" / f"{key}.json"

    def record_failure(self, key: str, info: dict[str, Any]) -> None:
        """Keep a failed run's config, error and traceback (``failures/<key>.json``)."""
        atomic_write_json(self.failure_path(key), info)

    def clear_failure(self, key: str) -> None:
        self.failure_path(key).unlink(missing_ok=True)

    def failures(self) -> list[dict[str, Any]]:
        """Every recorded failure (a later success clears its failure)."""
        return [json.loads(p.read_text()) for p in sorted((self.root / "failures").glob("*.json"))]

    def has_teacher(self, config: RunConfig) -> bool:
        return (self.teacher_dir(config) / "record.json").exists()

    def load_teacher_record(self, config: RunConfig) -> dict[str, Any]:
        return json.loads((self.teacher_dir(config) / "record.json").read_text())

    def load_teacher_history(self, config: RunConfig) -> dict[str, Any]:
        return json.loads((self.teacher_dir(config) / "history.json").read_text())

    def records(self) -> list[dict[str, Any]]:
        """Every complete run record in the store."""
        out = []
        for path in sorted((self.root / "runs").glob("*/record.json")):
            try:
                out.append(json.loads(path.read_text()))
            except json.JSONDecodeError:  # pragma: no cover - writes are atomic
                continue
        return out


def get_dataset(config: RunConfig) -> Dataset:
    """The config's dataset; names starting with ``synthetic`` build the planted-pattern set."""
    if config.dataset.lower().startswith(SYNTHETIC_PREFIX):
        data, _ = make_synthetic(n_train=SYNTHETIC_SIZE[0], n_test=SYNTHETIC_SIZE[1], length=config.length or 100,
                                 split_seed=config.split_seed, val_fraction=config.val_fraction)
        return data
    return load_dataset(config.dataset, length=config.length, val_fraction=config.val_fraction,
                        split_seed=config.split_seed, data_dir=config.data_dir, stretch=config.stretch)


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


def get_teacher(
    config: RunConfig, data: Dataset, store: RunStore, *, progress: bool | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load the config's teacher from the store, training and storing it when missing."""
    folder = store.teacher_dir(config)
    if (folder / "record.json").exists():
        return load_model(folder / "model.pt"), json.loads((folder / "record.json").read_text())
    set_seed(config.teacher_seed)
    teacher = build_model(config.teacher, data.n_channels, data.n_classes)
    history = fit(teacher, data, config=config.train_config(teacher=True, progress=progress))
    save_model(folder / "model.pt", config.teacher, teacher, data)
    proba_val = softmax(predict_logits(teacher, data.X_val, device=config.device))
    proba_test = teacher_test_proba(teacher, config, data, store)
    record = {
        **config.teacher_fields(), "teacher_key": config.teacher_key(), "weights_digest": weights_digest(teacher),
        **{f"val_{k}": v for k, v in classification_metrics(data.y_val, proba_val).items()},
        **{f"test_{k}": v for k, v in classification_metrics(data.y_test, proba_test).items()},
        **_convergence(history), "train_seconds": history.seconds, "versions": versions(),
    }
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
    return min(candidates, key=lambda t: (-_finite(t[2]["val_auc_pr"]), _finite(t[2]["val_loss"], 1e9)))


def _finite(x: float, default: float = 0.0) -> float:
    return default if x is None or np.isnan(x) else float(x)


def _convergence(history: History) -> dict[str, Any]:
    """How a training run ended: ``stopped_early`` is true when patience ended it, false when
    the epoch cap did."""
    return {"val_loss": min(history.column("val_loss"), default=float("nan")),
            "epochs_run": history.epochs_run, "best_epoch": history.best_epoch,
            "stopped_early": history.stopped_early}


def weights_digest(model: nn.Module) -> str:
    """A 12-hex-digit digest of a model's weights: ties cached teacher files to one teacher."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def _saliency_eval(config: RunConfig, data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    n = len(data.X_test) if config.saliency_eval_series is None else config.saliency_eval_series
    return data.X_test[:n], data.y_test[:n]


def _maps(model: nn.Module, config: RunConfig, data: Dataset, progress: bool | None) -> np.ndarray:
    X, y = _saliency_eval(config, data)
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
    key = _digest({"window": config.window, "tau": config.tau, "n": config.saliency_eval_series,
                   "seed": SALIENCY_SEED})
    return _cached_array(store.teacher_dir(config) / f"saliency-{key}-{weights_digest(teacher)}.npy",
                         lambda: _maps(teacher, config, data, progress))


def teacher_test_proba(teacher: nn.Module, config: RunConfig, data: Dataset, store: RunStore) -> np.ndarray:
    """The teacher's test-set probabilities, computed once per teacher and cached."""
    return _cached_array(store.teacher_dir(config) / f"test-proba-{weights_digest(teacher)}.npy",
                         lambda: softmax(predict_logits(teacher, data.X_test, device=config.device)))


def _cached_array(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    if path.exists():
        return np.load(path)
    array = compute()
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())
    return array


def teacher_bank(teacher: nn.Module, config: RunConfig, data: Dataset, store: RunStore) -> TeacherBank:
    """The teacher's TSD bank for ``config`` (built once per teacher and setting, then loaded)."""
    key = _digest({"window": config.window, "bank_size": config.tsd_bank_size, "baseline": config.tsd_baseline,
                   "n_windows": config.n_windows, "format": _BANK_FORMAT, "seed": BANK_SEED})
    path = store.teacher_dir(config) / f"bank-{key}-{weights_digest(teacher)}.pt"
    if path.exists():
        state = torch.load(path, map_location="cpu", weights_only=True)
        return TeacherBank.from_state(state, data.X_train, data.y_train, tau=config.tau)
    bank = TeacherBank(teacher, data.X_train, data.y_train, bank_size=config.tsd_bank_size, window=config.window,
                       n_windows=config.n_windows, tau=config.tau, baseline=config.tsd_baseline, seed=BANK_SEED,
                       device=resolve_device(config.device), show_progress=False)
    atomic_torch_save(path, bank.state_dict())
    return bank


def run(config: RunConfig, store: RunStore | str | os.PathLike | None = None, *,
        progress: bool | None = None) -> dict[str, Any]:
    """Train (or load) one run and return its flat record (see the module docstring)."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    if store.has(config):
        return store.load_record(config)
    start = time.perf_counter()
    data = get_dataset(config)
    tconfig, teacher, teacher_record = choose_teacher(config, data, store, progress=progress)

    set_seed(config.seed)
    student = build_model(config.student, data.n_channels, data.n_classes)
    tsd = {"n_windows": config.n_windows, "window": config.window, "reduce": config.tsd_reduce,
           "score": config.tsd_score, "baseline": config.tsd_baseline, "bank_size": config.tsd_bank_size}
    objective = Objective(config.terms, teacher, data.X_train, data.y_train, tau=config.tau,
                          settings={"tsd": tsd} if "tsd" in config.terms else None, seed=config.seed, student=student)
    term = objective.tsd_term
    if term is not None and term.bank_size > 0 and config.tsd_baseline in BANK_BASELINES:
        term.bank = teacher_bank(teacher, tconfig, data, store)
    history = fit(student, data, objective, config.train_config(progress=progress))
    record = evaluate_run(config, data, student, teacher, store, history, progress=progress, teacher_config=tconfig)
    record.update(teacher_accuracy=teacher_record["test_accuracy"],
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
    is the chosen teacher's config when ``config`` has ``teacher_seeds``."""
    tconfig = teacher_config or config
    p_teacher = teacher_test_proba(teacher, tconfig, data, store)
    maps_teacher = teacher_saliency(teacher, tconfig, data, store, progress=progress)
    record = {
        **config.to_dict(), "key": config.key(), "teacher_key": tconfig.teacher_key(),
        **_student_metrics(config, data, student, p_teacher, maps_teacher),
        **_convergence(history), "train_seconds": history.seconds,
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
    return record


def _student_metrics(config: RunConfig, data: Dataset, student: nn.Module, p_teacher: np.ndarray,
                     maps_teacher: np.ndarray, *, fidelity: bool = True) -> dict[str, Any]:
    dev = config.device
    student.eval()
    p_val = softmax(predict_logits(student, data.X_val, device=dev))
    p_test = softmax(predict_logits(student, data.X_test, device=dev))
    val = classification_metrics(data.y_val, p_val)
    sal = saliency_similarity(maps_teacher, _maps(student, config, data, False))
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
    return load_model(path)


def load_teacher(config: RunConfig, store: RunStore | str | None = None) -> nn.Module:
    """The stored teacher of ``config``, in eval mode."""
    store = store if isinstance(store, RunStore) else RunStore(store)
    path = store.teacher_dir(config) / "model.pt"
    if not path.exists():
        raise FileNotFoundError(f"no stored teacher for {config.dataset} (key {config.teacher_key()}) in {store.root}")
    return load_model(path)

