"""Window perturbations for Temporal Saliency Distillation (stub; being filled in)."""

from __future__ import annotations

import torch

BASELINES = ("other_class", "zero", "mean", "noise", "same_class")


def draw_starts(batch, n_windows, length, window, generator=None, device=None) -> torch.Tensor:
    raise NotImplementedError


def draw_donors(y, y_pool, n, *, same_class=False, generator=None) -> torch.Tensor:
    raise NotImplementedError


def baseline_windows(X, y, X_pool, y_pool, starts, window, baseline="other_class", generator=None):
    raise NotImplementedError


def apply_windows(X, starts, values, window):
    raise NotImplementedError


def perturb(X, y, X_pool, y_pool, *, n_windows=50, window=10, baseline="other_class", generator=None):
    raise NotImplementedError


def distribution_shift(logits, logits_perturbed, tau, reduce="none", eps=1e-8):
    raise NotImplementedError


def target_shift(logits, logits_perturbed, y, tau):
    raise NotImplementedError


class TeacherBank:
    def __init__(self, teacher, X_pool, y_pool, *, bank_size=200, window=10, tau=8.0,
                 baseline="other_class", batch_size=256, seed=0, device=None, progress=None):
        raise NotImplementedError

    def sample(self, index, n_windows, generator=None):
        raise NotImplementedError

    def to(self, device):
        raise NotImplementedError
