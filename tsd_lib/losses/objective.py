"""The training objective: a weighted sum of registered losses, with a frozen teacher.

``Objective(weights, teacher, X_pool, y_pool, student=...)`` is what
:func:`tsd_lib.train.fit` calls as ``objective(model, x, y[, index=idx])``. It computes the
student's logits (and features, when a feature term is active) once and the teacher's once
under ``torch.no_grad``, then

.. math:: \\mathcal{L} = \\sum_{m \\in \\text{method}} w_m\\, \\mathcal{L}_m

e.g. ``w_ce CE + w_kd KD + w_tsd TSD`` for ``method="kd+tsd"`` (Hewa Dehigahawattage et al.,
ECAI 2025, the TSD paper's objective). The teacher is held but never registered as a
sub-module, so ``objective.parameters()`` yields only the learnable adapters (the FitNets
projection, and DT2W's when it uses one).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tsd_lib.losses.feature import FITNETS_INIT_RANGE, make_projection
from tsd_lib.losses.registry import LOSSES, Batch, TermState, resolve_settings
from tsd_lib.losses.tsd import BankProvider, TSDTerm
from tsd_lib.settings import Settings

__all__ = ["Objective"]


class Objective(nn.Module):
    """Weighted sum of distillation terms for one student, with a frozen teacher.

    Args:
        weights: ``{term: weight}`` (e.g. from :func:`~tsd_lib.losses.registry.resolve_weights`); terms with weight 0
            are skipped entirely.
        teacher: the trained teacher; required by every term except ``"ce"``. It is put in
            eval mode with ``requires_grad_(False)`` and stored *without* registering it as a
            sub-module: ``parameters()``/``state_dict()`` never include it.
        X_pool, y_pool: training series / labels (the rows ``fit`` indexes): the TSD
            perturbation pool (required by ``"tsd"``; passed to
            :class:`tsd_lib.losses.tsd.TSDTerm`) and, when ``"kd"``/``"dkd"`` are active and no
            feature term is, the series whose teacher logits are cached (see below). Pass them
            whenever a teacher term is active.
        settings: each term's settings, one mapping per term (``{"dkd": {"beta": 2.0}}``); see
            :func:`~tsd_lib.losses.registry.resolve_settings`. Each term's settings and their
            defaults are its dataclass in :mod:`tsd_lib.settings` (KD ``tau``; DKD ``alpha, beta,
            tau``; RKD ``w_dist, w_angle``, on the flattened ``sequence`` features ``(B, D T)`` as the
            TSD authors do; DT2W ``gamma`` and ``adapter``; TSD :class:`~tsd_lib.settings.TSDSettings`).
        tau: one temperature for every term that has one (KD, DKD, TSD) unless ``settings`` gives
            a term its own.
        seed: seed of the TSD term's random windows / donors and of DT2W's channel subsets.
        student: the student model; required by ``"fitnets"`` / ``"dt2w"`` to size their
            adapters from ``student.feature_dim`` and ``teacher.feature_dim``; learned ones are
            built here so that an optimiser can be constructed before the first batch. The
            FitNets 1x1 projection is initialised uniformly in ``(-0.005, 0.005)`` (the TSD
            authors' regressor); FitNets trains jointly with CE (see
            :func:`~tsd_lib.losses.feature.fitnets_loss`).
        tsd_bank: a callable providing the TSD term's teacher bank (e.g. the run store's cache
            of it); it is called only when the term uses a bank. ``None``: the term builds it.
        The DT2W ``adapter`` is ``"random_channels"`` (default, the TSD authors' adapter: each
        run the teacher's sequence is reduced to one random subset of ``D_S`` of its ``D_T``
        channels, drawn once with ``seed``; no parameters. A subset drawn anew every batch, as this
        kit did before, gives every student channel a moving target whose expected soft-DTW is
        smallest for a constant sequence: the student's features collapsed and DT2W sat at chance) or ``"projection"``
        (a learned 1x1 convolution ``D_S -> D_T`` on the student, PyTorch's default init). A
        teacher narrower than the student (``D_T < D_S``) has no such subset: DT2W then falls
        back to the projection; :attr:`dt2w_adapter` holds the adapter in use.

    Calling ``objective(student, x, y, index=None)`` returns ``(total, terms)`` where
    ``terms`` maps each active term to its *unweighted* value (a Python float) plus
    ``"total"``. :attr:`uses_index` is true when TSD is active or teacher logits are cached
    (``fit`` then passes the batch's row indices into the training set).

    Teacher logits cache: the teacher is frozen and the training series are fixed, so for KD /
    DKD without feature terms its logits on ``X_pool`` are computed once, lazily at the first
    indexed call (or taken from the TSD bank, which stores them), and looked up by ``index``
    afterwards: a KD step then costs about a CE step. The cached values equal a per-batch
    forward up to float rounding of the batch layout (~1e-7). Without ``index``, or when ``x``
    is not ``X_pool[index]`` (a warning, once), the teacher runs on ``x`` as before.
    """

    def __init__(
        self,
        weights: Mapping[str, float],
        teacher: nn.Module | None = None,
        X_pool: Any = None,
        y_pool: Any = None,
        *,
        settings: Mapping[str, Mapping[str, Any]] | None = None,
        tau: float | None = None,
        seed: int = 0,
        student: nn.Module | None = None,
        tsd_bank: BankProvider | None = None,
    ) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(LOSSES))
        if unknown:
            raise ValueError(f"unknown loss(es) {unknown} in weights; known losses: {sorted(LOSSES)}")
        self.weights: dict[str, float] = {name: float(weights[name]) for name in LOSSES if name in weights}
        #: Active terms (non-zero weight), in registry order.
        self.active: tuple[str, ...] = tuple(name for name, w in self.weights.items() if w != 0.0)
        if not self.active:
            raise ValueError(f"no active term: every weight is 0 in {dict(weights)}")

        needs_teacher = [name for name in self.active if LOSSES[name].needs_teacher]
        if needs_teacher and teacher is None:
            raise ValueError(f"term(s) {needs_teacher} need a teacher; pass teacher=<trained model>")
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # deliberately not a sub-module

        #: Every term's settings, defaults filled in (active terms only).
        self.settings: dict[str, Settings] = resolve_settings(self.active, settings, tau=tau)

        self.projections = nn.ModuleDict()
        adapted = [name for name in ("fitnets", "dt2w") if name in self.active]
        if adapted and student is None:
            raise ValueError(
                f"term(s) {adapted} adapt the student's features to the teacher's width; "
                "pass student=<student model> to Objective"
            )
        d_s = _feature_dim(student, "student") if adapted else 0
        d_t = _feature_dim(teacher, "teacher") if adapted else 0
        if "fitnets" in self.active:
            self.projections["fitnets"] = make_projection(d_s, d_t, init_range=FITNETS_INIT_RANGE)
        wanted = self.settings["dt2w"].adapter if "dt2w" in self.settings else "random_channels"
        dt2w_adapter = "projection" if wanted == "projection" or d_t < d_s else "random_channels"
        if "dt2w" in self.active and dt2w_adapter == "projection":
            self.projections["dt2w"] = make_projection(d_s, d_t)
        # DT2W's teacher channels (random adapter): one subset of ``D_S`` of the ``D_T`` channels per run.
        dt2w_subset = torch.randperm(d_t, generator=torch.Generator().manual_seed(int(seed)))[:d_s]

        tsd_term = None
        if "tsd" in self.active:
            if X_pool is None or y_pool is None:
                raise ValueError("term 'tsd' needs the perturbation pool: pass X_pool and y_pool (training set)")
            tsd_term = TSDTerm(teacher, X_pool, y_pool, self.settings["tsd"], seed=seed, bank=tsd_bank)
        # holds the TSD term, hence the teacher: a plain attribute, not a sub-module
        object.__setattr__(self, "_state", TermState(self.projections, dt2w_adapter, dt2w_subset, tsd_term))
        self._needs_features = any(LOSSES[name].features for name in self.active)
        self._needs_teacher_out = any(LOSSES[name].features or LOSSES[name].teacher_logits for name in self.active)
        self._device = _module_device(teacher)
        caching = self._needs_teacher_out and not self._needs_features and X_pool is not None
        #: Training series whose teacher logits are cached (``None``: no cache).
        self._X_pool = torch.as_tensor(X_pool, dtype=torch.float32, device=self._device) if caching else None
        self._cached_logits: torch.Tensor | None = None
        self._warned_mismatch = False
        self.uses_index: bool = tsd_term is not None or caching

    @property
    def teacher(self) -> nn.Module | None:
        """The frozen teacher (read-only; not a sub-module)."""
        return self._teacher

    @property
    def dt2w_adapter(self) -> str:
        """DT2W's adapter in use (``"projection"`` when the teacher is narrower than the student)."""
        return self._state.dt2w_adapter

    @property
    def dt2w_subset(self) -> torch.Tensor:
        """DT2W's teacher channels (random adapter): one subset of ``D_S`` of the ``D_T`` channels per run."""
        return self._state.dt2w_subset

    @property
    def tsd_term(self) -> TSDTerm | None:
        """The :class:`~tsd_lib.losses.tsd.TSDTerm` when TSD is active, else ``None``."""
        return self._state.tsd

    def train(self, mode: bool = True) -> Objective:
        """Set the projections' mode; the teacher always stays in eval mode."""
        super().train(mode)
        if self._teacher is not None:
            self._teacher.eval()
        return self

    def _apply(self, fn: Callable[[torch.Tensor], torch.Tensor], recurse: bool = True) -> Objective:
        # Every .to()/.cuda()/.cpu()/.double() goes through _apply: also move the teacher and
        # the TSD term (which holds its own tensors), inferring the target device by applying
        # ``fn`` to an empty probe tensor.
        super()._apply(fn, recurse)
        if self._teacher is not None:
            self._teacher._apply(fn)
        device = fn(torch.empty(0, device=self._device)).device
        if self._state.tsd is not None:
            self._state.tsd.to(device)
        if self._X_pool is not None:
            self._X_pool, self._cached_logits = fn(self._X_pool), None  # recomputed on first use
        self._device = device
        return self

    def _teacher_logits(self, x: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        """The teacher's logits on ``x``: from the cache when ``x`` is ``X_pool[index]``, else a forward."""
        if index is not None and self._X_pool is not None:
            rows = index.to(self._X_pool.device)
            if x.shape == (rows.shape[0], *self._X_pool.shape[1:]) and torch.equal(x, self._X_pool[rows].to(x.dtype)):
                return self._logit_table()[rows]
            if not self._warned_mismatch:
                warnings.warn("Objective: x differs from X_pool[index]; running the teacher", stacklevel=3)
                self._warned_mismatch = True
        with torch.no_grad():
            return self._teacher(x)

    def _logit_table(self) -> torch.Tensor:
        """Teacher logits ``(N, k)`` of every ``X_pool`` row: the TSD bank's, or computed once here."""
        if self._state.tsd is not None and self._state.tsd.use_bank:
            return self._state.tsd.build_bank().logits
        if self._cached_logits is None:
            with torch.no_grad():
                chunks = [self._teacher(part) for part in self._X_pool.split(_CACHE_BATCH)]
            self._cached_logits = torch.cat(chunks)
        return self._cached_logits

    def extra_repr(self) -> str:
        terms = ", ".join(f"{name}={self.weights[name]:g}" for name in self.active)
        return f"terms=({terms}), teacher={type(self._teacher).__name__ if self._teacher else None}"

    def forward(
        self, student: nn.Module, x: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Total weighted loss and ``{term: unweighted value, ..., "total": value}``."""
        if self._needs_features:
            logits_s, feats_s = student(x, return_features=True)
        else:
            logits_s, feats_s = student(x), {}
        logits_t, feats_t = None, {}
        if self._needs_features:
            with torch.no_grad():
                logits_t, feats_t = self._teacher(x, return_features=True)
        elif self._needs_teacher_out:
            logits_t = self._teacher_logits(x, index)

        batch = Batch(student, x, y, index, logits_s, feats_s, logits_t, feats_t)
        values: list[torch.Tensor] = []
        total = logits_s.new_zeros(())
        for name in self.active:
            value = LOSSES[name].compute(self._state, batch, self.settings[name])
            values.append(value.detach().reshape(()))
            total = total + self.weights[name] * value
        values.append(total.detach())
        floats = torch.stack(values).float().cpu().tolist()  # one host sync for all terms
        return total, dict(zip((*self.active, "total"), floats, strict=True))


#: Rows per teacher forward when caching its logits on the training set.
_CACHE_BATCH = 256


def _feature_dim(model: nn.Module | None, role: str) -> int:
    dim = getattr(model, "feature_dim", None)
    if dim is None:
        raise ValueError(f"the {role} model has no `feature_dim` attribute (see the model contract)")
    return int(dim)


def _module_device(module: nn.Module | None) -> torch.device:
    """Device of a module's first parameter or buffer (CPU when it has none)."""
    if module is not None:
        for tensor in (*module.parameters(), *module.buffers()):
            return tensor.device
    return torch.device("cpu")
