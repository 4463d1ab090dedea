"""What defines one run: :class:`RunConfig`, its validation and its keys.

A config checks and normalises its own values when it is built (``tau=8`` is ``8.0``, an
int-valued ``8.0`` for an integer field is ``8``, ``"gunpoint"`` is ``"GunPoint"``), so one
experiment has one key however it was spelled. :meth:`RunConfig.key` hashes the fields that
change results together with :func:`tsd_lib.provenance.results_digest`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from tsd_lib.data import MIN_SERIES_LENGTH, canonical_dataset_name
from tsd_lib.losses import resolve_settings, resolve_weights
from tsd_lib.models import MODELS
from tsd_lib.provenance import results_digest
from tsd_lib.settings import TSD_RUN_FIELDS, ProtocolSettings, Settings, TSDSettings, normalise
from tsd_lib.train import LR_SCHEDULES, TrainConfig

SYNTHETIC_PREFIX = "synthetic"

# Fields that never change results: left out of the hash (a store made on a GPU machine
# is found by the same configs on a laptop).
_NOT_HASHED = {"device", "data_dir"}
#: The fields of TSD's own settings (``tau`` is shared with KD and DKD).
_TSD_FIELDS = set(TSD_RUN_FIELDS) - {"tau"}
#: TSD settings by field name: their defaults, checks and help (:class:`~tsd_lib.settings.TSDSettings`).
_TSD_SPECS = {f.name: f for f in fields(TSDSettings)}
_TEACHER_FIELDS = ("dataset", "length", "stretch", "split_seed", "val_fraction", "teacher", "teacher_seed",
                   "teacher_epochs", "teacher_patience", "batch_size", "lr", "lr_schedule", "warmup", "code")

#: Integer fields and their lower bound; ``None`` is allowed for those in :data:`_OPTIONAL`.
_INTS = {"length": MIN_SERIES_LENGTH, "teacher_seed": 0, "seed": 0, "split_seed": 0, "epochs": 1, "patience": 1,
         "batch_size": 1, "teacher_epochs": 1, "teacher_patience": 1, "saliency_eval_series": 1, "warmup": 0}
_OPTIONAL = {"length", "teacher_epochs", "teacher_patience", "saliency_eval_series", "warmup", "lr_schedule",
             "data_dir", "weights", "settings"}
#: Float fields: ``(low, high)``; ``low`` is exclusive unless the field is in :data:`_FROM_ZERO`.
_FLOATS = {"lr": (0.0, math.inf), "val_fraction": (0.0, 1.0)}
_FROM_ZERO = {"val_fraction"}
_CHOICES = {"lr_schedule": LR_SCHEDULES, "teacher": tuple(MODELS), "student": tuple(MODELS)}
_STRINGS = {"dataset", "device", "method"}


def _fail(where: str, what: str, value: Any) -> None:
    raise ValueError(f"{where} must be {what}, got {value!r}")


def _as_int(where: str, value: Any, low: int | None, optional: bool = False) -> int:
    ok = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not ok or (low is not None and value < low):
        _fail(where, "an integer" + ("" if low is None else f" >= {low}") + (" or null" if optional else ""), value)
    return int(value)


def _as_float(name: str, value: Any, where: str) -> float:
    low, high = _FLOATS[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (value >= low if name in _FROM_ZERO else value > low) or not value < high:
        bounds = f"{'>=' if name in _FROM_ZERO else '>'} {low:g}" + ("" if high == math.inf else f" and < {high:g}")
        _fail(where, f"a number {bounds}", value)
    return float(value)


def normalised(name: str, value: Any, where: str | None = None) -> Any:
    """``value`` checked for :class:`RunConfig` field ``name`` and in its canonical type: the
    one check of a run's values (the profile schema delegates here). TSD's settings are checked
    by :class:`~tsd_lib.settings.TSDSettings`' declarations. ``where`` names the value in the
    ``ValueError`` (default ``"RunConfig: <name>"``)."""
    where = where or f"RunConfig: {name}"
    if value is None and name in _OPTIONAL:
        return None
    if name in TSD_RUN_FIELDS:
        return normalise(_TSD_SPECS[TSD_RUN_FIELDS[name]], value, where)
    if name in _INTS:
        return _as_int(where, value, _INTS[name], name in _OPTIONAL)
    if name in _FLOATS:
        return _as_float(name, value, where)
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            _fail(where, f"one of {list(_CHOICES[name])}", value)
        return value
    if name == "data_dir":
        if not isinstance(value, (str, os.PathLike)):
            _fail(where, "a folder path or None", value)
        return os.fspath(value)
    if name in _STRINGS:
        if not isinstance(value, str) or not value:
            _fail(where, "a non-empty string", value)
        return value
    if name == "stretch":
        if not isinstance(value, bool):
            _fail(where, "true or false", value)
        return value
    if name == "weights":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            _fail(where, 'a mapping of term names to numbers, e.g. {"tsd": 10.0}', value)
        for k, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                _fail(f"{where}[{k!r}]", "a finite number", v)
        return {k: float(v) for k, v in sorted(value.items())}  # sorted: a frozen dataclass must stay hashable
    if name == "settings":
        return _settings(value, where)
    if name in ("budgets", "teacher_seeds"):
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            _fail(where, "a list of integers", value)
        return tuple(_as_int(f"{where}[{i}]", v, 1 if name == "budgets" else 0) for i, v in enumerate(value))
    return value


@functools.lru_cache(maxsize=256)
def canonical_dataset(name: str, data_dir: str | None = None) -> str:
    """The official spelling of a known dataset, matched case-insensitively (``"gunpoint"`` ->
    ``"GunPoint"``, :func:`tsd_lib.data.canonical_dataset_name`); the planted-pattern sets are
    ``"Synthetic..."``; unknown names are returned unchanged."""
    if name.lower().startswith(SYNTHETIC_PREFIX):
        return "Synthetic" + name[len(SYNTHETIC_PREFIX):]
    with contextlib.suppress(ValueError):  # a data_dir that is not a folder: loading says so
        return canonical_dataset_name(name, data_dir)
    return name


def _settings(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """Per-term loss settings as sorted plain dicts (numbers as floats); TSD's live in the fields."""
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        _fail(where, 'a mapping of term names to mappings, e.g. {"dkd": {"beta": 2.0}}', value)
    if "tsd" in value:
        _fail(where, f"free of 'tsd' (TSD is set by the fields {', '.join(TSD_RUN_FIELDS)})", value)
    def number(v: Any) -> Any:
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    return {term: {k: number(v) for k, v in sorted(given.items())} for term, given in sorted(value.items())}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one student run (field names are a public contract).

    ``method`` is a ``+``-joined list of loss names (``"ce"``, ``"kd"``, ``"kd+tsd"``,
    ``"dkd+tsd"``, ...); CE is always included. ``weights`` overrides default term weights,
    e.g. ``{"tsd": 10.0}``. ``teacher_epochs``/``teacher_patience`` default to the student's.
    A bad value raises ``ValueError`` naming the field.
    """

    dataset: str
    data_dir: str | None = None
    length: int | None = ProtocolSettings.length
    stretch: bool = False
    teacher: str = ProtocolSettings.teacher
    teacher_seed: int = 0
    student: str = ProtocolSettings.student
    method: str = ProtocolSettings.method
    weights: dict[str, float] | None = None
    tau: float = TSDSettings.tau
    n_windows: int = TSDSettings.n_windows
    window: int = TSDSettings.window
    epochs: int = ProtocolSettings.epochs
    patience: int = ProtocolSettings.patience
    seed: int = 0
    split_seed: int = 0
    saliency_eval_series: int | None = None
    device: str = "auto"
    teacher_epochs: int | None = None
    teacher_patience: int | None = None
    val_fraction: float = 0.2
    batch_size: int = ProtocolSettings.batch_size
    lr: float = ProtocolSettings.lr
    tsd_bank_size: int = TSDSettings.bank_size
    tsd_reduce: str = TSDSettings.reduce
    tsd_score: str = TSDSettings.score
    tsd_baseline: str = TSDSettings.baseline
    lr_schedule: str | None = None
    warmup: int | None = None
    budgets: tuple[int, ...] = ()
    teacher_seeds: tuple[int, ...] = ()
    settings: dict[str, dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, normalised(f.name, getattr(self, f.name)))
        object.__setattr__(self, "dataset", canonical_dataset(self.dataset, self.data_dir))
        object.__setattr__(self, "budgets", tuple(sorted(set(self.budgets))))
        resolve_weights(self.method, self.weights)  # validates the method and weights
        self.loss_settings()  # validates the per-term settings against the method's terms
        if self.length is not None and self.window >= self.length:
            raise ValueError(f"window ({self.window}) must be shorter than the series ({self.length})")
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

    def tsd_settings(self) -> TSDSettings:
        """TSD's settings, from the fields named by :data:`~tsd_lib.settings.TSD_RUN_FIELDS`."""
        return TSDSettings(**{setting: getattr(self, name) for name, setting in TSD_RUN_FIELDS.items()})

    def loss_settings(self) -> dict[str, Settings]:
        """Every term's settings for :class:`~tsd_lib.losses.Objective`: ``settings``, the shared
        ``tau``, and TSD's from its fields (:meth:`tsd_settings`)."""
        given = dict(self.settings or {})
        if "tsd" in self.terms:
            given["tsd"] = asdict(self.tsd_settings())
        try:
            return resolve_settings(self.terms, given, tau=self.tau)
        except ValueError as err:
            raise ValueError(f"RunConfig: settings: {err}") from None

    def hashed_fields(self) -> dict[str, Any]:
        """The fields that change results (TSD settings only matter when TSD is used), and the
        digest of the code that produces them (:func:`tsd_lib.provenance.results_digest`)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        d["code"] = results_digest()
        d.update(self.protocol(self.student))  # explicit values, so "paper" and the default are one run
        for name in ("budgets", "teacher_seeds", "settings"):
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
        return digest(self.hashed_fields())

    def teacher_fields(self) -> dict[str, Any]:
        if self.teacher_seeds:
            raise ValueError("a config with teacher_seeds has one teacher per candidate: use teacher_candidates()")
        d = {**self.hashed_fields(), **self.protocol(self.teacher)}
        return {k: d[k] for k in _TEACHER_FIELDS}

    def teacher_key(self) -> str:
        return digest(self.teacher_fields())

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


def digest(d: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``d`` as sorted JSON: the keys of runs, teachers and caches."""
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]
