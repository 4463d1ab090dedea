"""Course assignments: checks with feedback, and a grader students cannot fool.

* **Checks** (called by students in the assignment notebooks under ``assignments/``):
  ``check_kd_loss(my_kd_loss)`` and friends test a student's function against tsd_lib's own
  implementation on random inputs and edge cases, explain every failure in plain words, print
  a summary and return a :class:`CheckResult` (:mod:`.feedback`, :mod:`.checks_kd`,
  :mod:`.checks_saliency`, :mod:`.checks_tsd`). A check never raises because of a wrong student
  function.
* **Grader** (``tsd grade``, :func:`grade`, :mod:`.grader`): executes each notebook
  (:mod:`.submissions`) in a separate, limited process with a minimal environment (:mod:`.sandbox`);
  its check cells ask the grader to run the checks, which it does in its own process, calling the
  student's functions only for their outputs on inputs it draws (:mod:`.remote`). Points come from
  those results only; every process a submission started is killed before reports
  (:mod:`.reports`) are written into the checked output folder (:mod:`.output_folder`).

The package imports only the standard library at import time (the worker must start fast);
torch and the rest of tsd_lib are imported by the checks that need them.
"""

from tsd_lib.grading.assignment_data import assignment_dataset
from tsd_lib.grading.checks_kd import check_kd_loss, check_soft_target_entropy, check_temperature_softmax
from tsd_lib.grading.checks_saliency import (
    check_apply_windows,
    check_planted_saliency,
    check_synthetic_validation,
    check_window_saliency,
)
from tsd_lib.grading.checks_tsd import check_ablation, check_distribution_shift, check_trained_student, check_tsd_loss
from tsd_lib.grading.feedback import (
    ASSIGNMENTS,
    CHECKS,
    LEDGER,
    POINTS,
    SOCKET_ENV,
    CheckResult,
    score_results,
    show_score,
)
from tsd_lib.grading.grader import grade, grade_command, grade_notebook
from tsd_lib.grading.reports import STATUSES, GradeReport, format_report

__all__ = [
    "ASSIGNMENTS",
    "CHECKS",
    "LEDGER",
    "POINTS",
    "SOCKET_ENV",
    "STATUSES",
    "CheckResult",
    "GradeReport",
    "assignment_dataset",
    "check_ablation",
    "check_apply_windows",
    "check_distribution_shift",
    "check_kd_loss",
    "check_planted_saliency",
    "check_soft_target_entropy",
    "check_synthetic_validation",
    "check_temperature_softmax",
    "check_trained_student",
    "check_tsd_loss",
    "check_window_saliency",
    "format_report",
    "grade",
    "grade_command",
    "grade_notebook",
    "score_results",
    "show_score",
]
