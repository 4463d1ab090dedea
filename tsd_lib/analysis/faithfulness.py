"""Is shared saliency shared reasoning? Deletion and insertion curves, and saliency against the
planted truth of the synthetic set (chapter 7).

A saliency map is *faithful* to a model when the time steps it ranks first are the ones the
model's decision rests on. Deletion (Petsiuk et al., 2018, for images) removes the most salient
windows first and follows the probability of the true class: the faster it falls, the more
faithful the ranking (a low area under the curve). Insertion starts from an empty series and
reveals the most salient windows first: the faster the probability rises, the better (a high
area). Ranking a *student's* windows by the *teacher's* saliency asks whether the student now
relies on the same time steps as its teacher.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from tsd_lib.experiment import RunStore, get_dataset, load_student, load_teacher
from tsd_lib.profiles import Profile
from tsd_lib.saliency.maps import saliency_map

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MODES = ("deletion", "insertion")


def window_ranking(saliency: np.ndarray, window: int) -> np.ndarray:
    """``(n, W)``: for each series, its non-overlapping windows ``[w L, (w + 1) L)`` (the last one
    may be shorter) by mean saliency, most salient first (ties: earlier window first)."""
    n, length = saliency.shape
    edges = list(range(0, length, window)) + [length]
    means = np.stack([saliency[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1)
    return np.argsort(-means, axis=1, kind="stable")


def perturbation_curve(model: nn.Module, X: np.ndarray, y: np.ndarray, saliency: np.ndarray, window: int, *,
                       mode: str = "deletion", fill: float = 0.0) -> np.ndarray:
    """``(W + 1,)``: the mean probability of the true class after the ``k`` most salient windows
    (by ``saliency``) are removed (deletion: set to ``fill``; 0 is a z-normalised series' mean) or
    revealed from an all-``fill`` series (insertion), for ``k = 0 .. W``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    X = np.asarray(X, dtype=np.float32)
    n, _, length = X.shape
    ranking = window_ranking(np.asarray(saliency), window)
    n_windows = ranking.shape[1]
    keep = np.zeros((n, length), dtype=bool) if mode == "insertion" else np.ones((n, length), dtype=bool)
    batches = []
    for k in range(n_windows + 1):
        batches.append(np.where(keep[:, None, :], X, np.float32(fill)))
        if k < n_windows:
            for i in range(n):
                a = ranking[i, k] * window
                keep[i, a:a + window] = mode == "insertion"
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(np.concatenate(batches)))
    proba = torch.softmax(logits, dim=1).numpy().reshape(n_windows + 1, n, -1)
    return proba[:, np.arange(n), np.asarray(y)].mean(axis=1)


def curve_area(curve: np.ndarray) -> float:
    """Area under a curve sampled at ``k / W``, ``k = 0 .. W`` (trapezoids on [0, 1])."""
    curve = np.asarray(curve, dtype=float)
    return float(((curve[1:] + curve[:-1]) / 2).mean())


Curves = dict[tuple[str, str, str], np.ndarray]


def faithfulness(models: Mapping[str, nn.Module], maps: Mapping[str, np.ndarray], X: np.ndarray, y: np.ndarray,
                 window: int, *, reference: str = "teacher") -> tuple[pd.DataFrame, Curves]:
    """Deletion and insertion areas of every model, its windows ranked by its own saliency and by
    the ``reference`` model's; and the curves, keyed ``(model, ranking, mode)``."""
    rows, curves = [], {}
    for name, model in models.items():
        orders = {"own saliency": maps[name]}
        if name != reference:
            orders[f"{reference}'s saliency"] = maps[reference]
        for order, saliency in orders.items():
            row = {"model": name, "ranked by": order}
            for mode in MODES:
                curve = perturbation_curve(model, X, y, saliency, window, mode=mode)
                curves[name, order, mode] = curve
                row[f"{mode} area"] = curve_area(curve)
            rows.append(row)
    return pd.DataFrame(rows), curves


def faithfulness_plot(curves: Mapping[tuple[str, str, str], np.ndarray], title: str) -> Figure:
    """Deletion and insertion curves side by side: solid, ranked by the model's own saliency;
    dashed, by the teacher's."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), layout="constrained", sharey=True)
    names = list(dict.fromkeys(name for name, _, _ in curves))
    for ax, mode in zip(axes, MODES, strict=True):
        for c, name in enumerate(names):
            for (model, order, m), curve in curves.items():
                if model == name and m == mode:
                    x = np.linspace(0, 1, len(curve))
                    own = order == "own saliency"
                    ax.plot(x, curve, color=f"C{c}", ls="-" if own else "--", lw=1.5 if own else 1,
                            label=f"{name}" if own else f"{name}, {order}")
        ax.set(xlabel=f"share of windows {'removed' if mode == 'deletion' else 'revealed'}, most salient first",
               title=mode)
    axes[0].set_ylabel("probability of the true class")
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=10)
    return fig


def saliency_auprc(maps: np.ndarray, truth: np.ndarray) -> float:
    """Mean over series of the average precision of each step's saliency as a score for the
    planted pattern's steps (``truth``, boolean ``(n, T)``); chance is the planted share."""
    from sklearn.metrics import average_precision_score

    truth = np.asarray(truth, dtype=bool)
    scores = [average_precision_score(t, m) for m, t in zip(np.asarray(maps), truth, strict=True) if t.any()]
    return float(np.mean(scores))


def faithfulness_study(profile: Profile, dataset: str, methods: list[str], *, seed: int = 0, n_series: int = 30,
                       store: RunStore | None = None) -> dict[str, object]:
    """Chapter 7's study on one dataset: the teacher and the students of ``methods`` (student seed
    ``seed``, loaded from the store), their TSD saliency maps on the first ``n_series`` test
    series, deletion/insertion areas and curves, and (planted-pattern set) each map's AUPRC
    against the truth. Returns ``{"table", "curves", "auprc"}`` (``auprc`` ``None`` without truth)."""
    configs = {m: profile.base_config(dataset, method=m, seed=seed) for m in methods}
    first = next(iter(configs.values()))
    data = get_dataset(first)
    X, y = data.X_test[:n_series], data.y_test[:n_series]
    models = {"teacher": load_teacher(first, store), **{m: load_student(c, store) for m, c in configs.items()}}
    maps = {name: saliency_map(model, X, y, X_pool=data.X_train, y_pool=data.y_train, window=first.window,
                               tau=first.tau, generator=0) for name, model in models.items()}
    table, curves = faithfulness(models, maps, X, y, first.window)
    truth = (data.masks or {}).get("test")
    auprc = None
    if truth is not None:
        auprc = pd.DataFrame([{"model": name, "saliency AUPRC": saliency_auprc(m, truth[:n_series])}
                              for name, m in maps.items()])
        auprc["chance"] = float(np.asarray(truth[:n_series]).mean())
    return {"table": table, "curves": curves, "auprc": auprc}


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
