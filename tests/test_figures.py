"""The chapters' teaching figures in ``tsd_lib.report.figures``: what each draws, on tiny inputs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from tsd_lib import report  # noqa: E402

SERIES = np.sin(np.linspace(0, 6, 40))[None]  # one channel, 40 steps


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_teaching_figures_are_shown_by_pyplot_and_results_figures_are_not():
    fig = report.metric_bars(pd.DataFrame({"method": ["kd", "ce"], "accuracy": [0.8, 0.7]}), ["accuracy"])
    assert fig.number in plt.get_fignums()  # a chapter's plt.show() shows it
    bare = report.selection_plot([{"dataset": "A", "method": "ce", "seed": 0, "auc_pr": 0.5, "val_auc_pr": 0.5}])
    assert getattr(bare, "number", None) not in plt.get_fignums()


def test_saliency_line_colours_the_series_and_shades_the_planted_window():
    truth = np.zeros(40)
    truth[10:15] = 1
    ax = report.saliency_line(SERIES, np.linspace(0, 1, 40), truth=truth, title="t")
    (lines,) = ax.collections
    assert len(lines.get_segments()) == 39 and np.allclose(lines.get_array()[:2], [0.5 / 39, 1.5 / 39])
    (span,) = ax.patches
    assert span.get_x() == 10 and span.get_width() == 5
    assert ax.get_title() == "t" and len(ax.figure.axes) == 2  # the plot and its colour bar


def test_compare_saliency_and_perturbation_examples_draw_one_row_each():
    fig = report.compare_saliency(SERIES, {"a": np.ones(40), "b": np.arange(40.0)}, title="maps")
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["a", "b"] and fig.get_suptitle() == "maps"
    copies = np.repeat(SERIES[None], 5, axis=0)
    fig = report.perturbation_examples(SERIES, copies, [0, 8, 16, 24, 32], 8, n=3)
    assert [ax.get_ylabel() for ax in fig.axes] == ["t=0", "t=8", "t=16"]


def test_learning_curves_add_an_accuracy_panel_when_recorded():
    rows = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e} for e in (1, 2, 3)]
    assert len(report.learning_curves({"a": {"epochs": rows, "best_epoch": 2}}).axes) == 1
    with_acc = [r | {"val_accuracy": 0.5} for r in rows]
    fig = report.learning_curves({"a": {"epochs": rows}, "b": {"epochs": with_acc}})
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2


def test_metric_bars_order_methods_and_name_metrics_as_the_report_does():
    frame = pd.DataFrame({"method": ["kd+tsd", "kd", "ce", "ce"], "auc_pr": [0.9, 0.8, 0.6, 0.8]})
    (ax,) = report.metric_bars(frame, ["auc_pr"], title="bars").axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ce", "kd", "kd+tsd"]
    assert ax.get_title() == "macro AUC-PR"
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.7, 0.8, 0.9]


def test_reliability_diagram_draws_the_diagonal_and_one_curve_per_model():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    ax = report.reliability_diagram(y, {"teacher": proba, "student": proba[:, ::-1]}, n_bins=5)
    assert [line.get_label() for line in ax.lines] == ["perfectly calibrated", "teacher", "student"]
