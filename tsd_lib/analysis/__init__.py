"""Analyses the chapters show, as tested functions: the data set and teacher views of chapter 1, logit
distillation (2), the feature baselines (3), temporal saliency (4), TSD (5), teachers against the
literature, the LSTM teacher's seed study, the epoch-budget study, the convergence audit, the ablations,
seed tables and each chapter's "What we saw" summary."""

from tsd_lib.analysis.ablations import (
    ablation_findings,
    ablation_plot,
    ablation_runs,
    ablation_stats,
    ablation_table,
    bank_vs_fresh,
)
from tsd_lib.analysis.architectures import ARCH, ROLES, architecture_table, pair_note, pair_sizes
from tsd_lib.analysis.audit import capped_runs, converged_only, convergence_audit, verdict
from tsd_lib.analysis.budget import budget_frame, budget_gap, budget_plot, budget_table, nearest_budget
from tsd_lib.analysis.claims import (
    BASE_PAIRS,
    budget_claim,
    budget_gains,
    claim_verdicts,
    fidelity_claims,
    gains_claim,
    gains_plot,
    rank_claim,
    runs_note,
    tsd_gains,
)
from tsd_lib.analysis.costs import cost_tables, profiles_table
from tsd_lib.analysis.data_views import (
    class_examples_plot,
    class_share_note,
    class_share_plot,
    confidence_plot,
    dataset_line,
    preprocessing_note,
    preprocessing_plot,
    preprocessing_stages,
    split_counts,
)
from tsd_lib.analysis.experiments import (
    audit_note,
    budget_note,
    experiments_summary,
    grid_note,
    inflation_views,
    pair_views,
    rank_table,
    selection_note,
    teacher_scores,
)
from tsd_lib.analysis.faithfulness import (
    curve_area,
    faithfulness_frame,
    faithfulness_note,
    faithfulness_plot,
    faithfulness_study,
    perturbation_curve,
    saliency_auprc,
    window_ranking,
)
from tsd_lib.analysis.features import (
    at_gaps,
    at_note,
    attention_plot,
    attention_profile,
    binary_dkd_note,
    class_sorted_sample,
    distance_heatmaps,
    flat_sequence,
    forward_features,
    ranked,
    relative_distances,
    rkd_comparison,
    rkd_note,
    widths_note,
)
from tsd_lib.analysis.fidelity_views import (
    beyond_accuracy_summary,
    ece_table,
    kl_cdf_plot,
    reliability_plot,
    substitution,
    substitution_text,
    tsd_colors,
)
from tsd_lib.analysis.logits import (
    ENTROPY_GRID,
    fidelity_scatter,
    gradient_note,
    gradient_ratios,
    kd_gradient_table,
    kd_term_note,
    median_margin_index,
    soft_entropy,
    temperature_plot,
)
from tsd_lib.analysis.paper_archive import (
    PaperArchive,
    claims_side_by_side,
    coverage_and_cost,
    extensions_note,
    faithfulness_table,
    load_paper_archive,
    paper_results,
)
from tsd_lib.analysis.published import PUBLISHED_FCN, PUBLISHED_SOURCE, published_fcn
from tsd_lib.analysis.saliency_views import (
    SYNTHETIC_MAPS,
    agreement_table,
    baseline_note,
    baseline_table,
    first_per_class,
    late_mass,
    late_mass_note,
    maps_plot,
    mid_series,
    planted_examples_plot,
    precision_plot,
    precision_table,
    synthetic_maps,
    synthetic_teachers,
    window_shift_plot,
)
from tsd_lib.analysis.summaries import (
    baselines_summary,
    logit_summary,
    saliency_summary,
    teacher_summary,
    tsd_summary,
)
from tsd_lib.analysis.tables import (
    across_datasets,
    archived_note,
    by_method,
    compare_means,
    mean_std,
    seed_stats,
    seed_table,
)
from tsd_lib.analysis.teachers import (
    SEED_STUDY_COLUMNS,
    TEACHER_COLUMNS,
    book_teacher_configs,
    choose_seed,
    literature_note,
    literature_plot,
    matching_candidates,
    paper_pair,
    profile_study_picks,
    seed_study,
    seed_study_plot,
    seed_study_summary,
    studies_summary,
    teacher_histories,
    teacher_studies,
    teacher_table,
    training_note,
)
from tsd_lib.analysis.tsd_views import (
    bank_note,
    maps_against_teacher,
    setting_note,
    shift_heatmaps,
    teacher_comparison_plots,
)

__all__ = [
    "PaperArchive", "claims_side_by_side", "coverage_and_cost", "extensions_note", "faithfulness_table",
    "load_paper_archive", "paper_results", "claim_verdicts",
    "curve_area", "faithfulness_frame", "faithfulness_note", "faithfulness_plot", "faithfulness_study",
    "perturbation_curve", "saliency_auprc", "window_ranking",
    "ARCH", "BASE_PAIRS", "ENTROPY_GRID", "PUBLISHED_FCN", "PUBLISHED_SOURCE", "ROLES", "SEED_STUDY_COLUMNS",
    "SYNTHETIC_MAPS", "TEACHER_COLUMNS", "ablation_findings", "ablation_plot", "ablation_runs",
    "ablation_stats", "ablation_table", "across_datasets", "agreement_table", "architecture_table",
    "archived_note", "at_gaps", "at_note", "attention_plot", "attention_profile", "audit_note", "bank_note",
    "bank_vs_fresh", "baseline_note", "baseline_table", "baselines_summary", "beyond_accuracy_summary",
    "binary_dkd_note", "book_teacher_configs", "budget_claim", "budget_frame", "budget_gains", "budget_gap",
    "budget_note", "budget_plot", "budget_table", "by_method", "capped_runs", "choose_seed",
    "class_examples_plot", "class_share_note", "class_share_plot", "class_sorted_sample", "compare_means",
    "confidence_plot", "converged_only", "convergence_audit", "cost_tables", "dataset_line",
    "distance_heatmaps", "ece_table", "experiments_summary", "fidelity_claims", "fidelity_scatter",
    "first_per_class", "flat_sequence", "forward_features", "gains_claim", "gains_plot", "gradient_note",
    "gradient_ratios", "grid_note", "inflation_views", "kd_gradient_table", "kd_term_note", "kl_cdf_plot",
    "late_mass", "late_mass_note", "literature_note", "literature_plot", "logit_summary",
    "maps_against_teacher", "maps_plot", "matching_candidates", "mean_std", "median_margin_index", "mid_series",
    "nearest_budget", "pair_note", "pair_sizes", "pair_views", "paper_pair", "planted_examples_plot",
    "precision_plot", "precision_table", "preprocessing_note", "preprocessing_plot", "preprocessing_stages",
    "profile_study_picks", "profiles_table", "published_fcn", "rank_claim", "rank_table", "ranked",
    "relative_distances", "reliability_plot", "rkd_comparison", "rkd_note", "runs_note", "saliency_summary",
    "seed_stats", "seed_study", "seed_study_plot", "seed_study_summary", "seed_table", "selection_note",
    "setting_note", "shift_heatmaps", "soft_entropy", "split_counts", "studies_summary", "substitution",
    "substitution_text", "synthetic_maps", "synthetic_teachers", "teacher_comparison_plots",
    "teacher_histories", "teacher_scores", "teacher_studies", "teacher_summary", "teacher_table",
    "temperature_plot", "training_note", "tsd_colors", "tsd_gains", "tsd_summary", "verdict", "widths_note",
    "window_shift_plot",
]
