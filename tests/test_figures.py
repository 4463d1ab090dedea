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
    assert [ax.get_title(loc="left") for ax in fig.axes[:2]] == ["a", "b"] and fig.get_suptitle() == "maps"
    assert fig.axes[2].get_label() == "<colorbar>"  # one colour bar for all rows
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


# ----------------------------------------------------------------------------- one visual language

from collections import defaultdict  # noqa: E402

from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tsd_lib.analysis.ablations import ablation_plot, ablation_stats  # noqa: E402
from tsd_lib.analysis.budget import budget_plot  # noqa: E402
from tsd_lib.analysis.claims import gains_plot  # noqa: E402
from tsd_lib.analysis.faithfulness_views import faithfulness_figure, faithfulness_plot  # noqa: E402
from tsd_lib.analysis.features import attention_plot  # noqa: E402
from tsd_lib.analysis.fidelity_views import kl_cdf_plot, reliability_plot  # noqa: E402
from tsd_lib.analysis.logits import fidelity_scatter  # noqa: E402
from tsd_lib.report.style import (  # noqa: E402
    COLUMN_WIDTH,
    METHOD_COLORS,
    METHOD_MARKERS,
    MIN_FONT_SIZE,
    legible,
    method_color,
    method_key,
)

METHODS = ["ce", "kd", "fitnets", "at", "rkd", "dkd", "dt2w", "tsd", "kd+tsd", "dkd+tsd"]
SHOWN = ["ce", "kd", "tsd", "kd+tsd", "dkd", "dkd+tsd"]


def _rgb(color) -> tuple[float, ...]:
    return tuple(round(float(v), 3) for v in to_rgba(color)[:3])


def _runs(methods=SHOWN, datasets="ABC", seeds=(0, 1)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [{"dataset": d, "method": m, "seed": s, "auc_pr": rng.uniform(0.5, 1), "val_auc_pr": rng.uniform(0.5, 1),
             "agreement": rng.uniform(), "kl_teacher_student": rng.uniform(), "saliency_spearman": rng.uniform(),
             "val_loss": 1.0, "teacher_seed": 0, "weights": {"tsd": w} if w else None}
            for d in datasets for m in methods for s in seeds for w in ((1.0, 2.0) if "tsd" in m else (None,))]
    return report.records_to_frame(rows)


def _proba(rng, n=30, k=2):
    p = rng.dirichlet(np.ones(k), size=n)
    return p.astype(float)


def _colours(fig: Figure) -> dict[str, set]:
    """Method -> the colours of its artists: labelled lines and scatters, legend handles (a figure's own
    legends included), bars named by their x tick label, and categorical scatters named by the tick under them."""
    found: dict[str, set] = defaultdict(set)

    def add(label, colors):
        key = method_key(label) if label and not str(label).startswith("_") else None
        if key is not None:
            found[key].update(_rgb(c) for c in colors)

    legends = list(fig.legends)
    for ax in fig.axes:
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        for line in ax.get_lines():
            add(line.get_label(), [line.get_color()])
        for coll in ax.collections:
            faces = [c for c in coll.get_facecolors() if c[3] > 0] or list(coll.get_edgecolors())
            if coll.get_label() and not coll.get_label().startswith("_"):
                add(coll.get_label(), faces)
            elif ticks and type(coll).__name__ == "PathCollection" and faces:  # a strip of points over a category
                i = int(round(float(np.mean(coll.get_offsets()[:, 0]))))
                if 0 <= i < len(ticks):
                    add(ticks[i], faces)
        bars = [p for p in ax.patches if type(p).__name__ == "Rectangle" and p.get_height() != 0]
        if ticks and len(bars) == len(ticks):
            for bar, tick in zip(bars, ticks, strict=True):
                add(tick, [bar.get_facecolor()])
        if ax.get_legend() is not None:
            legends.append(ax.get_legend())
    for legend in legends:
        for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
            label = text.get_text().split("→")[-1]  # a pair "kd → kd+tsd" is drawn in its TSD method's colour
            color = handle.get_color() if hasattr(handle, "get_color") and not hasattr(handle, "get_facecolor") \
                else handle.get_facecolor()
            if np.ndim(color) == 2:
                color = color[0]
            add(label.strip(), [color])
    return found


def _method_figures() -> dict[str, Figure]:
    rng = np.random.default_rng(1)
    runs = _runs()
    y = rng.integers(0, 2, 30)
    students = {(m, s): _proba(rng) for m in ("ce", "kd", "kd+tsd") for s in (0, 1)}
    curves = {("teacher", "own saliency", mode): np.linspace(1, 0, 5) for mode in ("deletion", "insertion")}
    curves |= {(m, order, mode): rng.uniform(size=5) for m in ("ce", "kd", "tsd", "kd+tsd")
               for order in ("own saliency", "teacher's saliency") for mode in ("deletion", "insertion")}
    budget = pd.DataFrame([{"dataset": d, "method": m, "seed": s, "budget": b, "accuracy": rng.uniform(),
                            "saliency_spearman": rng.uniform()}
                           for d in "AB" for m in ("ce", "kd", "tsd", "kd+tsd") for s in (0, 1)
                           for b in (10, 20, "converged")])
    hist = {"epochs": [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.1 / e, "val_accuracy": 0.5} for e in (1, 2)],
            "best_epoch": 2}
    gains = pd.DataFrame([{"dataset": d, "pair": f"{b} → {t}", "relative change %": rng.normal()}
                          for d in "AB" for b, t in (("ce", "tsd"), ("kd", "kd+tsd"), ("dkd", "dkd+tsd"))])
    mean = runs.groupby(["dataset", "method"])["auc_pr"].mean().unstack()
    return {
        "metric_bars": report.metric_bars(runs, ["auc_pr", "agreement", "saliency_spearman"]),
        "metric_bars (all methods)": report.metric_bars(_runs(METHODS), ["auc_pr"]),
        "fidelity_plot": report.fidelity_plot(runs),
        "selection_plot": report.selection_plot(runs),
        "baseline_vs_tsd_scatter": report.baseline_vs_tsd_scatter(mean),
        "learning_curves": report.learning_curves({"CE": hist, "KD": hist}),
        "reliability_plot": reliability_plot(y, _proba(rng), students, ["ce", "kd", "kd+tsd"], 0, title="t"),
        "kl_cdf_plot": kl_cdf_plot({m: rng.uniform(size=30) for m in ("ce", "kd", "kd+tsd")}, title="t"),
        "faithfulness_plot": faithfulness_plot(curves, "t"),
        "faithfulness_figure": faithfulness_figure({"A": curves, "Synthetic": curves}),
        "budget_plot": budget_plot(budget, methods=["ce", "kd", "tsd", "kd+tsd"]),
        "attention_plot": attention_plot(np.zeros(5), {"teacher": np.ones(5), "AT student": np.zeros(5),
                                                        "CE student": np.ones(5) / 2}, "t"),
        "fidelity_scatter": fidelity_scatter(_proba(rng), {"CE student (seed 0)": _proba(rng),
                                                           "KD student (seed 0)": _proba(rng)}, "t"),
        "gains_plot": gains_plot(gains),
    }


