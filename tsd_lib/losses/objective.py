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

from tsd_lib.losses.feature import (
    DT2W_GAMMA,
    FITNETS_INIT_RANGE,
    at_loss,
    dt2w_loss,
    fitnets_loss,
    make_projection,
    rkd_loss,
)
from tsd_lib.losses.logit import ce_loss, dkd_loss, kd_loss
from tsd_lib.losses.tsd import TSDTerm, tsd_loss

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_TERMS",
    "LOSSES",
    "TEACHER_TERMS",
    "Objective",
    "parse_method",
    "resolve_weights",
]

#: Registry of loss functions (plain dict, mdistiller style): name -> pure function.
LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "ce": ce_loss,
    "kd": kd_loss,
    "fitnets": fitnets_loss,
    "at": at_loss,
    "rkd": rkd_loss,
    "dkd": dkd_loss,
    "dt2w": dt2w_loss,
    "tsd": tsd_loss,
}

#: Default weight of every term -- the single place where they are set. CE and every
#: distillation term weigh 1.0; the experiments sweep the TSD weight over
#: {0.1, 0.5, 1, 10, 100} (as in the TSD authors' scripts) by overriding ``"tsd"``.
DEFAULT_WEIGHTS: dict[str, float] = {name: 1.0 for name in LOSSES}

#: Terms that read the models' features (``return_features=True``).
FEATURE_TERMS: frozenset[str] = frozenset({"fitnets", "at", "rkd", "dt2w"})
#: Terms that need a teacher (everything but CE).
TEACHER_TERMS: frozenset[str] = frozenset(LOSSES) - {"ce"}
#: DT2W adapters: the TSD authors' random subset of teacher channels, or a learned projection.
DT2W_ADAPTERS: tuple[str, ...] = ("random_channels", "projection")


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
    if weights:
        parsed = _override(parsed, weights, method)
    return parsed


def _override(parsed: dict[str, float], weights: Mapping[str, float], method: str) -> dict[str, float]:
    out = dict(parsed)
    for name, value in weights.items():
        key = str(name).strip().lower()
        if key not in LOSSES:
            raise ValueError(f"weight given for unknown loss {name!r}; known losses: {sorted(LOSSES)}")
        if key not in out:
            raise ValueError(
                f"weight given for {key!r}, which method {method!r} does not use (terms: {sorted(out)})"
            )
        out[key] = float(value)
    return out


def resolve_weights(method: str, weights: Mapping[str, float] | None = None) -> dict[str, float]:
    """Default weights of ``method``'s terms, merged with the overrides in ``weights``.

    ``resolve_weights("kd+tsd", {"tsd": 10}) == {"ce": 1.0, "kd": 1.0, "tsd": 10.0}``.
    Overriding a term the method does not use is an error (it would silently do nothing);
    a weight of 0 disables a term (:class:`Objective` skips it).
    """
    return parse_method(method, weights)


