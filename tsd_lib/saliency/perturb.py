"""Window perturbations: the core of Temporal Saliency Distillation (TSD).

TSD (Hewa Dehigahawattage, Nandakishor & Palaniswami, "Learning to Reason: Temporal Saliency
Distillation for Interpretable Knowledge Transfer", ECAI 2025, arXiv 2601.04263) measures how
much each subsequence matters to a classifier by *replacing* it and watching the prediction
move:

1. **Perturb.** For a series ``x`` (``C`` channels, length ``T``) pick ``K`` distinct window
   starts ``0 <= t < T - L`` (the authors' range, :func:`n_starts`) and, for each, a donor
   series ``x'`` from the training pool with a *different* label. The perturbed copy
   ``x~(t)`` equals ``x`` except on ``[t, t+L)``, where it takes the donor's values ``x'[:, t:t+L]`` (:func:`perturb`).
2. **Distribution shift.** With ``p = softmax(z(x)/tau)`` and ``q_t = softmax(z(x~(t))/tau)``
   the per-class saliency is ``s_c(x, t) = tau^2 * p_c * (log p_c - log q_{t,c})``; its sum over
   classes is ``tau^2 * KL(p || q_t)``. The tensor is normalised by the mean of its strictly
   positive entries (:func:`distribution_shift`).

The TSD loss (:mod:`tsd_lib.losses.tsd`) matches the student's ``s`` to the teacher's on the
same perturbed copies. Because the teacher is frozen, its side can be computed once per
training series: :class:`TeacherBank`.

Everything is vectorised over the batch (no Python loop over series or windows) and takes an
optional ``torch.Generator`` so draws are reproducible. This module is the public face of the
three files that hold the code: :mod:`~tsd_lib.saliency.windows` (step 1),
:mod:`~tsd_lib.saliency.shift` (step 2) and :mod:`~tsd_lib.saliency.bank` (the teacher bank).
"""

from tsd_lib.saliency.bank import BANK_BASELINES, TeacherBank
from tsd_lib.saliency.shift import (
    distribution_shift,
    kl_terms,
    normalise_shift,
    perturbed_logits,
    prefix_forward,
    supports_prefix_sharing,
    target_shift,
)
from tsd_lib.saliency.windows import (
    BASELINES,
    apply_windows,
    baseline_windows,
    draw_donors,
    draw_starts,
    gather_windows,
    n_starts,
    perturb,
)

__all__ = [
    "BANK_BASELINES",
    "BASELINES",
    "TeacherBank",
    "apply_windows",
    "baseline_windows",
    "distribution_shift",
    "draw_donors",
    "draw_starts",
    "gather_windows",
    "kl_terms",
    "n_starts",
    "normalise_shift",
    "perturb",
    "perturbed_logits",
    "prefix_forward",
    "supports_prefix_sharing",
    "target_shift",
]
