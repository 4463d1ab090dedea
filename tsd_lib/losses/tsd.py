"""Temporal Saliency Distillation loss (stub; being filled in)."""

from __future__ import annotations

import torch


def tsd_loss(student, teacher, X, y, X_pool, y_pool, *, n_windows=50, window=10, tau=8.0, reduce="none",
             score="kl", baseline="other_class", generator=None, student_logits=None) -> torch.Tensor:
    raise NotImplementedError


class TSDTerm:
    uses_index = True

    def __init__(self, teacher, X_pool, y_pool, *, n_windows=50, window=10, tau=8.0, reduce="none",
                 score="kl", baseline="other_class", bank_size=200, seed=0):
        raise NotImplementedError

    def __call__(self, student, x, y, index=None, student_logits=None) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device):
        raise NotImplementedError
