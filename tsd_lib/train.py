"""Training loop shared by teachers and students.

``fit`` trains any model on a :class:`tsd_lib.data.Dataset` with any objective
``objective(model, x, y) -> (loss, {term: value})``, the protocol of the TSD paper:
Adam (lr 0.005, weight decay 1e-5), step decay x0.5, batch 32, up to 500 epochs, early
stopping on the validation cross-entropy with patience 50, the best-on-validation weights
restored.

Two learning-rate schedules: ``"paper"`` is the authors' ``MultiStepLR([25, 30, 35], 0.5)``
stepped once per *batch* (the rate is 0.005/8 after the 35th optimiser step); ``"step"``
halves the rate every ``lr_step`` epochs. ``warmup`` epochs pass before patience starts to
count (a model on its initial plateau is not stopped there; the best weights are still chosen
over every epoch). ``budgets`` keeps the best-on-validation weights *so far* at each listed
epoch, so one run gives every point of an epoch-budget study.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tsd_lib.data import Dataset
from tsd_lib.models import build_model
from tsd_lib.runtime import resolve_device, set_seed
from tsd_lib.settings import ProtocolSettings
from tsd_lib.utils import progress

#: What :func:`fit` calls each step: ``objective(model, x, y[, index=rows]) -> (loss, {term: value})``
#: (e.g. :class:`tsd_lib.losses.Objective`).
LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]


#: ``"paper"``: MultiStepLR per batch (the authors' code); ``"step"``: StepLR per ``lr_step`` epochs.
LR_SCHEDULES = ("paper", "step")


class TrainingDivergedError(RuntimeError):
    """Raised when the training loss becomes NaN or infinite."""


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit` (defaults: the paper's protocol)."""

    epochs: int = 500
    patience: int = ProtocolSettings.patience
    batch_size: int = ProtocolSettings.batch_size
    lr: float = ProtocolSettings.lr
    weight_decay: float = 1e-5
    lr_step: int = 100
    lr_gamma: float = 0.5
    lr_schedule: str = "step"
    lr_milestones: tuple[int, ...] = (25, 30, 35)
    warmup: int = 0
    clip_grad: float | None = None
    budgets: tuple[int, ...] = ()
    seed: int = 0
    device: str = "auto"
    progress: bool | None = None
    desc: str = "train"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError("epochs, batch_size and patience must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup < 0:
            raise ValueError("warmup must be >= 0")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError("clip_grad must be positive (or None)")
        self.lr_milestones = tuple(int(m) for m in self.lr_milestones)
        self.budgets = tuple(sorted({int(b) for b in self.budgets}))


@dataclass
class History:
    """Per-epoch records of one training run."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    #: best-on-validation weights so far at each budget epoch (not serialised)
    budget_states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)
    #: the best epoch so far at each budget epoch
    budget_best_epochs: dict[int, int] = field(default_factory=dict)

    @property
    def epochs_run(self) -> int:
        return len(self.epochs)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "budget_states"}

    def column(self, key: str) -> list[float]:
        """One quantity over epochs, e.g. ``history.column("val_loss")``."""
        return [row.get(key, math.nan) for row in self.epochs]


def cross_entropy_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The plain supervised objective: cross-entropy on the labels."""
    loss = F.cross_entropy(model(x), y)
    return loss, {"ce": float(loss.detach())}


@torch.no_grad()
def predict_logits(
    model: nn.Module, X: np.ndarray | torch.Tensor, *, batch_size: int = 256, device: str = "auto"
) -> np.ndarray:
    """Logits of ``model`` on ``X`` (eval mode, batched), as a float32 NumPy array."""
    dev = resolve_device(device)
    was_training = model.training
    model.eval().to(dev)
    X = torch.as_tensor(X, dtype=torch.float32)
    out = [model(X[i : i + batch_size].to(dev)).float().cpu() for i in range(0, len(X), batch_size)]
    model.train(was_training)
    if not out:
        return np.zeros((0, getattr(model, "n_classes", 0)), dtype=np.float32)
    return torch.cat(out).numpy()


def evaluate(
    model: nn.Module, X: np.ndarray | torch.Tensor, y: np.ndarray, *, device: str = "auto"
) -> dict[str, float]:
    """Cross-entropy and accuracy of ``model`` on ``(X, y)``."""
    if len(X) == 0:
        return {"loss": math.nan, "accuracy": math.nan}
    logits = torch.from_numpy(predict_logits(model, X, device=device))
    target = torch.as_tensor(y, dtype=torch.long)
    return {
        "loss": float(F.cross_entropy(logits, target)),
        "accuracy": float((logits.argmax(1) == target).float().mean()),
    }


def train_model(name: str, data: Dataset, config: TrainConfig, *,
                objective: Callable[[nn.Module], LossFn] | None = None,
                model_kwargs: Mapping[str, Any] | None = None) -> tuple[nn.Module, History]:
    """Build architecture ``name`` for ``data`` under seed ``config.seed`` and :func:`fit` it: the one
    training front-end of runs, teachers, the estimator and ``tsd train``. ``objective(model)`` builds
    the loss once the model exists (a distillation objective sizes its adapters from the student);
    without it the model trains on cross-entropy. Returns ``(model, history)``."""
    set_seed(config.seed)
    model = build_model(name, data.n_channels, data.n_classes, **(model_kwargs or {}))
    return model, fit(model, data, objective(model) if objective else None, config)


def fit(
    model: nn.Module,
    dataset: Dataset,
    objective: LossFn | None = None,
    config: TrainConfig | None = None,
    **overrides: Any,
) -> History:
    """Train ``model`` in place on ``dataset.X_train`` and return its :class:`History`.

    ``objective(model, x, y) -> (loss, terms)`` defaults to cross-entropy. When it has
    ``uses_index = True`` it is called as ``objective(model, x, y, index=rows)``; when it owns
    parameters (``objective.parameters()``) they are optimised with the model's. Selection:
    the epoch with the lowest validation cross-entropy (training loss when there is no
    validation split); its weights are restored at the end. ``overrides`` update ``config``.
    """
    config = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    objective = objective or cross_entropy_objective
    set_seed(config.seed)
    device = resolve_device(config.device)
    model.to(device)
    if hasattr(objective, "to"):
        objective.to(device)

    params = list(model.parameters())
    if hasattr(objective, "parameters"):
        params += [p for p in objective.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    per_batch = config.lr_schedule == "paper"
    if per_batch:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), config.lr_gamma)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_gamma)
    uses_index = bool(getattr(objective, "uses_index", False))

    X = torch.as_tensor(dataset.X_train, dtype=torch.float32, device=device)
    y = torch.as_tensor(dataset.y_train, dtype=torch.long, device=device)
    n = len(X)
    has_val = len(dataset.X_val) > 0
    X_val = torch.as_tensor(dataset.X_val, dtype=torch.float32, device=device)  # moved once, not every epoch
    shuffler = torch.Generator().manual_seed(config.seed)

    history = History()
    best_score, best_state, bad_epochs = math.inf, None, 0
    start = time.perf_counter()
    bar = progress(range(config.epochs), enabled=config.progress, desc=config.desc, leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=shuffler).to(device)
        total, terms_sum, seen, lr_used = 0.0, {}, 0, optimizer.param_groups[0]["lr"]
        for i in range(0, n, config.batch_size):
            idx = order[i : i + config.batch_size]
            if len(idx) < 2 and n > 1:  # BatchNorm cannot train on a single series
                continue
            xb, yb = X[idx], y[idx]
            loss, terms = objective(model, xb, yb, index=idx) if uses_index else objective(model, xb, yb)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"loss became {float(loss.detach())} at epoch {epoch + 1} (terms: {terms}); "
                    "try a smaller learning rate or smaller loss weights"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.clip_grad is not None:
                nn.utils.clip_grad_norm_(params, config.clip_grad)
            lr_used = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if per_batch:
                scheduler.step()
            total += float(loss.detach()) * len(idx)
            for k, v in terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + float(v) * len(idx)
            seen += len(idx)
        if not per_batch:
            scheduler.step()

        row = {"epoch": epoch + 1, "lr": lr_used, "train_loss": total / max(seen, 1)}
        row.update({f"train_{k}": v / max(seen, 1) for k, v in terms_sum.items() if k != "total"})
        if has_val:
            val = evaluate(model, X_val, dataset.y_val, device=str(device))
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        row["seconds"] = time.perf_counter() - t0
        history.epochs.append(row)

        score = row["val_loss"] if has_val else row["train_loss"]
        if score < best_score - 1e-12:
            best_score, bad_epochs, history.best_epoch = score, 0, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        elif epoch + 1 > config.warmup:  # patience counts only after the warm-up
            bad_epochs += 1
        if epoch + 1 in config.budgets:
            history.budget_states[epoch + 1] = best_state
            history.budget_best_epochs[epoch + 1] = history.best_epoch
        bar.set_postfix(loss=f"{row['train_loss']:.4f}", val=f"{row.get('val_loss', math.nan):.4f}")
        if bad_epochs >= config.patience:
            history.stopped_early = True
            break
    bar.close()
    for budget in config.budgets:  # budgets never reached: the run had converged before them
        if budget not in history.budget_states:
            history.budget_states[budget] = best_state
            history.budget_best_epochs[budget] = history.best_epoch

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - start
    return history
