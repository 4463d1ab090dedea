"""Distillation losses: one pure function per method, a registry ``LOSSES`` and ``Objective``.

========== ===================================================== ==========================
name       loss                                                  reference
========== ===================================================== ==========================
``ce``     cross-entropy on the labels                           --
``kd``     :math:`\\tau^2` KL of softened logits                   Hinton et al., 2015
``fitnets`` MSE between projected student and teacher sequences  Romero et al., 2015
``at``     attention-over-time transfer                          Zagoruyko & Komodakis, 2017
``rkd``    relational KD (distance + angle)                      Park et al., 2019
``dkd``    decoupled KD (TCKD + NCKD)                            Zhao et al., 2022
``dt2w``   soft-DTW alignment of feature sequences               Qiao et al., 2023
``tsd``    temporal saliency distillation                        Hewa Dehigahawattage et al., 2025
========== ===================================================== ==========================

``LOSSES`` maps each name to a :class:`~tsd_lib.losses.registry.Term` (its function, what it
reads, its settings dataclass from :mod:`tsd_lib.settings`, how the objective calls it).
``Objective`` combines them
(``parse_method("kd+tsd")`` -> ``{"ce": 1, "kd": 1, "tsd": 1}``), each term with its settings
(``resolve_settings``); ``DEFAULT_WEIGHTS`` holds the default weight of every term.
"""

from tsd_lib.losses.feature import at_loss, dt2w_loss, fitnets_loss, make_projection, rkd_loss, soft_dtw
from tsd_lib.losses.logit import ce_loss, dkd_loss, kd_loss
from tsd_lib.losses.objective import Objective
from tsd_lib.losses.registry import (
    DEFAULT_WEIGHTS,
    FEATURE_TERMS,
    LOSSES,
    TEACHER_TERMS,
    Term,
    TermState,
    parse_method,
    resolve_settings,
    resolve_weights,
)
from tsd_lib.losses.tsd import TSDTerm, tsd_loss
from tsd_lib.settings import TSDSettings

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_TERMS",
    "LOSSES",
    "TEACHER_TERMS",
    "Objective",
    "TSDSettings",
    "TSDTerm",
    "Term",
    "TermState",
    "at_loss",
    "ce_loss",
    "dkd_loss",
    "dt2w_loss",
    "fitnets_loss",
    "kd_loss",
    "make_projection",
    "parse_method",
    "resolve_settings",
    "resolve_weights",
    "rkd_loss",
    "soft_dtw",
    "tsd_loss",
]
