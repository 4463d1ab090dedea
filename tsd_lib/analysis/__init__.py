"""Analyses the chapters show, as tested functions: teachers against the literature, the
LSTM teacher's seed study, the epoch-budget study and the convergence audit."""

from tsd_lib.analysis.audit import capped_runs, converged_only, convergence_audit, verdict
from tsd_lib.analysis.budget import budget_frame, budget_gap, budget_plot, budget_table, nearest_budget
from tsd_lib.analysis.published import PUBLISHED_FCN, PUBLISHED_SOURCE, published_fcn
from tsd_lib.analysis.teachers import seed_study, teacher_table

__all__ = [
    "PUBLISHED_FCN",
    "PUBLISHED_SOURCE",
    "budget_frame",
    "budget_gap",
    "budget_plot",
    "budget_table",
    "capped_runs",
    "convergence_audit",
    "converged_only",
    "nearest_budget",
    "published_fcn",
    "seed_study",
    "teacher_table",
    "verdict",
]
