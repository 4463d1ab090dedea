"""Is shared saliency shared reasoning? Chapter 7's view of the deletion and insertion curves and
of saliency against the planted truth, read from what :func:`~tsd_lib.experiment.faithfulness.run_faithfulness`
stored with each run (the measures and their definitions live there)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.experiment import RunStore
from tsd_lib.experiment.faithfulness import (
    MODES,
    curve_area,
    perturbation_curve,
    run_faithfulness,
    saliency_auprc,
    window_ranking,
)
from tsd_lib.profiles import Profile
from tsd_lib.report.style import COLUMN_WIDTH, method_color, other_color

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["FaithfulnessSection", "curve_area", "faithfulness_figure", "faithfulness_frame", "faithfulness_note",
           "faithfulness_plot", "faithfulness_section", "faithfulness_study", "faithfulness_views",
           "perturbation_curve", "saliency_auprc", "window_ranking"]

Curves = dict[tuple[str, str, str], np.ndarray]
RANKED_BY = {"own": "own saliency", "teacher": "teacher's saliency"}


def faithfulness_frame(results: Mapping[str, Mapping[str, Any]]) -> tuple[pd.DataFrame, Curves, pd.DataFrame | None]:
    """From stored faithfulness per student (``{method: run_faithfulness(...)}``, one teacher): the
    deletion/insertion areas of the teacher and of every student ranked by its own and by the
    teacher's saliency, the curves keyed ``(model, ranked by, mode)``, and the saliency AUPRC
    against the planted truth per model (``None`` without truth)."""
    first = next(iter(results.values()))
    rows = [{"model": "teacher", "ranked by": "own saliency",
             **{f"{mode} area": first["areas"][f"teacher_{mode}"] for mode in MODES}}]
    curves = {("teacher", "own saliency", mode): np.asarray(first["curves"][f"teacher_{mode}"]) for mode in MODES}
    for name, result in results.items():
        for ranking, label in RANKED_BY.items():
            rows.append({"model": name, "ranked by": label,
                         **{f"{mode} area": result["areas"][f"student_{ranking}_{mode}"] for mode in MODES}})
            for mode in MODES:
                curves[name, label, mode] = np.asarray(result["curves"][f"student_{ranking}_{mode}"])
    auprc = None
    if "auprc" in first:
        auprc = pd.DataFrame([{"model": "teacher", "saliency AUPRC": first["auprc"]["teacher"]}]
                             + [{"model": n, "saliency AUPRC": r["auprc"]["student"]} for n, r in results.items()])
        auprc["chance"] = first["auprc"]["chance"]
    return pd.DataFrame(rows), curves, auprc


def _draw_curves(axes: Sequence[Axes], curves: Mapping[tuple[str, str, str], np.ndarray], label: str = "") -> None:
    """Deletion (first axes) and insertion (second) curves, each model in its method's colour: solid, ranked
    by its own saliency; dashed, by the teacher's. ``label`` prefixes the panel titles."""
    names = list(dict.fromkeys(name for name, _, _ in curves))
    for ax, mode in zip(axes, MODES, strict=True):
        for c, name in enumerate(names):
            for (model, order, m), curve in curves.items():
                if model == name and m == mode:
                    x = np.linspace(0, 1, len(curve))
                    own = order == "own saliency"
                    ax.plot(x, curve, color=method_color(name, other_color(c)), ls="-" if own else "--",
                            lw=1.6 if own else 1.1, label=f"{name}" if own else f"{name}, {order}")
        ax.set_xlabel(f"share of windows {'removed' if mode == 'deletion' else 'revealed'}")
        ax.set_title(f"{label}: {mode}" if label else mode, fontsize=10, loc="left")
    axes[0].set_ylabel("probability of\nthe true class")


