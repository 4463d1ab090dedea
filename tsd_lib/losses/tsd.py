"""The Temporal Saliency Distillation (TSD) loss.

TSD (Hewa Dehigahawattage, Nandakishor & Palaniswami, "Learning to Reason: Temporal Saliency
Distillation for Interpretable Knowledge Transfer", ECAI 2025, arXiv 2601.04263) transfers
*why* a teacher predicts, not only *what*: the student must react to the removal of each
subsequence the way the teacher does.

For a batch ``x`` with labels ``y``, ``K`` perturbed copies ``x~(t)`` per series (window
``[t, t+L)`` replaced by the same window of a random other-class training series; see
:func:`tsd_lib.saliency.perturb.perturb`) and a model ``f`` with logits ``z_f``::

    s_f(x, t)_c = tau^2 * p_c (log p_c - log q_{t,c}),  p = softmax(z_f(x)/tau), q_t = softmax(z_f(x~(t))/tau)
    s_f <- s_f / (mean of the strictly positive entries of s_f over the batch + 1e-8)
    L_TSD = SmoothL1(s_S, s_T)   (mean over B x K x k entries, beta = 1)

The teacher side is computed without gradients; gradients flow through both student forward
passes (clean and perturbed). Paper defaults: ``K = 50`` windows, ``L = 10``, ``tau = 8``.
Variants: ``reduce="sum"`` (``tau^2 KL(p || q_t)``, one number per window) and
``score="target_prob"`` (the authors' target-class probability change ``q_{t,y} - p_y`` at
temperature 1, :func:`~tsd_lib.saliency.perturb.target_shift`).

:func:`tsd_loss` is the straightforward version (fresh perturbations and a teacher forward at
every step). :class:`TSDTerm` is what training uses: it precomputes the teacher side once
(:class:`~tsd_lib.saliency.perturb.TeacherBank`) so each step only runs the student.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tsd_lib.saliency.perturb import (
    BANK_BASELINES,
    TeacherBank,
    distribution_shift,
    kl_terms,
    n_starts,
    normalise_shift,
    perturb,
    perturbed_logits,
    target_shift,
)
from tsd_lib.settings import SCORES, TSDSettings

__all__ = ["SCORES", "TSDSettings", "TSDTerm", "tsd_loss"]

#: What builds (or loads) a term's teacher bank, e.g. the run store's cache of it.
BankProvider = Callable[[], TeacherBank]


def _settings(settings: TSDSettings | None, changes: dict[str, Any]) -> TSDSettings:
    """``settings`` (default :class:`TSDSettings`) with ``changes`` applied, checked."""
    if settings is None or changes:
        return replace(settings or TSDSettings(), **changes)
    return settings


def student_forward(
    student: nn.Module,
    X: torch.Tensor,
    copies: torch.Tensor,
    student_logits: torch.Tensor | None = None,
    starts: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Student logits on the clean batch and on the perturbed copies, both with gradients.

    Uses :func:`~tsd_lib.saliency.perturb.perturbed_logits`: prefix sharing for an LSTM student
    on CPU (``starts`` needed), else one concatenated forward (two for BatchNorm in training
    mode). Given ``student_logits`` (from the objective's CE/KD pass) are the clean logits, so
    that all terms see the same numbers and the clean batch is run once per step (BatchNorm
    statistics updated once for it); only the copies are then run here.
    """
    return perturbed_logits(student, X, copies, starts, clean=student_logits)


def _saliency(z: torch.Tensor, zp: torch.Tensor, y: torch.Tensor, tau: float, reduce: str, score: str):
    if score == "target_prob":
        return target_shift(z, zp, y)
    return distribution_shift(z, zp, tau, reduce=reduce)


