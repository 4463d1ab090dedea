"""The training loop: learning, determinism, early stopping, objectives, divergence."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tsd_lib.models import SMOKE_SETTINGS, build_model
from tsd_lib.runtime import set_seed
from tsd_lib.train import TrainConfig, TrainingDivergedError, evaluate, fit


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


def test_paper_schedule_steps_per_batch(synthetic):
    # The authors' MultiStepLR([25, 30, 35], 0.5) is stepped once per batch: the rate of an
    # epoch's last step is halved once for every milestone passed before that step.
    data, _ = synthetic
    model = _smoke("fcn", data)
    history = fit(model, data, epochs=13, patience=13, batch_size=16, lr_schedule="paper", progress=False)
    steps_per_epoch = math.ceil(len(data.X_train) / 16)
    expected = []
    for epoch in range(1, 14):
        before_last = epoch * steps_per_epoch - 1
        expected.append(0.005 * 0.5 ** sum(before_last >= m for m in (25, 30, 35)))
    assert history.column("lr") == pytest.approx(expected)
    assert history.column("lr")[-1] == pytest.approx(0.005 / 8)
    step = fit(_smoke("fcn", data), data, epochs=3, lr_step=2, lr_schedule="step", progress=False)
    assert step.column("lr") == pytest.approx([0.005, 0.005, 0.0025])


def test_warmup_delays_patience(synthetic):
    # A learning rate so small that validation loss never improves after epoch 1: patience 2
    # stops at epoch 3; a warm-up of 5 epochs lets patience count only from epoch 6 on.
    data, _ = synthetic
    plain = fit(_smoke("lstm_student", data), data, epochs=50, patience=2, lr=1e-30, progress=False)
    warm = fit(_smoke("lstm_student", data), data, epochs=50, patience=2, lr=1e-30, warmup=5, progress=False)
    assert plain.stopped_early and plain.epochs_run == 3
    assert warm.stopped_early and warm.epochs_run == 7
    capped = fit(_smoke("lstm_student", data), data, epochs=4, patience=2, lr=1e-30, warmup=5, progress=False)
    assert not capped.stopped_early and capped.epochs_run == 4


def test_budgets_keep_the_best_weights_so_far(synthetic):
    data, _ = synthetic
    model = _smoke("fcn", data)
    history = fit(model, data, epochs=12, patience=3, lr=0.05, budgets=(2, 5, 400), progress=False)
    val = history.column("val_loss")
    for budget in (2, 5):
        assert history.budget_best_epochs[budget] == int(np.argmin(val[:budget])) + 1
    # a budget beyond the end is the converged (final) model
    assert history.budget_best_epochs[400] == history.best_epoch
    final = model.state_dict()
    assert all(torch.equal(final[k], history.budget_states[400][k]) for k in final)
    probe = _smoke("fcn", data)
    probe.load_state_dict(history.budget_states[2])
    assert evaluate(probe, data.X_val, data.y_val)["loss"] == pytest.approx(min(val[:2]), rel=1e-5)
    assert "budget_states" not in history.to_dict()
