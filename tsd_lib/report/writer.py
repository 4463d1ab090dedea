"""Tables as CSV/Markdown/HTML files, and ``write_report``: every table, figure and a README into one folder."""

from __future__ import annotations

import html
import json
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from tsd_lib.report.cd_diagram import critical_difference
from tsd_lib.report.figures import (
    _close,
    _save,
    baseline_vs_tsd_scatter,
    fidelity_plot,
    selection_plot,
)
from tsd_lib.report.records import _fmt_value, higher_is_better, metric_label, order_methods, records_to_frame
from tsd_lib.report.selection import select, selection_inflation, settings_table
from tsd_lib.report.tables import _complete, average_ranks, fidelity_table, summary_table, win_tie_loss
from tsd_lib.utils import atomic_write_bytes


def _md_cell(v: Any, decimals: int) -> str:
    if isinstance(v, float | np.floating):
        return "" if math.isnan(v) else f"{v:.{decimals}f}"
    return str(v).replace("|", "\\|")


def _best_mask(numeric: pd.DataFrame, best: str | None) -> pd.DataFrame:
    mask = pd.DataFrame(False, index=numeric.index, columns=numeric.columns)
    if best not in ("max", "min"):
        return mask
    values = numeric.apply(pd.to_numeric, errors="coerce")
    target = values.max(axis=1) if best == "max" else values.min(axis=1)
    return values.sub(target, axis=0).abs().le(1e-12)


def write_table(
    frame: pd.DataFrame | pd.Series, path_stem: str | Path, *, numeric: pd.DataFrame | None = None,
    best: str | None = None, index: bool = True, decimals: int = 3, title: str | None = None,
) -> dict[str, Path]:
    """Write ``frame`` as ``<stem>.csv``, ``<stem>.md`` and a styled ``<stem>.html``.

    With ``best="max"`` or ``"min"`` the best cell of each row (judged on ``numeric``, default
    ``frame``) is bold in the markdown and HTML versions. Returns ``{"csv"|"md"|"html": path}``.
    """
    if isinstance(frame, pd.Series):
        frame = frame.to_frame()
    stem = Path(path_stem)
    mask = _best_mask(frame if numeric is None else numeric.reindex_like(frame), best)
    table = frame.reset_index() if index else frame.reset_index(drop=True)
    mask = (pd.concat([pd.DataFrame(False, index=frame.index, columns=frame.index.names), mask], axis=1)
            if index else mask).reset_index(drop=True)
    mask.columns = table.columns
    header = [str(c) for c in table.columns]

    def cells(fmt: Any) -> list[list[str]]:
        rows = enumerate(table.itertuples(index=False))
        return [[fmt(v, bool(mask.iat[i, j])) for j, v in enumerate(row)] for i, row in rows]

    md_rows = cells(lambda v, b: f"**{_md_cell(v, decimals)}**" if b else _md_cell(v, decimals))
    md = ["| " + " | ".join(_md_cell(h, decimals) for h in header) + " |", "|" + "---|" * len(header)]
    md += [f"| {' | '.join(r)} |" for r in md_rows]
    if title:
        md = [f"**{title}**", "", *md]
    html_rows = cells(lambda v, b: f"<td><b>{html.escape(_md_cell(v, decimals))}</b></td>" if b
                      else f"<td>{html.escape(_md_cell(v, decimals))}</td>")
    page = "\n".join([
        "<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\">",
        f"<title>{html.escape(title or stem.name)}</title>",
        "<style>table.tsd{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
        "table.tsd th,table.tsd td{border:1px solid #ccc;padding:3px 8px;text-align:right}"
        "table.tsd th{background:#f0f0f0}table.tsd td:first-child{text-align:left}"
        "table.tsd tr:nth-child(even){background:#fafafa}table.tsd b{color:#0b4f9c}</style></head><body>",
        f"<h3>{html.escape(title)}</h3>" if title else "",
        "<table class=\"tsd\"><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead>",
        "<tbody>", *("<tr>" + "".join(r) + "</tr>" for r in html_rows), "</tbody></table></body></html>", "",
    ])
    paths = {"csv": stem.with_suffix(".csv"), "md": stem.with_suffix(".md"), "html": stem.with_suffix(".html")}
    atomic_write_bytes(paths["csv"], frame.to_csv(index=index).encode())
    atomic_write_bytes(paths["md"], ("\n".join(md) + "\n").encode())
    atomic_write_bytes(paths["html"], page.encode())
    return paths


