"""Temporal saliency: window perturbations (TSD's core) and saliency maps for people.

Submodules: ``perturb`` (TSD's perturbations, distribution shift and teacher bank, held in
``windows``, ``shift`` and ``bank``), ``maps`` (sliding-window saliency maps; its fast engines
in ``_engines``), ``gradients`` (gradient and integrated-gradient maps).
"""

from tsd_lib.saliency.gradients import (  # noqa: E402,F401  (gradient maps; owner: gradients.py)
    gradient_map,
    integrated_gradients_map,
)
from tsd_lib.saliency.maps import (  # noqa: E402,F401  (sliding-window maps; owner: maps.py)
    saliency_map,
    window_scores,
    window_starts,
    windows_to_map,
)
from tsd_lib.saliency.perturb import (  # noqa: E402,F401  (TSD perturbations; owners: windows.py, shift.py, bank.py)
    BASELINES,
    TeacherBank,
    apply_windows,
    baseline_windows,
    distribution_shift,
    draw_donors,
    draw_starts,
    perturb,
    target_shift,
)
