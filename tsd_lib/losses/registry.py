"""The loss registry: one entry per loss, holding its pure function, what it reads, its default
settings and how the objective calls it (mdistiller's plain dict that also dispatches).

Each term's settings travel as one nested mapping (torchdistill style), e.g.
``{"dkd": {"alpha": 1.0, "beta": 8.0}, "tsd": {"n_windows": 10}}``; :func:`resolve_settings`
fills in the defaults of every active term and rejects unknown keys. Adding a loss is one
function in ``logit``/``feature``/``tsd`` and one :class:`Term` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tsd_lib.losses.feature import DT2W_GAMMA, at_loss, dt2w_loss, fitnets_loss, rkd_loss
from tsd_lib.losses.logit import ce_loss, dkd_loss, kd_loss
from tsd_lib.losses.tsd import TSD_DEFAULTS, tsd_loss

if TYPE_CHECKING:
    from tsd_lib.losses.objective import Objective

#: DT2W adapters: the TSD authors' random subset of teacher channels, or a learned projection.
DT2W_ADAPTERS: tuple[str, ...] = ("random_channels", "projection")


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


Compute = Callable[["Objective", Batch, dict[str, Any]], torch.Tensor]


@dataclass(frozen=True)
class Term:
    """A registered loss. Calling it calls its pure function."""

    fn: Callable[..., torch.Tensor]
    compute: Compute
    needs_teacher: bool = True
    features: bool = False  # reads the models' ``return_features=True`` outputs
    teacher_logits: bool = False  # reads the teacher's logits (cached per training series when possible)
    defaults: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.fn(*args, **kwargs)


def _ce(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return ce_loss(b.logits_s, b.y)


def _kd(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return kd_loss(b.logits_s, b.logits_t, tau=s["tau"])


def _dkd(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return dkd_loss(b.logits_s, b.logits_t, b.y, alpha=s["alpha"], beta=s["beta"], tau=s["tau"])


def _fitnets(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return fitnets_loss(b.feats_s["sequence"], b.feats_t["sequence"], obj.projections["fitnets"])


def _at(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return at_loss(b.feats_s["sequence"], b.feats_t["sequence"])


def _rkd(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return rkd_loss(b.feats_s["sequence"], b.feats_t["sequence"], s["w_dist"], s["w_angle"])


def _dt2w(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    if obj.dt2w_adapter == "projection":
        return dt2w_loss(b.feats_s["sequence"], b.feats_t["sequence"], obj.projections["dt2w"], gamma=s["gamma"])
    return dt2w_loss(b.feats_s["sequence"], b.feats_t["sequence"], gamma=s["gamma"], channels=obj.dt2w_subset)


def _tsd(obj: Objective, b: Batch, s: dict[str, Any]) -> torch.Tensor:
    return obj.tsd_term(b.student, b.x, b.y, index=b.index, student_logits=b.logits_s)


#: name -> :class:`Term`. Registry order is the order terms are computed and reported in.
LOSSES: dict[str, Term] = {
    "ce": Term(ce_loss, _ce, needs_teacher=False),
    "kd": Term(kd_loss, _kd, teacher_logits=True, defaults={"tau": 8.0}),
    "fitnets": Term(fitnets_loss, _fitnets, features=True),
    "at": Term(at_loss, _at, features=True),
    # RKD: Park et al.'s 1:2 ratio (mdistiller's configuration uses 25, 50; the TSD authors' is not readable)
    "rkd": Term(rkd_loss, _rkd, features=True, defaults={"w_dist": 1.0, "w_angle": 2.0}),
    "dkd": Term(dkd_loss, _dkd, teacher_logits=True, defaults={"alpha": 1.0, "beta": 8.0, "tau": 8.0}),
    "dt2w": Term(dt2w_loss, _dt2w, features=True, defaults={"gamma": DT2W_GAMMA, "adapter": "random_channels"}),
    "tsd": Term(tsd_loss, _tsd, defaults=TSD_DEFAULTS),
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
                     *, tau: float | None = None) -> dict[str, dict[str, Any]]:
    """Every term's settings: its defaults, then ``tau`` (one temperature for every term that
    has one, as in the paper), then ``settings[term]``. Settings for a term outside ``terms``
    or a key the term does not have are errors (they would silently do nothing).

    ``resolve_settings(["ce", "dkd"], {"dkd": {"beta": 2}}, tau=4)["dkd"] ==
    {"alpha": 1.0, "beta": 2, "tau": 4}``.
    """
    settings = dict(settings or {})
    out = {}
    for name in terms:
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r}; known losses: {sorted(LOSSES)}")
        mine = {**LOSSES[name].defaults}
        if tau is not None and "tau" in mine:
            mine["tau"] = float(tau)
        given = dict(settings.pop(name, None) or {})
        unknown = sorted(set(given) - set(mine))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown} for loss {name!r}; its settings: {sorted(mine) or 'none'}")
        out[name] = {**mine, **given}
    if settings:
        raise ValueError(f"settings given for loss(es) {sorted(settings)} that the method does not use "
                         f"(terms: {sorted(terms)})")
    if "dt2w" in out and out["dt2w"]["adapter"] not in DT2W_ADAPTERS:
        raise ValueError(f"dt2w_adapter must be one of {DT2W_ADAPTERS}, got {out['dt2w']['adapter']!r}")
    return out
