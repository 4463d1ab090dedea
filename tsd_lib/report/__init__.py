"""Tables and figures from run records, with hyper-parameters selected on validation data.

The paper's scripts picked the TSD weight and the teacher seed by TEST-set score. Here every
(dataset, method) gets the *setting* (teacher seed, TSD weight) with the best mean validation
macro AUC-PR over student seeds (ties: lower mean validation loss); all student seeds of that
setting are then reported on the test split. :func:`selection_inflation` shows how much
selecting on the test set would have added.

The package works from plain record dicts (as written by ``tsd_lib.experiment.run``, or read
back with :func:`records_from_store`), so it also runs on results copied from another machine.

- ``records``: records as one frame, method order, setting labels, metric direction and names;
- ``selection``: the validation-selected setting per (dataset, method) and test-selection inflation;
- ``tables``: summaries (mean ± std over seeds), fidelity, average ranks, wins/ties/losses;
- ``cd_diagram``: critical-difference diagrams (``critical_difference``, ``method_critical_difference``);
- ``figures``: every other figure, the report's and the chapters', and ``glue_figure`` (a chapter's numbered figure);
- ``style``: one colour and marker per method (``METHOD_COLORS``, ``method_color``), the column's width;
- ``writer``: tables as CSV/Markdown/HTML files and :func:`write_report`.
"""

from tsd_lib.report.cd_diagram import critical_difference, method_critical_difference
from tsd_lib.report.figures import (
    DEFAULT_PAIRS,
    baseline_vs_tsd_scatter,
    compare_saliency,
    fidelity_plot,
    glue_figure,
    learning_curves,
    metric_bars,
    perturbation_examples,
    reliability_diagram,
    saliency_line,
    selection_plot,
)
from tsd_lib.report.records import (
    FIDELITY_COLS,
    GROUP_COLS,
    HYPER_COLS,
    LOWER_IS_BETTER,
    METHOD_ORDER,
    METRIC_LABELS,
    SETTING_COLS,
    higher_is_better,
    metric_label,
    order_methods,
    records_from_store,
    records_to_frame,
    setting_label,
)
from tsd_lib.report.selection import select, selection_inflation, settings_table, validation_ties
from tsd_lib.report.style import (
    COLUMN_WIDTH,
    METHOD_COLORS,
    METHOD_MARKERS,
    MIN_FONT_SIZE,
    legible,
    method_color,
    method_colors,
    method_marker,
)
from tsd_lib.report.tables import Summary, average_ranks, fidelity_table, summary_table, win_tie_loss
from tsd_lib.report.writer import write_report, write_table

__all__ = [
    "COLUMN_WIDTH", "METHOD_COLORS", "METHOD_MARKERS", "MIN_FONT_SIZE", "glue_figure", "legible", "method_color",
    "method_colors", "method_marker",
    "DEFAULT_PAIRS", "FIDELITY_COLS", "GROUP_COLS", "HYPER_COLS", "LOWER_IS_BETTER", "METHOD_ORDER", "METRIC_LABELS",
    "SETTING_COLS", "Summary", "average_ranks", "baseline_vs_tsd_scatter", "compare_saliency", "critical_difference",
    "method_critical_difference", "fidelity_plot", "fidelity_table", "higher_is_better", "learning_curves",
    "metric_bars", "metric_label",
    "order_methods", "perturbation_examples", "records_from_store", "records_to_frame", "reliability_diagram",
    "saliency_line", "select", "selection_inflation", "selection_plot", "setting_label", "settings_table",
    "validation_ties",
    "summary_table", "win_tie_loss", "write_report", "write_table",
]