class Objective(nn.Module):
    """Weighted sum of distillation terms for one student, with a frozen teacher.

    Args:
        weights: ``{term: weight}`` (e.g. from :func:`resolve_weights`); terms with weight 0
            are skipped entirely.
        teacher: the trained teacher; required by every term except ``"ce"``. It is put in
            eval mode with ``requires_grad_(False)`` and stored *without* registering it as a
            sub-module: ``parameters()``/``state_dict()`` never include it.
        X_pool, y_pool: training series / labels (the rows ``fit`` indexes): the TSD
            perturbation pool (required by ``"tsd"``; passed to
            :class:`tsd_lib.losses.tsd.TSDTerm`) and, when ``"kd"``/``"dkd"`` are active and no
            feature term is, the series whose teacher logits are cached (see below). Pass them
            whenever a teacher term is active.
        tau: temperature of KD, DKD (unless ``dkd_tau``) and TSD (8, the TSD scripts' value).
        n_windows, window: TSD's number of perturbed windows ``K`` (50) and length ``L`` (10).
        tsd_reduce, tsd_score, tsd_baseline, tsd_bank_size: forwarded to ``TSDTerm`` as
            ``reduce``, ``score``, ``baseline``, ``bank_size``.
        dkd_alpha, dkd_beta: DKD's TCKD / NCKD weights (1, 8).
        rkd_w_dist, rkd_w_angle: RKD's distance / angle weights (1, 2: Park et al.'s ratio;
            mdistiller uses 25, 50; the TSD authors' values are not readable). RKD compares the
            flattened ``sequence`` features ``(B, D T)``, as the TSD authors do.
        seed: seed of the TSD term's random windows / donors and of DT2W's channel subsets.
        student: the student model; required by ``"fitnets"`` / ``"dt2w"`` to size their
            adapters from ``student.feature_dim`` and ``teacher.feature_dim``; learned ones are
            built here so that an optimiser can be constructed before the first batch. The
            FitNets 1x1 projection is initialised uniformly in ``(-0.005, 0.005)`` (the TSD
            authors' regressor); FitNets trains jointly with CE (see
            :func:`~tsd_lib.losses.feature.fitnets_loss`).
        dkd_tau: DKD temperature; ``None`` uses ``tau``.
        dt2w_gamma: soft-DTW smoothing of DT2W (1.2, the TSD authors' value).
        dt2w_adapter: ``"random_channels"`` (default, the TSD authors' adapter: each batch the
            teacher's sequence is reduced to a random subset of ``D_S`` of its ``D_T`` channels,
            drawn by a generator seeded with ``seed``; no parameters) or ``"projection"`` (a
            learned 1x1 convolution ``D_S -> D_T`` on the student, PyTorch's default init). A
            teacher narrower than the student (``D_T < D_S``) has no such subset: DT2W then
            falls back to the projection; :attr:`dt2w_adapter` holds the adapter in use.

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
        tau: float = 8.0,
        n_windows: int = 50,
        window: int = 10,
        tsd_reduce: str = "none",
        tsd_score: str = "kl",
        tsd_baseline: str = "other_class",
        tsd_bank_size: int = 200,
        dkd_alpha: float = 1.0,
        dkd_beta: float = 8.0,
        rkd_w_dist: float = 1.0,
        rkd_w_angle: float = 2.0,
        seed: int = 0,
        student: nn.Module | None = None,
        dkd_tau: float | None = None,
        dt2w_gamma: float = DT2W_GAMMA,
        dt2w_adapter: str = "random_channels",
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

        needs_teacher = [name for name in self.active if name in TEACHER_TERMS]
        if needs_teacher and teacher is None:
            raise ValueError(f"term(s) {needs_teacher} need a teacher; pass teacher=<trained model>")
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)
        object.__setattr__(self, "_teacher", teacher)  # deliberately not a sub-module

        self.tau = float(tau)
        self.dkd_alpha, self.dkd_beta = float(dkd_alpha), float(dkd_beta)
        self.dkd_tau = self.tau if dkd_tau is None else float(dkd_tau)
        self.rkd_w_dist, self.rkd_w_angle = float(rkd_w_dist), float(rkd_w_angle)
        self.dt2w_gamma = float(dt2w_gamma)

        if dt2w_adapter not in DT2W_ADAPTERS:
            raise ValueError(f"dt2w_adapter must be one of {DT2W_ADAPTERS}, got {dt2w_adapter!r}")
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
        #: DT2W's adapter in use (``"projection"`` when the teacher is narrower than the student).
        self.dt2w_adapter = "projection" if dt2w_adapter == "projection" or d_t < d_s else "random_channels"
        if "dt2w" in self.active and self.dt2w_adapter == "projection":
            self.projections["dt2w"] = make_projection(d_s, d_t)
        self._dt2w_dims = (d_t, d_s)
        self._dt2w_generator = torch.Generator().manual_seed(int(seed))

        tsd_term = None
        if "tsd" in self.active:
            if X_pool is None or y_pool is None:
                raise ValueError("term 'tsd' needs the perturbation pool: pass X_pool and y_pool (training set)")
            tsd_term = TSDTerm(
                teacher,
                X_pool,
                y_pool,
                n_windows=n_windows,
                window=window,
                tau=self.tau,
                reduce=tsd_reduce,
                score=tsd_score,
                baseline=tsd_baseline,
                bank_size=tsd_bank_size,
                seed=seed,
            )
        object.__setattr__(self, "_tsd", tsd_term)  # holds the teacher too: not a sub-module
        self._needs_features = any(name in FEATURE_TERMS for name in self.active)
        self._needs_teacher_out = any(name in FEATURE_TERMS or name in ("kd", "dkd") for name in self.active)
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
    def tsd_term(self) -> TSDTerm | None:
        """The :class:`~tsd_lib.losses.tsd.TSDTerm` when TSD is active, else ``None``."""
        return self._tsd

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
        if self._tsd is not None:
            self._tsd.to(device)
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
        if self._tsd is not None and self._tsd.use_bank:
            return self._tsd.build_bank().logits
        if self._cached_logits is None:
            with torch.no_grad():
                chunks = [self._teacher(part) for part in self._X_pool.split(_CACHE_BATCH)]
            self._cached_logits = torch.cat(chunks)
        return self._cached_logits

    def extra_repr(self) -> str:
        terms = ", ".join(f"{name}={self.weights[name]:g}" for name in self.active)
        return f"terms=({terms}), tau={self.tau:g}, teacher={type(self._teacher).__name__ if self._teacher else None}"

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

        values: list[torch.Tensor] = []
        total = logits_s.new_zeros(())
        for name in self.active:
            value = self._term(name, student, x, y, index, logits_s, feats_s, logits_t, feats_t)
            values.append(value.detach().reshape(()))
            total = total + self.weights[name] * value
        values.append(total.detach())
        floats = torch.stack(values).float().cpu().tolist()  # one host sync for all terms
        return total, dict(zip((*self.active, "total"), floats, strict=True))

    def _term(
        self,
        name: str,
        student: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        index: torch.Tensor | None,
        logits_s: torch.Tensor,
        feats_s: dict[str, torch.Tensor],
        logits_t: torch.Tensor | None,
        feats_t: dict[str, torch.Tensor],
    ) -> torch.Tensor:
        if name == "ce":
            return ce_loss(logits_s, y)
        if name == "kd":
            return kd_loss(logits_s, logits_t, tau=self.tau)
        if name == "dkd":
            return dkd_loss(logits_s, logits_t, y, alpha=self.dkd_alpha, beta=self.dkd_beta, tau=self.dkd_tau)
        if name == "fitnets":
            return fitnets_loss(feats_s["sequence"], feats_t["sequence"], self.projections["fitnets"])
        if name == "at":
            return at_loss(feats_s["sequence"], feats_t["sequence"])
        if name == "rkd":
            return rkd_loss(feats_s["sequence"], feats_t["sequence"], self.rkd_w_dist, self.rkd_w_angle)
        if name == "dt2w":
            if self.dt2w_adapter == "projection":
                return dt2w_loss(
                    feats_s["sequence"], feats_t["sequence"], self.projections["dt2w"], gamma=self.dt2w_gamma
                )
            d_t, d_s = self._dt2w_dims
            channels = torch.randperm(d_t, generator=self._dt2w_generator)[:d_s]
            return dt2w_loss(feats_s["sequence"], feats_t["sequence"], gamma=self.dt2w_gamma, channels=channels)
        if name == "tsd":
            return self._tsd(student, x, y, index=index, student_logits=logits_s)
        raise AssertionError(f"unhandled term {name!r}")  # pragma: no cover - LOSSES is closed


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
