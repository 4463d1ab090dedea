"""A scikit-learn estimator around teacher training and distillation.

``DistilledClassifier`` works on arrays shaped like aeon's ``(n, channels, length)``, with
``clone``, ``cross_val_score`` and ``GridSearchCV``. ``fit`` holds out a stratified
validation split of the data it is given (for early stopping), trains the teacher when
``teacher`` is a model name (or uses an already trained torch module as it is), then trains
the student with the chosen distillation method. Its defaults are the protocol's
(:class:`~tsd_lib.experiment.RunConfig`'s); a bad ``tau`` or ``device`` is a ``ValueError`` from
``fit``, and ``predict`` refuses series of another shape than ``fit`` saw.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from tsd_lib.data import Dataset, stratified_split, validate_arrays
from tsd_lib.experiment import RunConfig, default_protocol
from tsd_lib.losses import Objective, resolve_weights
from tsd_lib.metrics import softmax
from tsd_lib.runtime import check_device
from tsd_lib.settings import TSD_RUN_FIELDS, TSDSettings
from tsd_lib.train import TrainConfig, predict_logits, train_model

#: The protocol's defaults (:class:`~tsd_lib.experiment.RunConfig`): the estimator trains as a run does.
_RUN = {f.name: f.default for f in fields(RunConfig)}


class DistilledClassifier(ClassifierMixin, BaseEstimator):
    """Distil ``teacher`` into ``student`` with ``method`` (e.g. ``"kd+tsd"``) on ``fit(X, y)``.

    Parameters mirror :class:`tsd_lib.experiment.RunConfig`, defaults included (every TSD setting
    under its RunConfig name); ``teacher`` is a model name
    (trained inside ``fit`` with cross-entropy, seed ``teacher_seed``) or a trained module whose
    output classes follow the sorted labels of ``y``.
    """

    def __init__(
        self, teacher: str | nn.Module = _RUN["teacher"], student: str = _RUN["student"], method: str = _RUN["method"],
        weights: dict[str, float] | None = None, tau: float = _RUN["tau"], n_windows: int = _RUN["n_windows"],
        window: int = _RUN["window"], epochs: int = _RUN["epochs"], patience: int = _RUN["patience"],
        teacher_epochs: int | None = _RUN["teacher_epochs"], teacher_seed: int = _RUN["teacher_seed"],
        val_fraction: float = _RUN["val_fraction"], batch_size: int = _RUN["batch_size"], lr: float = _RUN["lr"],
        tsd_bank_size: int = _RUN["tsd_bank_size"], tsd_reduce: str = _RUN["tsd_reduce"],
        tsd_score: str = _RUN["tsd_score"], tsd_baseline: str = _RUN["tsd_baseline"],
        student_kwargs: dict[str, Any] | None = None, teacher_kwargs: dict[str, Any] | None = None,
        seed: int = _RUN["seed"], device: str = _RUN["device"], progress: bool = False,
    ) -> None:
        self.teacher = teacher
        self.student = student
        self.method = method
        self.weights = weights
        self.tau = tau
        self.n_windows = n_windows
        self.window = window
        self.epochs = epochs
        self.patience = patience
        self.teacher_epochs = teacher_epochs
        self.teacher_seed = teacher_seed
        self.val_fraction = val_fraction
        self.batch_size = batch_size
        self.lr = lr
        self.tsd_bank_size = tsd_bank_size
        self.tsd_reduce = tsd_reduce
        self.tsd_score = tsd_score
        self.tsd_baseline = tsd_baseline
        self.student_kwargs = student_kwargs
        self.teacher_kwargs = teacher_kwargs
        self.seed = seed
        self.device = device
        self.progress = progress

    def _train_config(self, model: str, *, epochs: int, seed: int, desc: str) -> TrainConfig:
        """The protocol of :class:`~tsd_lib.experiment.RunConfig` for ``model`` (schedule and warm-up
        per architecture, :func:`~tsd_lib.experiment.default_protocol`)."""
        return TrainConfig(epochs=epochs, patience=self.patience, batch_size=self.batch_size, lr=self.lr,
                           seed=seed, device=self.device, progress=self.progress, desc=desc,
                           **default_protocol(model))

    def _dataset(self, X: np.ndarray, y: np.ndarray) -> Dataset:
        tr, va = stratified_split(y, self.val_fraction, seed=self.seed)
        empty = np.zeros((0, *X.shape[1:]), dtype=np.float32)
        return Dataset(name="estimator", X_train=X[tr], y_train=y[tr], X_val=X[va], y_val=y[va],
                       X_test=empty, y_test=np.zeros(0, dtype=np.int64),
                       class_names=[str(c) for c in self.classes_])

    def _fit_teacher(self, data: Dataset) -> nn.Module:
        if isinstance(self.teacher, nn.Module):
            teacher = copy.deepcopy(self.teacher).eval()
            if getattr(teacher, "n_classes", data.n_classes) != data.n_classes:
                raise ValueError(f"the teacher predicts {teacher.n_classes} classes but y has {data.n_classes}")
            self.teacher_history_ = None
            return teacher
        config = self._train_config(self.teacher, epochs=self.teacher_epochs or self.epochs, seed=self.teacher_seed,
                                    desc=f"teacher {self.teacher}")
        teacher, self.teacher_history_ = train_model(self.teacher, data, config, model_kwargs=self.teacher_kwargs)
        return teacher.eval()

    def _tsd_settings(self) -> TSDSettings:
        """The TSD settings of the parameters named by :data:`~tsd_lib.settings.TSD_RUN_FIELDS`
        (checked: a bad value is a ``ValueError`` naming the setting)."""
        return TSDSettings(**{setting: getattr(self, name) for name, setting in TSD_RUN_FIELDS.items()})

    def fit(self, X: Any, y: Any) -> DistilledClassifier:
        """Train the teacher (if needed) and the distilled student on ``(X, y)``."""
        tsd = self._tsd_settings()
        check_device(self.device)
        X, y = validate_arrays(X, y, "X", allow_2d=True)
        terms = resolve_weights(self.method, self.weights)
        self.classes_, y_enc = np.unique(y, return_inverse=True)
        data = self._dataset(X, y_enc.astype(np.int64))
        self.n_features_in_ = X.shape[-1]
        self.n_channels_in_ = X.shape[1]
        self.teacher_ = self._fit_teacher(data)
        def objective(student: nn.Module) -> Objective:
            return Objective(terms, self.teacher_ if set(terms) != {"ce"} else None, data.X_train, data.y_train,
                             tau=tsd.tau, settings={"tsd": tsd} if "tsd" in terms else None, seed=self.seed,
                             student=student)

        config = self._train_config(self.student, epochs=self.epochs, seed=self.seed, desc=self.method)
        student, self.history_ = train_model(self.student, data, config, objective=objective,
                                             model_kwargs=self.student_kwargs)
        self.student_ = student.eval()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "student_")
        X, _ = validate_arrays(X, None, "X", allow_2d=True)
        fitted = (getattr(self, "n_channels_in_", X.shape[1]), self.n_features_in_)
        if tuple(X.shape[1:]) != fitted:
            raise ValueError(f"X has series of {X.shape[1]} channel(s) x {X.shape[2]} points, but the estimator "
                             f"was fitted on {fitted[0]} x {fitted[1]}: resample them to the fitted length first")
        return softmax(predict_logits(self.student_, X, device=self.device))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]