def test_the_palette_names_every_method_once():
    assert list(METHOD_COLORS) == ["teacher", *METHODS] and list(METHOD_MARKERS) == list(METHOD_COLORS)
    assert len({_rgb(c) for c in METHOD_COLORS.values()}) == len(METHOD_COLORS)  # no two methods share a colour
    assert len(set(METHOD_MARKERS.values())) == len(METHOD_MARKERS)
    for label, key in [("kd+tsd", "kd+tsd"), ("KD+TSD student (after)", "kd+tsd"), ("CE student (before)", "ce"),
                       ("kd student", "kd"), ("TSD", "tsd"), ("teacher  $\\hat s_T$", "teacher"),
                       ("DKD+TSD: Spearman 0.3", "dkd+tsd"), ("occlusion", None), ("LSTM 3x100 (profile)", None)]:
        assert method_key(label) == key, label
    assert method_color("at") == method_color("AT student") and method_color("x", default="0.5") == "0.5"
    with pytest.raises(KeyError, match="names no method"):
        method_color("gradient")


def test_each_method_has_its_one_colour_in_every_figure():
    """Every figure that draws methods, on tiny data: the colours read back from its artists (lines, bars,
    scatters, legend handles) are the method's one colour, and together they show every method."""
    seen: dict[str, set] = defaultdict(set)
    for name, fig in _method_figures().items():
        colours = _colours(fig)
        assert colours, f"{name}: no method found among its artists"
        for method, found in colours.items():
            assert found == {_rgb(METHOD_COLORS[method])}, (name, method, found)
            seen[method].add(name)
    assert set(seen) == set(METHOD_COLORS)  # the teacher and all ten methods were drawn
    assert len(seen["kd+tsd"]) >= 8 and len(seen["kd"]) >= 8  # the same colour in many figures
    assert {"budget_plot", "reliability_plot", "kl_cdf_plot"} <= seen["kd"] & seen["kd+tsd"] | seen["tsd"]