def tsd_loss(
    student: nn.Module,
    teacher: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    X_pool: torch.Tensor,
    y_pool: torch.Tensor,
    settings: TSDSettings | None = None,
    *,
    generator: torch.Generator | None = None,
    student_logits: torch.Tensor | None = None,
    **changes: Any,
) -> torch.Tensor:
    """TSD loss with fresh perturbations (Hewa Dehigahawattage et al., ECAI 2025, arXiv 2601.04263).

    ``L_TSD = SmoothL1(s_S, s_T)`` (mean) where, for each series ``b`` and each of its
    ``K = n_windows`` perturbed copies (window length ``L = window``, replacement ``baseline``),
    ``s_f[b, k, c] = tau^2 p_c (log p_c - log q_{k,c})`` with ``p = softmax(z_f(x_b)/tau)``,
    ``q_k = softmax(z_f(x~_{b,k})/tau)``, normalised by the mean of the strictly positive entries
    of the batch tensor (+1e-8); see :func:`~tsd_lib.saliency.perturb.distribution_shift`.
    ``reduce="sum"`` sums over classes (``tau^2 KL``); ``score="target_prob"`` uses
    ``q_{k,y} - p_y`` at temperature 1 instead (the authors' definition; ``tau`` is then unused).

    The teacher is frozen: it is put in eval mode (and left there) and run under
    ``torch.no_grad``. The student runs with gradients on the clean batch (``student_logits``
    is reused when given) and on the same perturbed copies. The settings are ``settings``
    (default :class:`~tsd_lib.settings.TSDSettings`, the authors' ``K = 50``, ``L = 10``,
    ``tau = 8``) with ``changes`` applied (``tsd_loss(..., n_windows=8)``); ``bank_size`` is unused.
    """
    s = _settings(settings, changes)
    copies, starts = perturb(
        X, y, X_pool, y_pool, n_windows=s.n_windows, window=s.window, baseline=s.baseline, generator=generator
    )
    if teacher.training:
        teacher.eval()
    with torch.no_grad():
        zt, zt_p = perturbed_logits(teacher, X, copies, starts)
    zs, zs_p = student_forward(student, X, copies, student_logits, starts)
    s_T = _saliency(zt, zt_p, y, s.tau, s.reduce, s.score)
    s_S = _saliency(zs, zs_p, y, s.tau, s.reduce, s.score)
    return F.smooth_l1_loss(s_S, s_T)


