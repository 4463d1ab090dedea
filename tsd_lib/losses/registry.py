"""The loss registry: one entry per loss, holding its pure function, what it reads, its
settings dataclass and how the objective calls it (mdistiller's plain dict that also dispatches).

Each term's settings are given as one nested mapping (torchdistill style), e.g.
``{"dkd": {"alpha": 1.0, "beta": 8.0}, "tsd": {"n_windows": 10}}``; :func:`resolve_settings`
builds every active term's settings dataclass (:mod:`tsd_lib.settings`, which holds the defaults
and checks) and rejects unknown keys. Adding a loss is one function in ``logit``/``feature``/``tsd``,
one settings dataclass and one :class:`Term` here.

Each term's ``compute(state, batch, settings)`` reads what the objective built for it from a
:class:`TermState` (defined here, so the registry does not import the objective).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import nn

from tsd_lib.losses.feature import at_loss, dt2w_loss, fitnets_loss, rkd_loss
from tsd_lib.losses.logit import ce_loss, dkd_loss, kd_loss
from tsd_lib.losses.tsd import TSDTerm, tsd_loss
from tsd_lib.settings import (
    DT2W_ADAPTERS,
    ATSettings,
    CESettings,
    DKDSettings,
    DT2WSettings,
    FitNetsSettings,
    KDSettings,
    RKDSettings,
    Settings,
    TSDSettings,
)

__all__ = ["DT2W_ADAPTERS", "LOSSES", "Batch", "Term", "TermState", "resolve_settings"]


@dataclass
class Batch:
    """What one training step hands every term: the models' outputs on ``x`` (teacher's under
    ``no_grad``; features only when a feature term is active)."""

    student: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor | None
    logits_s: torch.Tensor
    feats_s: dict[str, torch.Tensor]
    logits_t: torch.Tensor | None
    feats_t: dict[str, torch.Tensor]


@dataclass
class TermState:
    """What the objective builds for its stateful terms: the learned adapters (``projections``,
    a sub-module of the objective), DT2W's adapter in use and channel subset, the TSD term."""

    projections: nn.ModuleDict
    dt2w_adapter: str = "random_channels"
    dt2w_subset: torch.Tensor | None = None
    tsd: TSDTerm | None = None


Compute = Callable[[TermState, Batch, Any], torch.Tensor]


@dataclass(frozen=True)
class Term:
    """A registered loss. Calling it calls its pure function."""

    fn: Callable[..., torch.Tensor]
    compute: Compute
    needs_teacher: bool = True
    features: bool = False  # reads the models' ``return_features=True`` outputs
    teacher_logits: bool = False  # reads the teacher's logits (cached per training series when possible)
    settings: type[Settings] = CESettings

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.fn(*args, **kwargs)


def _ce(state: TermState, b: Batch, s: CESettings) -> torch.Tensor:
    return ce_loss(b.logits_s, b.y)


def _kd(state: TermState, b: Batch, s: KDSettings) -> torch.Tensor:
    return kd_loss(b.logits_s, b.logits_t, tau=s.tau)


def _dkd(state: TermState, b: Batch, s: DKDSettings) -> torch.Tensor:
    return dkd_loss(b.logits_s, b.logits_t, b.y, alpha=s.alpha, beta=s.beta, tau=s.tau)


def _fitnets(state: TermState, b: Batch, s: FitNetsSettings) -> torch.Tensor:
    return fitnets_loss(b.feats_s["sequence"], b.feats_t["sequence"], state.projections["fitnets"])


def _at(state: TermState, b: Batch, s: ATSettings) -> torch.Tensor:
    return at_loss(b.feats_s["sequence"], b.feats_t["sequence"])


def _rkd(state: TermState, b: Batch, s: RKDSettings) -> torch.Tensor:
    return rkd_loss(b.feats_s["sequence"], b.feats_t["sequence"], s.w_dist, s.w_angle)


def _dt2w(state: TermState, b: Batch, s: DT2WSettings) -> torch.Tensor:
    if state.dt2w_adapter == "projection":
        return dt2w_loss(b.feats_s["sequence"], b.feats_t["sequence"], state.projections["dt2w"], gamma=s.gamma)
    return dt2w_loss(b.feats_s["sequence"], b.feats_t["sequence"], gamma=s.gamma, channels=state.dt2w_subset)


def _tsd(state: TermState, b: Batch, s: TSDSettings) -> torch.Tensor:
    return state.tsd(b.student, b.x, b.y, index=b.index, student_logits=b.logits_s)


