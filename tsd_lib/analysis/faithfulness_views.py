"""Is shared saliency shared reasoning? Chapter 7's view of the deletion and insertion curves and
of saliency against the planted truth, read from what :func:`~tsd_lib.experiment.faithfulness.run_faithfulness`
stored with each run (the measures and their definitions live there)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.seed_tables import method_label
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

__all__ = ["FaithfulnessSection", "auprc_view", "curve_area", "faithfulness_figure", "faithfulness_frame",
           "faithfulness_numbers", "faithfulness_plot", "faithfulness_section", "faithfulness_study",
           "faithfulness_view", "perturbation_curve", "saliency_auprc", "window_ranking"]

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


def faithfulness_view(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`faithfulness_frame`'s areas for readers: one row per model (by its method's name), the deletion
    and the insertion area with the windows ranked by the model's own saliency and by the teacher's (the
    teacher's own row has no second ranking: "–")."""
    wide = table.pivot(index="model", columns="ranked by", values=["deletion area", "insertion area"])
    wide = wide.reindex(list(dict.fromkeys(table["model"])))
    view = pd.DataFrame({f"{mode} area, {label} ranking": wide[(f"{mode} area", by)]
                         for mode in MODES for by, label in (("own saliency", "own"), ("teacher's saliency",
                                                                                          "teacher's"))
                         if (f"{mode} area", by) in wide.columns})
    view.index = pd.Index([n if n == "teacher" else method_label(n) for n in view.index], name="model")
    return view


def auprc_view(auprc: pd.DataFrame) -> pd.DataFrame:
    """:func:`faithfulness_frame`'s saliency AUPRC against the planted truth for readers: one row per model
    by its name, then the chance level (the planted share of the time steps)."""
    names = [n if n == "teacher" else method_label(n) for n in auprc["model"]]
    values = [*auprc["saliency AUPRC"].astype(float), float(auprc["chance"].iloc[0])]
    return pd.DataFrame({"saliency AUPRC against the planted truth": values},
                        index=pd.Index([*names, "chance (planted share)"], name="model"))


def faithfulness_numbers(study: Mapping[str, Any] | None,
                         methods: Sequence[str] = ("ce", "kd", "tsd", "kd+tsd")) -> dict[str, float | str]:
    """For the prose, from one :func:`faithfulness_study` (``None``: not studied, every value NaN or
    ``"none"``): per student (keys with ``+`` dropped) the deletion-area gap (teacher's ranking minus its
    own: the closer to zero, or the lower, the better the teacher's saliency locates the student's evidence)
    and the insertion-area gap (teacher's minus own: higher is better); the student with the smallest
    deletion-area gap and that gap; with planted truth, each model's saliency AUPRC, the chance level and
    the model whose saliency finds the pattern best."""
    nan = float("nan")
    out: dict[str, float | str] = {}
    by = study["table"].set_index(["model", "ranked by"]) if study is not None else None
    gaps = {}
    for m in methods:
        k = m.replace("+", "")
        have = by is not None and (m, "own saliency") in by.index
        own = by.loc[(m, "own saliency")] if have else None
        ref = by.loc[(m, "teacher's saliency")] if have else None
        out[f"deletion_gap_{k}"] = float(ref["deletion area"] - own["deletion area"]) if have else nan
        out[f"insertion_gap_{k}"] = float(ref["insertion area"] - own["insertion area"]) if have else nan
        if have:
            gaps[m] = out[f"deletion_gap_{k}"]
    closest = min(gaps, key=gaps.get) if gaps else None
    out["closest"] = method_label(closest) if closest else "none"
    out["closest_gap"] = gaps[closest] if closest else nan
    auprc = study["auprc"] if study is not None else None
    values = dict(zip(auprc["model"], auprc["saliency AUPRC"].astype(float), strict=True)) if auprc is not None else {}
    out["auprc_teacher"] = values.get("teacher", nan)
    for m in methods:
        out[f"auprc_{m.replace('+', '')}"] = values.get(m, nan)
    out["auprc_chance"] = float(auprc["chance"].iloc[0]) if auprc is not None else nan
    best = max(values, key=values.get) if values else None
    out["auprc_best"] = ("teacher" if best == "teacher" else method_label(best)) if best else "none"
    return out


def _studied_sets(profile: Profile, dataset: str, methods: Sequence[str], seed: int,
                  store: RunStore | None) -> dict[str, dict[str, Any]]:
    """:func:`faithfulness_study` of ``dataset`` and of the profile's planted-pattern sets, in that order."""
    sets = [dataset] + [d for d in profile.datasets if d.lower().startswith("synthetic") and d != dataset]
    methods = [m for m in methods if m in profile.methods]
    return {name: faithfulness_study(profile, name, methods, seed=seed, store=store) for name in sets}


@dataclass
class FaithfulnessSection:
    """Chapter 7's faithfulness section with one numbered figure: ``studies`` (per set, the chapter's
    dataset first and then the profile's planted-pattern set, its :func:`faithfulness_study`) and
    ``figure`` (:func:`faithfulness_figure` of every set)."""

    studies: dict[str, dict[str, Any]]
    figure: Figure

    def planted(self) -> tuple[str, dict[str, Any]] | tuple[str, None]:
        """The first studied set with planted truth and its study, or ``("none", None)``."""
        for name, study in self.studies.items():
            if study["auprc"] is not None:
                return name, study
        return "none", None


def faithfulness_section(profile: Profile, dataset: str, methods: Sequence[str] = ("ce", "kd", "tsd", "kd+tsd"),
                         *, seed: int = 0, store: RunStore | None = None) -> FaithfulnessSection:
    """:func:`faithfulness_study` of ``dataset`` and of the profile's planted-pattern set, with the curves of
    every set in one figure (for a caption and a number)."""
    studies = _studied_sets(profile, dataset, methods, seed, store)
    return FaithfulnessSection(studies, faithfulness_figure({n: st["curves"] for n, st in studies.items()}))
