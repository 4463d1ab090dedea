"""Analyses the chapters show, as tested functions: teachers against the literature, the
LSTM teacher's seed study, the epoch-budget study, the convergence audit and the ablations."""

from tsd_lib.analysis.ablations import (
    ablation_findings,
    ablation_plot,
    ablation_runs,
    ablation_stats,
    ablation_table,
    bank_vs_fresh,
)
from tsd_lib.analysis.audit import capped_runs, converged_only, convergence_audit, verdict
from tsd_lib.analysis.budget import budget_frame, budget_gap, budget_plot, budget_table, nearest_budget
from tsd_lib.analysis.published import PUBLISHED_FCN, PUBLISHED_SOURCE, published_fcn
from tsd_lib.analysis.teachers import (
    SEED_STUDY_COLUMNS,
    choose_seed,
    matching_candidates,
    seed_study,
    seed_study_plot,
    seed_study_summary,
    teacher_table,
)

__all__ = [
    "SEED_STUDY_COLUMNS",
    "matching_candidates",
    "seed_study_plot",
    "seed_study_summary",
    "ablation_findings",
    "ablation_plot",
    "ablation_runs",
    "ablation_stats",
    "ablation_table",
    "bank_vs_fresh",
    "PUBLISHED_FCN",
    "PUBLISHED_SOURCE",
    "budget_frame",
    "budget_gap",
    "budget_plot",
    "budget_table",
    "capped_runs",
    "choose_seed",
    "convergence_audit",
    "converged_only",
    "nearest_budget",
    "published_fcn",
    "seed_study",
    "teacher_table",
    "verdict",
]
