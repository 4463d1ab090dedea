"""Critical-difference diagrams (aeon's: Wilcoxon signed-rank with Holm cliques) of a dataset x method frame.

Bare ``Figure`` objects like the other results figures of :mod:`tsd_lib.report.figures`; with too
few datasets or methods, or when aeon fails, a placeholder figure says why (never raises).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.report.figures import _close, _placeholder, _save
from tsd_lib.report.style import method_color, other_color
from tsd_lib.report.tables import _complete


def critical_difference(
    mean_frame: pd.DataFrame, path: str | Path | None = None, *, higher_is_better: bool = True,
    alpha: float = 0.1, title: str | None = None,
) -> Figure:
    """aeon's critical-difference diagram (Wilcoxon + Holm cliques) of a dataset x method frame, on the
    datasets where every method ran, titled with the number of datasets unless ``title`` is given."""
    full = _full(mean_frame)
    default = f"Average ranks over {full.shape[0]} datasets (alpha={alpha}, Wilcoxon-Holm cliques)"
    return _diagram(full, [str(c) for c in full.columns], None, path, higher_is_better, alpha, title, default)


def method_critical_difference(
    mean_frame: pd.DataFrame, path: str | Path | None = None, *, labels: Callable[[str], str] | None = None,
    higher_is_better: bool = True, alpha: float = 0.1, title: str | None = None,
) -> Figure:
    """:func:`critical_difference` with each method's line, rank and name in its one colour
    (:func:`~tsd_lib.report.style.method_color`; a column that names no method gets an other colour),
    the methods shown as ``labels`` names them (a function of the column name, e.g. the book's method
    names), and no title unless given (a chapter's caption says what it shows)."""
    full = _full(mean_frame)
    names = [str(labels(c)) if labels else str(c) for c in full.columns]
    colours = {n: method_color(c, default=other_color(i)) for i, (c, n) in enumerate(zip(full.columns, names,
                                                                                        strict=True))}
    return _diagram(full, names, colours, path, higher_is_better, alpha, title)


def _full(mean_frame: pd.DataFrame) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _complete(mean_frame)


def _diagram(full: pd.DataFrame, names: list[str], colours: dict[str, str] | None, path: str | Path | None,
             higher_is_better: bool, alpha: float, title: str | None, default_title: str | None = None) -> Figure:
    n_data, n_methods = full.shape
    if n_data < 2 or n_methods < 2:
        why = (f"Critical-difference diagram needs >= 2 datasets and >= 2 methods with complete results;\n"
               f"have {n_data} dataset(s) x {n_methods} method(s).")
        return _save(_placeholder(why, title or ""), path)
    try:
        from aeon.visualisation import plot_critical_difference

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            fig, ax = plot_critical_difference(
                full.to_numpy(dtype=float), names, highlight=colours, lower_better=not higher_is_better,
                alpha=alpha, width=7, textspace=1.6,
            )
        _close(fig)
    except Exception as exc:  # noqa: BLE001 - a report must not die on a plotting corner case
        return _save(_placeholder(f"Critical-difference diagram failed: {exc}", title or ""), path)
    if title or default_title:
        ax.set_title(title or default_title, fontsize=9, pad=4)
    return _save(fig, path)