def _curves_legend(fig: Figure, names: Sequence[str]) -> None:
    """One legend below the panels: a colour per model; its title says what the line styles are."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=method_color(n, other_color(c)), lw=1.6, label=n) for c, n in enumerate(names)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6), fontsize=9,
               title="solid: windows ranked by the model's own saliency; dashed: by the teacher's",
               title_fontsize=9)


def faithfulness_plot(curves: Mapping[tuple[str, str, str], np.ndarray], title: str) -> Figure:
    """Deletion and insertion curves side by side: solid, ranked by the model's own saliency;
    dashed, by the teacher's; the legend below (a bare figure, not pyplot's: ``display(fig)`` shows it)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(COLUMN_WIDTH, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    _draw_curves(axes, curves)
    _curves_legend(fig, list(dict.fromkeys(name for name, _, _ in curves)))
    fig.suptitle(title, fontsize=10)
    return fig


def faithfulness_figure(curves_by_set: Mapping[str, Mapping[tuple[str, str, str], np.ndarray]]) -> Figure:
    """Every set's deletion and insertion curves in one bare figure, a row per set (``{set: curves}``), one
    legend below: solid, ranked by the model's own saliency; dashed, by the teacher's."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(COLUMN_WIDTH, 0.9 + 2.6 * len(curves_by_set)), layout="constrained")
    rows = fig.subplots(len(curves_by_set), 2, sharey=True, sharex=True, squeeze=False)
    for axes, (name, curves) in zip(rows, curves_by_set.items(), strict=True):
        _draw_curves(axes, curves, label=name)
    names = list(dict.fromkeys(n for curves in curves_by_set.values() for n, _, _ in curves))
    _curves_legend(fig, names)
    return fig


def faithfulness_study(profile: Profile, dataset: str, methods: list[str], *, seed: int = 0,
                       store: RunStore | None = None) -> dict[str, Any]:
    """Chapter 7's study on one dataset: the stored faithfulness of the students of ``methods``
    (student seed ``seed``; measured now and stored if a run has none) and their teacher, as
    :func:`faithfulness_frame`. Returns ``{"table", "curves", "auprc", "n_series"}``."""
    results = {m: run_faithfulness(profile.base_config(dataset, method=m, seed=seed), store) for m in methods}
    table, curves, auprc = faithfulness_frame(results)
    return {"table": table, "curves": curves, "auprc": auprc, "n_series": next(iter(results.values()))["n_series"]}


def faithfulness_note(table: pd.DataFrame, auprc: pd.DataFrame | None, dataset: str, reference: str = "teacher") -> str:
    """Markdown: per student, whether the teacher's ranking removes its evidence faster than its own
    (lower deletion area) and reveals it faster (higher insertion area); and, with planted truth, which
    model's saliency finds the pattern best."""
    by = table.set_index(["model", "ranked by"])
    lines, gaps = [], {}
    for name in dict.fromkeys(table["model"]):
        if name == reference:
            continue
        own, ref = by.loc[(name, "own saliency")], by.loc[(name, f"{reference}'s saliency")]
        d_own, i_own = own["deletion area"], own["insertion area"]
        d_ref, i_ref = ref["deletion area"], ref["insertion area"]
        gaps[name] = d_ref - d_own
        better = d_ref <= d_own and i_ref >= i_own
        lines.append(f"- **{name}** on {dataset}: deletion area {d_own:.3f} with its own ranking, {d_ref:.3f} with the "
                     f"{reference}'s; insertion area {i_own:.3f} vs {i_ref:.3f}. The {reference}'s ranking "
                     + ("removes and reveals this student's evidence at least as fast as its own" if better
                        else "does not beat the student's own ranking on both curves") + ".")
    if gaps:
        closest = min(gaps, key=gaps.get)
        lines.append(f"- On {dataset} the {reference}'s ranking comes closest to the student's own for **{closest}** "
                     f"(deletion-area gap {gaps[closest]:+.3f}; " + ", ".join(f"{n} {g:+.3f}" for n, g in gaps.items())
                     + f"): the student whose evidence the {reference}'s saliency locates best.")
    if auprc is not None:
        best = auprc.loc[auprc["saliency AUPRC"].idxmax()]
        lines.append(f"- Against the planted truth of {dataset} (chance {auprc['chance'].iloc[0]:.3f}): "
                     + ", ".join(f"{r.model} {r._2:.3f}" for r in auprc.itertuples())
                     + f"; **{best['model']}**'s saliency finds the pattern best.")
    return "\n".join(lines)


def _studied_sets(profile: Profile, dataset: str, methods: Sequence[str], seed: int,
                  store: RunStore | None) -> dict[str, dict[str, Any]]:
    """:func:`faithfulness_study` of ``dataset`` and of the profile's planted-pattern sets, in that order."""
    sets = [dataset] + [d for d in profile.datasets if d.lower().startswith("synthetic") and d != dataset]
    methods = [m for m in methods if m in profile.methods]
    return {name: faithfulness_study(profile, name, methods, seed=seed, store=store) for name in sets}


def faithfulness_views(profile: Profile, dataset: str, methods: Sequence[str] = ("ce", "kd", "tsd", "kd+tsd"), *,
                       seed: int = 0, store: RunStore | None = None) -> tuple[list[Any], str]:
    """Chapter 7's faithfulness section on ``dataset`` and the profile's planted-pattern set: per
    set its name, :func:`faithfulness_study` table, :func:`faithfulness_plot` and (planted truth)
    AUPRC table, in display order; and the :func:`faithfulness_note` lines of every set."""
    from IPython.display import Markdown

    outputs, notes = [], []
    for name, study in _studied_sets(profile, dataset, methods, seed, store).items():
        outputs += [Markdown(f"**{name}**"), study["table"].round(3),
                    faithfulness_plot(study["curves"], f"{name}: deletion and insertion (solid: own ranking; "
                                                       "dashed: the teacher's)")]
        if study["auprc"] is not None:
            outputs.append(study["auprc"].round(3))
        notes.append(faithfulness_note(study["table"], study["auprc"], name))
    return outputs, "\n".join(notes)


@dataclass
class FaithfulnessSection:
    """Chapter 7's faithfulness section with one numbered figure: ``outputs`` (per set its name, table and,
    with planted truth, AUPRC table, in display order), ``figure`` (:func:`faithfulness_figure` of every set)
    and ``notes`` (the :func:`faithfulness_note` lines)."""

    outputs: list[Any]
    figure: Figure
    notes: str


def faithfulness_section(profile: Profile, dataset: str, methods: Sequence[str] = ("ce", "kd", "tsd", "kd+tsd"),
                         *, seed: int = 0, store: RunStore | None = None) -> FaithfulnessSection:
    """:func:`faithfulness_views` with the curves of every set in one figure (for a caption and a number)."""
    from IPython.display import Markdown

    studies = _studied_sets(profile, dataset, methods, seed, store)
    outputs = []
    for name, study in studies.items():
        outputs += [Markdown(f"**{name}**"), study["table"].round(3)]
        if study["auprc"] is not None:
            outputs.append(study["auprc"].round(3))
    notes = [faithfulness_note(study["table"], study["auprc"], name) for name, study in studies.items()]
    return FaithfulnessSection(outputs, faithfulness_figure({n: st["curves"] for n, st in studies.items()}),
                               "\n".join(notes))