def _rows(fig: Figure) -> list[int]:
    """How many panels share each row of the figure (colour bars left out)."""
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    rows: list[list] = []
    for ax in panels:
        box = ax.get_position()
        for row in rows:
            if abs(row[0].get_position().y0 - box.y0) < 0.02:
                row.append(ax)
                break
        else:
            rows.append([ax])
    return [len(r) for r in rows]


def test_figures_fit_the_column_and_are_legible():
    """Every figure function that draws methods or saliency: at most the column's width, at most two panels
    per row, every text at least MIN_FONT_SIZE points once drawn; saliency-coloured plots have a colour bar."""
    figs = dict(_method_figures())
    figs["compare_saliency"] = report.compare_saliency(SERIES, {"a": np.ones(40), "b": np.arange(40.0)})
    figs["perturbation_examples"] = report.perturbation_examples(SERIES, np.repeat(SERIES[None], 3, axis=0),
                                                                 [0, 8, 16], 8)
    rng = np.random.default_rng(2)
    runs = pd.DataFrame([{"axis": a, "value": v, "base": v == vs[1], "seed": s, "accuracy": rng.uniform(),
                          "auc_pr": rng.uniform(), "saliency_spearman": rng.uniform()}
                         for a, vs in (("window", (5, 10, 20)), ("tsd_baseline", ("zero", "other_class")))
                         for v in vs for s in (0, 1)])
    figs["ablation_plot"] = ablation_plot(ablation_stats(runs), "t", method="kd+tsd")
    assert {_rgb(line.get_color()) for ax in figs["ablation_plot"].axes for line in ax.get_lines()} == \
        {_rgb(METHOD_COLORS["kd+tsd"])}  # the ablated method's colour
    for name, fig in figs.items():
        fig.canvas.draw() if fig.canvas is not None else None
        assert fig.get_size_inches()[0] <= COLUMN_WIDTH + 1e-9, name
        assert max(_rows(fig)) <= 2, (name, _rows(fig))
        small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(lambda a: hasattr(a, "get_fontsize"))
                 if t.get_text().strip() and t.get_visible() and t.get_fontsize() < MIN_FONT_SIZE]
        assert not small, (name, small)
    bars = [ax for ax in figs["compare_saliency"].axes if ax.get_label() == "<colorbar>"]
    assert len(bars) == 1 and bars[0].get_ylabel() == "saliency (each row: its min to max)"


def test_legible_raises_small_text_only():
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.set_title("big", fontsize=14)
    ax.text(0, 0, "tiny", fontsize=6)
    ax.tick_params(labelsize=7)
    legible(fig)
    assert [t.get_fontsize() for t in ax.texts] == [MIN_FONT_SIZE] and ax.title.get_fontsize() == 14
    assert {t.get_fontsize() for t in ax.get_xticklabels()} == {MIN_FONT_SIZE}


def test_a_chapter_glues_a_figure_without_showing_it(monkeypatch):
    glued = []
    monkeypatch.setattr("myst_nb.glue", lambda name, value, display=True: glued.append((name, value, display)))
    fig = report.metric_bars(pd.DataFrame({"method": ["kd", "ce"], "accuracy": [0.8, 0.7]}), ["accuracy"])
    assert report.glue_figure("fig-x", fig) is None  # a cell's last line: nothing to show again
    assert glued == [("fig-x", fig, False)] and fig.number not in plt.get_fignums()  # closed: not shown twice


def test_the_critical_difference_diagram_draws_each_method_in_its_colour():
    from tsd_lib.report.cd_diagram import method_critical_difference

    rng = np.random.default_rng(3)
    means = pd.DataFrame(rng.uniform(size=(6, 4)), columns=["ce", "kd", "tsd", "dt2w"])
    fig = method_critical_difference(means, labels=lambda m: {"dt2w": "DT2W (old adapter)"}.get(m, m.upper()))
    texts = {t.get_text(): _rgb(t.get_color()) for ax in fig.axes for t in ax.texts}
    for label, method in (("CE", "ce"), ("KD", "kd"), ("TSD", "tsd"), ("DT2W (old adapter)", "dt2w")):
        assert texts[label] == _rgb(METHOD_COLORS[method]), label
    assert fig.get_size_inches()[0] <= COLUMN_WIDTH and not fig.axes[0].get_title()
    few = method_critical_difference(means.iloc[:1])  # one dataset: the placeholder that says why
    assert "needs >= 2 datasets" in " ".join(t.get_text() for ax in few.axes for t in ax.texts)