#: name -> :class:`Term`. Registry order is the order terms are computed and reported in.
LOSSES: dict[str, Term] = {
    "ce": Term(ce_loss, _ce, needs_teacher=False),
    "kd": Term(kd_loss, _kd, teacher_logits=True, settings=KDSettings),
    "fitnets": Term(fitnets_loss, _fitnets, features=True, settings=FitNetsSettings),
    "at": Term(at_loss, _at, features=True, settings=ATSettings),
    "rkd": Term(rkd_loss, _rkd, features=True, settings=RKDSettings),
    "dkd": Term(dkd_loss, _dkd, teacher_logits=True, settings=DKDSettings),
    "dt2w": Term(dt2w_loss, _dt2w, features=True, settings=DT2WSettings),
    "tsd": Term(tsd_loss, _tsd, settings=TSDSettings),
}
#: Default weight of every term -- the single place where they are set. CE and every
#: distillation term weigh 1.0; the experiments sweep the TSD weight over
#: {0.1, 0.5, 1, 10, 100} (as in the TSD authors' scripts) by overriding ``"tsd"``.
DEFAULT_WEIGHTS: dict[str, float] = {name: 1.0 for name in LOSSES}
#: Terms that read the models' features (``return_features=True``).
FEATURE_TERMS: frozenset[str] = frozenset(name for name, t in LOSSES.items() if t.features)
#: Terms that need a teacher (everything but CE).
TEACHER_TERMS: frozenset[str] = frozenset(name for name, t in LOSSES.items() if t.needs_teacher)


def parse_method(method: str, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Parse a ``"+"``-joined method name into ``{term: weight}``; CE is always included.

    ``parse_method("kd+tsd") == {"ce": 1.0, "kd": 1.0, "tsd": 1.0}``;
    ``parse_method("ce") == {"ce": 1.0}``. Names are case-insensitive and may be surrounded
    by spaces; repeats are ignored. Weights come from :data:`DEFAULT_WEIGHTS`, overridden by
    ``weights`` (see :func:`resolve_weights`).

    Raises:
        ValueError: an unknown or empty name (the message lists :data:`LOSSES`).
    """
    if not isinstance(method, str):
        raise ValueError(f"method must be a string like 'kd+tsd', got {method!r}")
    names = ["ce"]
    for part in method.split("+"):
        name = part.strip().lower()
        if not name:
            raise ValueError(f"empty term in method {method!r}; known losses: {sorted(LOSSES)}")
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r} in method {method!r}; known losses: {sorted(LOSSES)}")
        if name not in names:
            names.append(name)
    parsed = {name: DEFAULT_WEIGHTS[name] for name in names}
    return _override(parsed, weights, method) if weights else parsed


def _override(parsed: dict[str, float], weights: Mapping[str, float], method: str) -> dict[str, float]:
    out = dict(parsed)
    for name, value in weights.items():
        key = str(name).strip().lower()
        if key not in LOSSES:
            raise ValueError(f"weight given for unknown loss {name!r}; known losses: {sorted(LOSSES)}")
        if key not in out:
            raise ValueError(f"weight given for {key!r}, which method {method!r} does not use (terms: {sorted(out)})")
        out[key] = float(value)
    return out


def resolve_weights(method: str, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Default weights of ``method``'s terms, merged with the overrides in ``weights``.

    ``resolve_weights("kd+tsd", {"tsd": 10}) == {"ce": 1.0, "kd": 1.0, "tsd": 10.0}``.
    Overriding a term the method does not use is an error (it would silently do nothing);
    a weight of 0 disables a term (:class:`~tsd_lib.losses.objective.Objective` skips it).
    """
    return parse_method(method, weights)


def resolve_settings(terms: Mapping[str, float] | list[str], settings: Mapping[str, Mapping[str, Any]] | None = None,
                     *, tau: float | None = None) -> dict[str, Settings]:
    """Every term's settings dataclass (:data:`LOSSES` ``[term].settings``): its defaults, then
    ``tau`` (one temperature for every term that has one, as in the paper), then
    ``settings[term]``, checked by the dataclass; a term's settings given as a dataclass instance
    are taken as they are. Settings for a term outside ``terms`` or a key
    the term does not have are errors (they would silently do nothing).

    ``resolve_settings(["ce", "dkd"], {"dkd": {"beta": 2}}, tau=4)["dkd"] ==
    DKDSettings(alpha=1.0, beta=2.0, tau=4.0)``.
    """
    settings = dict(settings or {})
    out = {}
    for name in terms:
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; known losses: {sorted(LOSSES)}")
        cls = LOSSES[name].settings
        names = {f.name for f in fields(cls)}
        given = settings.pop(name, None)
        if isinstance(given, Settings):  # already built (e.g. by RunConfig.loss_settings): taken as it is
            if not isinstance(given, cls):
                raise ValueError(f"settings of loss {name!r} must be {cls.__name__}, got {type(given).__name__}")
            out[name] = given
            continue
        given = dict(given or {})
        unknown = sorted(set(given) - names)
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} for loss {name!r}; its settings: {sorted(names) or 'none'}")
        shared = {"tau": tau} if tau is not None and "tau" in names else {}
        out[name] = cls(**{**shared, **given})
    if settings:
        raise ValueError(f"settings given for loss(es) {sorted(settings)} that the method does not use "
                         f"(terms: {sorted(terms)})")
    return out