def _jsonable(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in out.columns:
        if out[col].map(lambda v: isinstance(v, dict | list | tuple)).any():
            out[col] = out[col].map(lambda v: json.dumps(v, sort_keys=True, default=str)
                                    if isinstance(v, dict | list | tuple) else v)
    return out


def _md_table(frame: pd.DataFrame, decimals: int = 3) -> str:
    header = [str(c) for c in frame.columns]
    lines = [f"| {' | '.join(header)} |", "|" + "---|" * len(header)]
    lines += [f"| {' | '.join(_md_cell(v, decimals) for v in row)} |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def write_report(
    records: Iterable[Mapping[str, Any]] | pd.DataFrame, out_dir: str | Path, metric: str = "auc_pr",
) -> dict[str, Path]:
    """Write every table (CSV/MD/HTML), figure (PNG) and a README.md into ``out_dir``.

    Settings (teacher seed, TSD weight) are selected on validation ``metric`` (ties: validation
    loss). Returns ``{file name: path}``. Raises ``ValueError`` when no run completed.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    def add(written: dict[str, Path]) -> None:
        paths.update({p.name: p for p in written.values()})

    def figure(fig: Figure, name: str) -> None:
        _save(fig, out / name)
        _close(fig)
        paths[name] = out / name

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = records_to_frame(records)
        higher = higher_is_better(metric)
        best = "max" if higher else "min"
        summaries = {metric: summary_table(df, metric, select_metric=metric)}
        if metric != "accuracy" and "accuracy" in df:
            summaries["accuracy"] = summary_table(df, "accuracy", select_metric=metric)
        for m, s in summaries.items():
            add(write_table(s.text, out / f"summary_{m}", numeric=s.mean, best="max" if higher_is_better(m) else "min",
                            title=f"Test {metric_label(m)}, mean ± std over student seeds (selected on validation "
                                  f"{metric_label(metric)})"))
            add(write_table(s.mean, out / f"summary_{m}_mean", numeric=s.mean, best=best, decimals=4))
        ranks = pd.DataFrame({f"rank_{m}": average_ranks(s.mean, higher_is_better(m)) for m, s in summaries.items()})
        ranks = ranks.reindex(ranks.iloc[:, 0].sort_values(kind="mergesort").index)
        ranks["n_datasets"] = len(_complete(summaries[metric].mean))
        add(write_table(ranks, out / "ranks", title="Average rank over datasets (1 = best)"))
        wtl = win_tie_loss(summaries[metric].mean, baseline=("ce", "kd"), higher_is_better=higher)
        add(write_table(wtl, out / "win_tie_loss", index=False, decimals=4,
                        title=f"Wins/ties/losses vs baseline (test {metric_label(metric)})"))
        infl = selection_inflation(df, metric)
        add(write_table(infl, out / "inflation", index=False, decimals=4,
                        title="Test score under validation selection vs test selection (the authors' protocol)"))
        fid = fidelity_table(df, metric)
        add(write_table(fid, out / "fidelity", decimals=4, title="Fidelity (mean over datasets, validation-selected)"))
        settings = settings_table(df, metric)
        atomic_write_bytes(out / "settings.csv", settings.to_csv(index=False).encode())
        paths["settings.csv"] = out / "settings.csv"
        selected = _jsonable(select(df, metric, "val"))
        atomic_write_bytes(out / "selected_runs.csv", selected.to_csv(index=False).encode())
        paths["selected_runs.csv"] = out / "selected_runs.csv"

        figure(critical_difference(summaries[metric].mean, higher_is_better=higher,
                                   title=f"Test {metric_label(metric)}: average ranks"), f"cd_{metric}.png")
        figure(baseline_vs_tsd_scatter(summaries[metric].mean, metric=metric), f"scatter_{metric}.png")
        figure(fidelity_plot(df, select_metric=metric), "fidelity.png")
        figure(selection_plot(df, metric), f"selection_{metric}.png")
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, UserWarning)))

    label = metric_label(metric)
    seeds = sorted(df["seed"].dropna().unique().tolist()) if "seed" in df else []
    tsd_rows = infl[infl["n_settings"] > 1]
    by_method = tsd_rows.groupby("method")["inflation"].agg(["mean", "max", "size"]).reindex(
        order_methods(tsd_rows["method"].unique()))
    lines = [
        "# TSD reproduction report", "",
        "**Protocol.** TSD weight and teacher seed selected on validation "
        f"{label} (ties: validation loss); the authors selected on the test set; "
        "the inflation table (`inflation.*`) shows the difference. Every number below is a test-split "
        "score, mean ± std over the student seeds of the selected setting.", "",
        f"- completed runs: {len(df)}; datasets: {df['dataset'].nunique()}; methods: "
        f"{', '.join(order_methods(df['method'].unique()))}; student seeds: {', '.join(map(_fmt_value, seeds))}",
        "",
        f"## Average ranks (test {label}, 1 = best)", "",
        _md_table(ranks.reset_index()), "",
        "## Selection inflation (test-selected − validation-selected test score)", "",
    ]
    if by_method.empty:
        lines.append("Each (dataset, method) has one setting: nothing was selected.")
    else:
        lines.append(_md_table(by_method.rename(columns={"size": "n_datasets"}).reset_index(), 4))
    lines += ["", "## Files", "", *(f"- `{name}`" for name in sorted(paths)), ""]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    atomic_write_bytes(out / "README.md", "\n".join(lines).encode())
    paths["README.md"] = out / "README.md"
    return paths