class TSDTerm:
    """The TSD loss term used in training, with the teacher side precomputed.

    ``TSDTerm(teacher, X_pool, y_pool)(student, x, y, index=idx)`` returns the TSD loss (a
    scalar tensor) of :func:`tsd_loss`. ``X_pool``/``y_pool`` are the training series (donors)
    and ``index`` the rows of ``X_pool`` in the batch (``x == X_pool[index]``).

    The settings are ``settings`` (default :class:`~tsd_lib.settings.TSDSettings`) with ``changes``
    applied (``TSDTerm(teacher, X, y, n_windows=8)``). With ``bank_size > 0`` (4x ``K`` by default)
    a :class:`TeacherBank` is built on first use (or on :meth:`to`), or taken from ``bank``, a
    callable that provides it (the run store's cache): ``bank_size`` perturbations per training
    series with the teacher's logits. Each step then draws ``K`` bank entries per series with distinct starts and, when
    the series has at least ``K`` eligible donors, distinct donors; rebuilds the perturbed
    copies by a gather, runs only the student, normalises the batch's teacher terms exactly as
    :func:`distribution_shift` would, and returns ``SmoothL1(s_S, s_T)``. Averaged over the
    bank's random construction a step's perturbations are distributed as fresh sampling draws
    them, so the expected loss is the same; one fixed bank offers each series only its
    ``bank_size`` stored (start, donor) pairs. The teacher is never run during training.

    ``K`` larger than the ``T - L`` possible starts is capped once, here, with one warning.

    Fresh sampling (:func:`tsd_loss`) is used when ``bank_size`` is 0/None, when ``index`` is
    None, for the ``"noise"`` baseline (not bankable), or (with a warning) when ``x`` is not
    ``X_pool[index]``. Not an ``nn.Module``: the teacher is held, never registered. Draws use
    the term's own CPU ``torch.Generator`` seeded with ``seed``, so runs are reproducible.
    """

    uses_index = True

    def __init__(
        self,
        teacher: nn.Module,
        X_pool: torch.Tensor | np.ndarray,
        y_pool: torch.Tensor | np.ndarray,
        settings: TSDSettings | None = None,
        *,
        seed: int = 0,
        bank: BankProvider | None = None,
        **changes: Any,
    ) -> None:
        settings = _settings(settings, changes)
        self.teacher = teacher
        teacher.eval()
        X_pool = torch.as_tensor(X_pool)
        self.X_pool = X_pool if X_pool.is_floating_point() else X_pool.float()  # float32 data stays float32
        self.y_pool = torch.as_tensor(y_pool, dtype=torch.long).reshape(-1)
        n = n_starts(self.X_pool.shape[-1], settings.window)
        if settings.n_windows > n:
            warnings.warn(
                f"n_windows={settings.n_windows} exceeds the {n} possible starts of a length-{settings.window} "
                f"window in a length-{self.X_pool.shape[-1]} series; using all {n} starts instead",
                stacklevel=2,
            )
            settings = replace(settings, n_windows=n)
        #: The term's settings (``n_windows`` capped at the series' possible starts).
        self.settings = settings
        self.seed = int(seed)
        self._provide_bank = bank
        self.generator = torch.Generator().manual_seed(self.seed)
        self.bank: TeacherBank | None = None
        self.device: torch.device | None = None  # None: the teacher's device until .to() is called
        self._warned_mismatch = False

    @property
    def n_windows(self) -> int:
        """``K``, the perturbations per series of each step (capped at the possible starts)."""
        return self.settings.n_windows

    @property
    def use_bank(self) -> bool:
        """Whether this term precomputes the teacher side (``bank_size > 0`` and a bankable baseline)."""
        return self.settings.bank_size > 0 and self.settings.baseline in BANK_BASELINES

    @property
    def precompute_seconds(self) -> float:
        """Seconds spent building the teacher bank (0 before it is built / without a bank)."""
        return self.bank.precompute_seconds if self.bank is not None else 0.0

    def build_bank(self) -> TeacherBank:
        """Build or take from the provider (once) and return the teacher bank on the current device."""
        if self.bank is None and self._provide_bank is not None:
            bank = self._provide_bank()
            self.bank = bank.to(self.device) if self.device is not None else bank
        elif self.bank is None:
            s = self.settings
            self.bank = TeacherBank(self.teacher, self.X_pool, self.y_pool, bank_size=s.bank_size, window=s.window,
                                    tau=s.tau, baseline=s.baseline, n_windows=s.n_windows, seed=self.seed,
                                    device=self.device)
        return self.bank

    def to(self, device: torch.device | str) -> TSDTerm:
        """Move teacher, pool and bank to ``device`` (building the bank if enabled); returns ``self``."""
        self.device = torch.device(device)
        self.teacher.to(self.device)
        self.X_pool = self.X_pool.to(self.device)
        self.y_pool = self.y_pool.to(self.device)
        if self.bank is not None:
            self.bank.to(self.device)
        elif self.use_bank:
            self.build_bank()
        return self

    def __call__(
        self,
        student: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor | None = None,
        student_logits: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """TSD loss of ``student`` on batch ``(x, y)``; ``index`` = rows of ``X_pool`` in the batch."""
        if index is not None and self.use_bank:
            bank = self.build_bank()
            index = index.to(bank.device)
            if x.shape == (index.shape[0], *bank.X_pool.shape[1:]) and torch.equal(x, bank.X_pool[index]):
                return self._bank_loss(bank, student, x, y, index, student_logits)
            if not self._warned_mismatch:
                warnings.warn("TSDTerm: x differs from X_pool[index]; using fresh perturbations", stacklevel=2)
                self._warned_mismatch = True
        return tsd_loss(student, self.teacher, x, y, self.X_pool, self.y_pool, self.settings,
                        generator=self.generator, student_logits=student_logits)

    def _bank_loss(
        self,
        bank: TeacherBank,
        student: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor,
        student_logits: torch.Tensor | None,
    ) -> torch.Tensor:
        entries = bank.sample_entries(index, self.n_windows, self.generator)
        copies = bank.perturbed(x, index, entries)
        starts = bank.starts[index].gather(1, entries)
        zs, zs_p = student_forward(student, x, copies, student_logits, starts)
        zt = bank.logits[index]
        zt_p = bank.logits_perturbed[index].gather(1, entries[..., None].expand(-1, -1, zt.shape[-1]))
        s = self.settings
        if s.score == "target_prob":
            s_T = target_shift(zt, zt_p, y)
            s_S = target_shift(zs, zs_p, y)
        else:
            t_terms = kl_terms(zt, zt_p, s.tau)
            if s.reduce == "sum":
                t_terms = t_terms.sum(dim=-1)
            s_T = normalise_shift(t_terms)
            s_S = distribution_shift(zs, zs_p, s.tau, reduce=s.reduce)
        return F.smooth_l1_loss(s_S, s_T)
