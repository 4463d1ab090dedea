"""One visual language for every figure: a colour and a marker per method, and sizes for the column.

Every figure that draws methods (students of a distillation method, and the teacher) takes its
colours from :data:`METHOD_COLORS` and its markers from :data:`METHOD_MARKERS` through
:func:`method_color` / :func:`method_marker`, so a method looks the same in every chapter. The
TSD family is warm (vermillion, orange, wine), the other methods cool or neutral; CE, the student
without a teacher, is grey and the teacher black.

The book's content column is about 780 px wide and figures are drawn at 100 dpi: a figure at most
:data:`COLUMN_WIDTH` inches wide is shown at its own size, so text of :data:`MIN_FONT_SIZE` points
stays legible. :func:`legible` raises any smaller text of a figure to that size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from matplotlib.figure import Figure

#: One colour per method (colour-blind-safe Okabe-Ito hues first), and the teacher's.
METHOD_COLORS: dict[str, str] = {
    "teacher": "#000000",
    "ce": "#7f7f7f",
    "kd": "#0072B2",
    "fitnets": "#56B4E9",
    "at": "#009E73",
    "rkd": "#999933",
    "dkd": "#CC79A7",
    "dt2w": "#8c564b",
    "tsd": "#D55E00",
    "kd+tsd": "#E69F00",
    "dkd+tsd": "#882255",
}

#: One marker per method: lines and scatters of different methods differ in shape too.
METHOD_MARKERS: dict[str, str] = {
    "teacher": "*",
    "ce": "o",
    "kd": "s",
    "fitnets": "^",
    "at": "v",
    "rkd": "<",
    "dkd": "D",
    "dt2w": ">",
    "tsd": "P",
    "kd+tsd": "X",
    "dkd+tsd": "d",
}

#: The widest figure (inches at 100 dpi) the book's column shows without shrinking it.
COLUMN_WIDTH = 7.8
#: The smallest font size (points) a figure's text may have.
MIN_FONT_SIZE = 9.0
#: A neutral colour for what is not a method (references, chance levels).
NEUTRAL = "0.45"
#: Colours for labelled lines that name no method (teacher variants, say): none is a method's colour.
OTHER_COLORS = ("#222222", "#5e3c99", "#8f8f8f", "#b2abd2", "#4d4d4d", "#c2a5cf")


def method_key(name: object) -> str | None:
    """The method a label names by its first word, or None: ``"kd+tsd"``, ``"KD+TSD student (after)"``,
    ``"kd student"`` and ``"KD+TSD"`` name ``"kd+tsd"``; ``"teacher  $\\hat s_T$"`` names the teacher,
    ``"teacher's ranking"`` nothing."""
    text = str(name).strip().lower()
    if text in METHOD_COLORS:
        return text
    first = re.split(r"[\s:,;()]+", text, maxsplit=1)[0]
    return first if first in METHOD_COLORS else None


def method_color(name: object, default: str | None = None) -> str:
    """The colour of the method ``name`` names (see :func:`method_key`); ``default`` for a label that names
    none (a KeyError without one)."""
    key = method_key(name)
    if key is not None:
        return METHOD_COLORS[key]
    if default is None:
        raise KeyError(f"{name!r} names no method; known: {', '.join(METHOD_COLORS)}")
    return default


def method_marker(name: object, default: str = "o") -> str:
    """The marker of the method ``name`` names; ``default`` for a label that names none."""
    key = method_key(name)
    return METHOD_MARKERS[key] if key is not None else default


def other_color(i: int) -> str:
    """The ``i``-th colour for a label that names no method (:data:`OTHER_COLORS`, cycled)."""
    return OTHER_COLORS[i % len(OTHER_COLORS)]


def method_colors(names: Iterable[object]) -> list[str]:
    """:func:`method_color` of each name; the ``i``-th name of no method gets :func:`other_color` ``(i)``."""
    return [method_color(n, default=other_color(i)) for i, n in enumerate(names)]


def panel_grid(n: int, row_height: float, *, single_width: float = 4.4, head: float = 0.5,
               sharey: bool = False) -> tuple[Figure, list]:
    """A figure of ``n`` panels, two per row, sized for the column (one panel: ``single_width`` inches),
    and its ``n`` axes in reading order (unused cells removed)."""
    import matplotlib.pyplot as plt
    import numpy as np

    ncols, nrows = min(2, n), int(np.ceil(n / 2))
    width = COLUMN_WIDTH if ncols > 1 else single_width
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, head + row_height * nrows), sharey=sharey, squeeze=False,
                             layout="constrained")
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, list(axes[:n])


def legible(fig: Figure, size: float = MIN_FONT_SIZE) -> Figure:
    """Raise every text of ``fig`` smaller than ``size`` points (tick labels, legends, annotations) to it."""
    for ax in fig.axes:
        if _tick_size(ax) < size:
            ax.tick_params(which="both", labelsize=size)
    for text in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "set_fontsize")):
        if text.get_fontsize() < size:
            text.set_fontsize(size)
    return fig


def _tick_size(ax) -> float:  # noqa: ANN001 - an Axes
    labels = ax.get_xticklabels() + ax.get_yticklabels()
    return min((t.get_fontsize() for t in labels), default=MIN_FONT_SIZE)
