"""Logit-based losses: cross-entropy, Hinton KD and decoupled KD (DKD).

Each loss is a pure function of tensors (no state, no modules), in the style of mdistiller.
The teacher's logits are treated as constants: callers compute them under ``torch.no_grad``
(:class:`tsd_lib.losses.Objective` does), and the functions never back-propagate into them
anyway because they only appear as targets.

References
----------
* Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural Network", NIPS DL Workshop 2015.
* Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge Distillation", CVPR 2022.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tsd_lib.settings import DKDSettings, KDSettings

__all__ = ["ce_loss", "dkd_loss", "kd_loss"]


def ce_loss(logits_s: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Cross-entropy between the student's logits and the hard labels (batch mean).

    .. math:: \mathcal{L}_{CE} = -\frac{1}{B}\sum_{b} \log \operatorname{softmax}(z^S_b)_{y_b}

    Args:
        logits_s: student logits ``(B, k)``.
        y: integer labels ``(B,)`` in ``0..k-1``.
    """
    return F.cross_entropy(logits_s, y)


def kd_loss(logits_s: torch.Tensor, logits_t: torch.Tensor, tau: float = KDSettings.tau) -> torch.Tensor:
    r"""Hinton knowledge distillation (Hinton et al., 2015).

    .. math::
        \mathcal{L}_{KD} = \tau^2 \, \frac{1}{B}\sum_b
        \mathrm{KL}\big(\operatorname{softmax}(z^T_b/\tau)\,\|\,\operatorname{softmax}(z^S_b/\tau)\big)

    The :math:`\tau^2` factor keeps gradient magnitudes comparable across temperatures.
    ``batchmean`` reduction: the KL is summed over classes and averaged over the batch.
    The loss is zero when ``logits_s == logits_t``.

    Args:
        logits_s: student logits ``(B, k)``.
        logits_t: teacher logits ``(B, k)`` (constants).
        tau: temperature :math:`\tau > 0`; the default is the experiments'
            (:class:`~tsd_lib.settings.KDSettings`, the TSD authors' 8; mdistiller's is 4).
    """
    log_p_s = F.log_softmax(logits_s / tau, dim=1)
    log_p_t = F.log_softmax(logits_t / tau, dim=1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True) * tau**2


def _binary_log_split(logits: torch.Tensor, gt_mask: torch.Tensor) -> torch.Tensor:
    """``(B, k)`` scaled logits -> ``(B, 2)`` log-probabilities [target class, the other classes],
    by ``logsumexp`` over each part: finite even when one part's probability underflows."""
    masked = logits.masked_fill(gt_mask.bool(), float("-inf"))
    log_z = torch.logsumexp(logits, dim=1, keepdim=True)
    log_gt = (logits * gt_mask).sum(dim=1, keepdim=True) - log_z
    return torch.cat([log_gt, torch.logsumexp(masked, dim=1, keepdim=True) - log_z], dim=1)


def dkd_loss(
    logits_s: torch.Tensor,
    logits_t: torch.Tensor,
    y: torch.Tensor,
    alpha: float = DKDSettings.alpha,
    beta: float = DKDSettings.beta,
    tau: float = DKDSettings.tau,
) -> torch.Tensor:
    r"""Decoupled knowledge distillation (Zhao et al., CVPR 2022), mdistiller's formulation.

    With :math:`p = \operatorname{softmax}(z/\tau)` and target class :math:`y`:

    * TCKD (target-class KD) compares the binary distributions
      :math:`b = [p_y, 1 - p_y]`:
      :math:`\mathrm{TCKD} = \mathrm{KL}(b^T \| b^S)`;
    * NCKD (non-target-class KD) compares the distributions over the non-target classes,
      :math:`\hat p_i = \operatorname{softmax}(z/\tau - 1000\,[i = y])_i`:
      :math:`\mathrm{NCKD} = \mathrm{KL}(\hat p^T \| \hat p^S)`;

    .. math::
        \mathcal{L}_{DKD} = \tau^2 \, \frac{1}{B} \sum_b
        \big(\alpha\, \mathrm{TCKD}_b + \beta\, \mathrm{NCKD}_b\big)

    The ground-truth logit is masked by subtracting 1000 (after the temperature division),
    exactly as mdistiller does. mdistiller's linear warm-up of the DKD weight over the first
    epochs is *not* part of this function (nor of the TSD authors' ``DKDLoss``). With two
    classes the NCKD term is identically zero.

    Args:
        logits_s: student logits ``(B, k)``.
        logits_t: teacher logits ``(B, k)`` (constants).
        y: labels ``(B,)``.
        alpha, beta, tau: TCKD weight, NCKD weight and temperature; the defaults are
            :class:`~tsd_lib.settings.DKDSettings`' (the TSD authors' code and the DKD paper;
            the temperature the experiments' shared one).
    """
    gt_mask = F.one_hot(y, num_classes=logits_s.shape[1]).to(logits_s.dtype)
    log_b_s = _binary_log_split(logits_s / tau, gt_mask)
    log_b_t = _binary_log_split(logits_t / tau, gt_mask)
    tckd = F.kl_div(log_b_s, log_b_t, reduction="sum", log_target=True) * tau**2 / y.shape[0]

    log_p_s_nt = F.log_softmax(logits_s / tau - 1000.0 * gt_mask, dim=1)
    p_t_nt = F.softmax(logits_t / tau - 1000.0 * gt_mask, dim=1)
    nckd = F.kl_div(log_p_s_nt, p_t_nt, reduction="sum") * tau**2 / y.shape[0]
    return alpha * tckd + beta * nckd
