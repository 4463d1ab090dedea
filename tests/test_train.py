"""The training loop: learning, determinism, early stopping, objectives, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tsd_lib.models import SMOKE_SETTINGS, build_model
from tsd_lib.train import TrainConfig, TrainingDivergedError, evaluate, fit
from tsd_lib.utils import set_seed


def _smoke(name: str, data) -> nn.Module:
    set_seed(0)
    return build_model(name, data.n_channels, data.n_classes, **SMOKE_SETTINGS[name])


def test_fit_learns_planted_patterns_above_chance(synthetic):
    data, _ = synthetic
    set_seed(0)
    model = build_model("fcn_small", data.n_channels, data.n_classes)
    history = fit(model, data, epochs=15, patience=15, progress=False)
    acc = evaluate(model, data.X_test, data.y_test)["accuracy"]
    assert acc >= 0.8, f"test accuracy {acc:.2f} on an easy planted-pattern set"
    assert history.epochs_run == 15
    assert history.column("train_loss")[-1] < history.column("train_loss")[0]


def test_identical_seeds_give_identical_weights(synthetic):
    data, _ = synthetic
    states = []
    for _ in range(2):
        model = _smoke("lstm_student", data)
        fit(model, data, epochs=3, seed=7, progress=False)
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    other = _smoke("lstm_student", data)
    fit(other, data, epochs=3, seed=8, progress=False)
    assert not all(torch.equal(states[0][k], other.state_dict()[k]) for k in states[0])


def test_early_stopping_restores_best_validation_weights(synthetic):
    data, _ = synthetic
    model = _smoke("fcn", data)
    history = fit(model, data, epochs=60, patience=3, lr=0.05, progress=False)
    val_losses = history.column("val_loss")
    assert history.stopped_early and history.epochs_run < 60
    assert history.best_epoch == int(np.argmin(val_losses)) + 1
    restored = evaluate(model, data.X_val, data.y_val)["loss"]
    assert restored == pytest.approx(min(val_losses), rel=1e-5)


class _CountingObjective(nn.Module):
    """Owns a parameter (like FitNets' projection) and checks the index protocol."""

    uses_index = True

    def __init__(self, X_train: np.ndarray) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.X_train = torch.as_tensor(X_train)
        self.calls = 0

    def forward(self, model, x, y, index=None):
        assert index is not None and torch.equal(self.X_train[index.cpu()], x.cpu())
        self.calls += 1
        loss = F.cross_entropy(model(x) * self.scale, y)
        return loss, {"ce": float(loss.detach())}


def test_objective_parameters_are_optimised_and_index_passed(synthetic):
    data, _ = synthetic
    model = _smoke("fcn_small", data)
    objective = _CountingObjective(data.X_train)
    history = fit(model, data, objective, epochs=2, progress=False)
    assert objective.calls > 0
    assert objective.scale.item() != 1.0
    assert "train_ce" in history.epochs[0]


def test_nan_loss_raises_clear_error(synthetic):
    data, _ = synthetic

    def broken(model, x, y):
        return model(x).sum() * math.nan, {}

    with pytest.raises(TrainingDivergedError, match="loss became nan at epoch 1"):
        fit(_smoke("fcn_small", data), data, broken, epochs=2, progress=False)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0)


def test_gunpoint_teacher_reaches_sensible_accuracy(gunpoint):
    # Measured: fcn_small, 60 epochs, seed 0 -> 0.83 on GunPoint's 150 test series.
    set_seed(0)
    model = build_model("fcn_small", gunpoint.n_channels, gunpoint.n_classes)
    fit(model, gunpoint, epochs=60, patience=60, progress=False)
    acc = evaluate(model, gunpoint.X_test, gunpoint.y_test)["accuracy"]
    assert acc >= 0.78, f"GunPoint test accuracy {acc:.3f}"
