"""Every loss term's settings: one frozen dataclass per term, the one home of its defaults and checks.

Each field carries its default, its allowed values (``low`` bound or ``choices``) and a help
line in its metadata; building an instance checks and normalises every field (``tau=8`` is
``8.0``, ``window=10.0`` is ``10``) and raises ``ValueError`` naming the setting. What is
derived from these declarations: the objective's per-term settings
(:func:`tsd_lib.losses.registry.resolve_settings`), :class:`~tsd_lib.experiment.RunConfig`'s
TSD fields (named by :func:`run_field`) and their checks, the profile schema, the flags of
``tsd distill`` and :class:`~tsd_lib.estimator.DistilledClassifier`'s defaults.

This module imports nothing from :mod:`tsd_lib`, so the saliency code, the losses, the
experiment layer and the command line (without torch) can all read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

#: Window baselines: a donor's window (other / same class), zeros, the series mean, noise.
BASELINES: tuple[str, ...] = ("other_class", "zero", "mean", "noise", "same_class")
#: TSD saliency scores: per-window distribution shift (``"kl"``) or target-probability drop.
SCORES: tuple[str, ...] = ("kl", "target_prob")
#: TSD reductions over classes: per-class terms (``"none"``) or their sum (``tau^2 KL``).
REDUCES: tuple[str, ...] = ("none", "sum")
#: DT2W adapters: the TSD authors' random subset of teacher channels, or a learned projection.
DT2W_ADAPTERS: tuple[str, ...] = ("random_channels", "projection")

#: The soft-target temperature of KD, DKD and TSD (the TSD authors' scripts use 8).
TAU = 8.0


def setting(default: Any, help: str, *, low: float | None = None, choices: tuple[str, ...] | None = None,
            strict: bool = False) -> Any:
    """A settings field: its default, help line and allowed values (``low`` inclusive unless
    ``strict``; numbers are also finite)."""
    return field(default=default, metadata={"help": help, "low": low, "choices": choices, "strict": strict})


def normalise(f: Any, value: Any, where: str) -> Any:
    """``value`` checked against field ``f`` (see :func:`setting`) and in the default's type.
    ``where`` names the setting in the ``ValueError``."""
    low, choices, strict = f.metadata.get("low"), f.metadata.get("choices"), f.metadata.get("strict")
    if choices is not None:
        if value not in choices:
            raise ValueError(f"{where} must be one of {list(choices)}, got {value!r}")
        return value
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(f.default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
    in_range = number and (low is None or (value > low if strict else value >= low))
    if isinstance(f.default, int):
        if not (in_range and float(value).is_integer()):
            raise ValueError(f"{where} must be an integer{bound}, got {value!r}")
        return int(value)
    if isinstance(f.default, float):
        if not in_range:
            raise ValueError(f"{where} must be a finite number{bound}, got {value!r}")
        return float(value)
    return value


class Settings:
    """Base of the settings dataclasses: checks and normalises every field when built."""

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, normalise(f, getattr(self, f.name), f"{self.term} setting {f.name}"))

    @property
    def term(self) -> str:
        return type(self).__name__.removesuffix("Settings").lower()


@dataclass(frozen=True)
class CESettings(Settings):
    """Cross-entropy has no settings."""


@dataclass(frozen=True)
class KDSettings(Settings):
    """KD (Hinton et al., 2015): ``tau^2 KL(softmax(z_T/tau) || softmax(z_S/tau))``."""

    tau: float = setting(TAU, "temperature of the soft targets", low=0.0, strict=True)


@dataclass(frozen=True)
class DKDSettings(Settings):
    """DKD (Zhao et al., CVPR 2022): ``alpha TCKD + beta NCKD`` at temperature ``tau``."""

    alpha: float = setting(1.0, "weight of the target-class term TCKD", low=0.0)
    beta: float = setting(8.0, "weight of the non-target-class term NCKD", low=0.0)
    tau: float = setting(TAU, "temperature", low=0.0, strict=True)


@dataclass(frozen=True)
class FitNetsSettings(Settings):
    """FitNets (Romero et al., 2015) has no settings (its projection is learned)."""


@dataclass(frozen=True)
class ATSettings(Settings):
    """Attention transfer (Zagoruyko & Komodakis, 2017) has no settings."""


@dataclass(frozen=True)
class RKDSettings(Settings):
    """RKD (Park et al., CVPR 2019): ``w_dist L_dist + w_angle L_angle`` (Park et al.'s 1:2 ratio;
    mdistiller's configuration uses 25, 50; the TSD authors' is not readable)."""

    w_dist: float = setting(1.0, "weight of the distance term", low=0.0)
    w_angle: float = setting(2.0, "weight of the angle term", low=0.0)


@dataclass(frozen=True)
class DT2WSettings(Settings):
    """DT2W (Qiao et al., 2023): soft-DTW between feature sequences, smoothing ``gamma`` (the TSD
    authors' 1.2), through ``adapter`` (:data:`DT2W_ADAPTERS`)."""

    gamma: float = setting(1.2, "soft-DTW smoothing", low=0.0, strict=True)
    adapter: str = setting("random_channels", "teacher channels matched to the student's", choices=DT2W_ADAPTERS)


@dataclass(frozen=True)
class TSDSettings(Settings):
    """TSD (Hewa Dehigahawattage et al., ECAI 2025, arXiv 2601.04263): ``K = n_windows`` windows
    of length ``L = window`` per series replaced from ``baseline``, scored by ``score`` at
    temperature ``tau`` (``reduce`` over classes); the teacher side is precomputed in a bank of
    ``bank_size`` perturbations per series (0: fresh sampling). Paper: K = 50, L = 10, tau = 8."""

    n_windows: int = setting(50, "K perturbations per series", low=1)
    window: int = setting(10, "window length L", low=1)
    tau: float = setting(TAU, "temperature of the soft targets", low=0.0, strict=True)
    reduce: str = setting("none", "per-class saliency terms or their sum over classes", choices=REDUCES)
    score: str = setting("kl", "saliency score: distribution shift or target-probability drop", choices=SCORES)
    baseline: str = setting("other_class", "what replaces a window", choices=BASELINES)
    bank_size: int = setting(200, "teacher-bank perturbations per series (0: fresh sampling)", low=0)


@dataclass(frozen=True)
class ProtocolSettings(Settings):
    """The protocol a run follows unless told otherwise: the paper's pair (LSTM 3x100 teacher, LSTM
    1x16 student, KD+TSD), series resampled to 100 steps, students capped at 1000 epochs and
    teachers at 500 (the profiles ``quick`` and ``paper``), early stopping after 50 epochs
    without a better validation loss ending both before their cap; Adam at 0.005 on batches of 32
    (the TSD authors' scripts)."""

    teacher: str = setting("lstm_teacher", "the teacher's architecture")
    student: str = setting("lstm_student", "the student's architecture")
    method: str = setting("kd+tsd", "'+'-joined losses: ce, kd, fitnets, at, rkd, dkd, dt2w, tsd")
    length: int = setting(100, "resample every series to this length (0: keep)", low=0)
    epochs: int = setting(1000, "epoch cap (early stopping ends a run before it)", low=1)
    teacher_epochs: int = setting(500, "the teacher's epoch cap", low=1)
    patience: int = setting(50, "epochs without a better validation loss before early stopping", low=1)
    batch_size: int = setting(32, "series per training batch", low=1)
    lr: float = setting(0.005, "Adam's learning rate", low=0.0, strict=True)


#: RunConfig's flat names of the TSD settings that are not ``tsd_``-prefixed (shared or historical).
_PLAIN = ("n_windows", "window", "tau")


def run_field(name: str) -> str:
    """RunConfig's field (and ``tsd distill``'s flag, dashed) of TSD setting ``name``:
    ``n_windows``, ``window`` and ``tau`` as they are, any other ``tsd_<name>``."""
    return name if name in _PLAIN else f"tsd_{name}"


#: RunConfig field -> TSD setting, for every :class:`TSDSettings` field.
TSD_RUN_FIELDS: dict[str, str] = {run_field(f.name): f.name for f in fields(TSDSettings)}
