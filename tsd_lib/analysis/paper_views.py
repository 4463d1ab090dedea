"""The paper's protocol as archived (``results/paper/``, made by ``tsd archive``): what is covered,
the results of the complete datasets, the runs continued past the epoch cap and the archived DT2W runs
the old adapter made (the results page; what the rest would cost: :mod:`tsd_lib.analysis.paper_cost`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.audit import capped_runs
from tsd_lib.analysis.seed_tables import method_label
from tsd_lib.experiment import RunConfig
from tsd_lib.profiles import Profile, load_profile
from tsd_lib.report import (
    average_ranks,
    order_methods,
    records_to_frame,
    select,
    selection_inflation,
    summary_table,
    win_tie_loss,
)
from tsd_lib.runs.archive import Archive, archive_dir, extension_chain, resolve_teachers
from tsd_lib.runs.certification import is_current

#: Results-code digests whose DT2W runs drew a new random subset of teacher channels every batch (the
#: adapter that collapsed the student's features; one subset per run since commit dbfd25e). The code of
#: commit bb2e4a2, the last before the fix, hashes to this digest.
DT2W_PER_BATCH_CODES = frozenset({"5372198e93603e16"})

EXTENSION_COLUMNS = ["dataset", "method", "TSD weight", "seed", "cap", "continued to", "stopped early",
                     "AUC-PR at cap", "AUC-PR converged", "change"]


@dataclass
class PaperArchive:
    """An archive, its profile, the records of its *complete* datasets (a run the cap ended
    replaced by its converged continuation), the coverage table and those continuations.

    ``by_method`` holds, per arm (``"main"``: the profile's pair; then each of its ``pairs``), the
    records of every (dataset, method) whose runs are all archived (every setting and seed) and
    converged (a capped run counts once its continuation is): what the claims engine compares,
    dataset by dataset. ``defaults`` holds the main arm's runs at each
    method's default setting (no tuning) on every dataset where they are all archived."""

    archive: Archive
    profile: Profile
    records: list[dict[str, Any]]
    coverage: pd.DataFrame
    extensions: pd.DataFrame
    by_method: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    defaults: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> list[str]:
        return list(self.coverage.index[self.coverage["complete"]])

    @property
    def claim_records(self) -> list[dict[str, Any]]:
        """What the claims engine reads: every arm's records of (dataset, method) groups archived whole."""
        return [r for records in self.by_method.values() for r in records]

    @property
    def n_capped(self) -> int:
        """Runs behind the tables that no continuation brought to early stopping."""
        return len(capped_runs(self.records)) if self.records else 0


def _converged(archive: Archive, config: RunConfig) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The run's record for the tables and, when the cap ended it, a row on its continuation. The
    table record is the last continuation's, with ``epochs`` the profile's cap (the setting the run
    belongs to) and ``extended_to`` the cap it finally ran under."""
    chain = extension_chain(config, archive.has, archive.load_record)
    first, last = archive.load_record(chain[0]), archive.load_record(chain[-1])
    faith = archive.faithfulness(chain[-1])
    last = {**last, **{f"faith_{k}": v for k, v in (faith or {}).get("areas", {}).items()},
            "grad_saliency_spearman": (faith or {}).get("gradient_agreement"),
            "planted_auprc": ((faith or {}).get("auprc") or {}).get("student")}
    if first["stopped_early"]:
        return last, None
    row = {"dataset": config.dataset, "method": config.method, "TSD weight": (config.weights or {}).get("tsd"),
           "seed": config.seed, "cap": config.epochs, "continued to": last["epochs_run"],
           "stopped early": bool(last["stopped_early"]), "AUC-PR at cap": first["auc_pr"],
           "AUC-PR converged": last["auc_pr"], "change": last["auc_pr"] - first["auc_pr"]}
    return {**last, "epochs": config.epochs, "extended_to": chain[-1].epochs}, row


def load_paper_archive(name: str = "paper", *, path: str | os.PathLike | None = None,
                       profile: Profile | None = None) -> PaperArchive | None:
    """The archive ``results/<name>`` (or ``path``; ``None`` when there is none) read with the
    profile that made it: per dataset, archived runs and teachers against the profile's, and the
    records of the datasets whose every run is in."""
    folder = Path(path) if path is not None else archive_dir(name)
    if not (folder / "manifest.json").exists():
        return None
    archive = Archive(folder)
    profile = profile or load_profile(archive.profile)
    arms = {"main": profile.main_configs(), **{arm: profile.pair_configs(arm) for arm in profile.pairs}}
    arms = {arm: resolve_teachers(configs, archive.has_teacher, archive.load_teacher_record)  # continued teachers
            for arm, configs in arms.items()}
    rows, records, extended = [], [], []
    by_method: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    defaults: list[dict[str, Any]] = []
    found: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
    for configs in arms.values():
        for c in configs:
            if c.key() not in found and archive.has(c):
                found[c.key()] = _converged(archive, c)
    extended = [row for _, row in found.values() if row]
    for dataset in dict.fromkeys(c.dataset for c in arms["main"]):  # canonical names, the profile's order
        row: dict[str, Any] = {"dataset": dataset}
        for arm, every in arms.items():
            configs = [c for c in every if c.dataset == dataset]
            if not configs:
                continue
            have = [c for c in configs if c.key() in found]
            row["runs" if arm == "main" else f"runs ({arm} arm)"] = f"{len(have)} / {len(configs)}"
            for method in dict.fromkeys(c.method for c in configs):
                group = [c for c in configs if c.method == method]
                if _settled(group, found):
                    by_method[arm] += [found[c.key()][0] for c in group]
            if arm == "main":
                teachers = configs[0].teacher_candidates()
                row["teachers"] = f"{sum(archive.has_teacher(t) for t in teachers)} / {len(teachers)}"
                row["complete"] = len(have) == len(configs)
                if row["complete"]:
                    records += [found[c.key()][0] for c in configs]
                plain = [c for c in configs if _is_default(profile, c)]
                if _settled(plain, found):
                    defaults += [found[c.key()][0] for c in plain]
        rows.append(row)
    return PaperArchive(archive, profile, records, pd.DataFrame(rows).set_index("dataset"),
                        pd.DataFrame(extended, columns=EXTENSION_COLUMNS), by_method, defaults)


def _settled(group: list[RunConfig], found: dict[str, tuple[dict[str, Any], dict[str, Any] | None]]) -> bool:
    """Every run of ``group`` is archived and early stopping ended it (a run the cap ended counts once its
    continuation converged): only such groups enter a comparison."""
    return all(c.key() in found and found[c.key()][0]["stopped_early"] for c in group)


def _is_default(profile: Profile, config: RunConfig) -> bool:
    """Whether ``config`` runs its method at the default setting (TSD weight 1, no grid value)."""
    return config.settings == profile.run.get("settings") and all(w == 1.0 for w in config.terms.values())


def paper_results(paper: PaperArchive) -> dict[str, Any]:
    """For the complete datasets: the macro AUC-PR table (validation-selected setting, mean ± std over
    seeds), its average ranks, wins/ties/losses against CE and KD, the TSD weight validation picked
    per dataset and method (and the teacher seed it picked before any student trained), and how
    much picking it on the test set would have inflated the result."""
    df = records_to_frame(paper.records)
    summary = summary_table(df, "auc_pr")
    inflation = selection_inflation(df, "auc_pr")
    chosen = select(df, "auc_pr", by="val")
    tsd = chosen[chosen["method"].str.split("+").map(lambda terms: "tsd" in terms)]
    weights = tsd.groupby(["dataset", "method"])["tsd_weight"].first().unstack("method")
    weights = weights.reindex(columns=order_methods(weights.columns)).rename(columns=lambda m: f"{m} weight")
    weights["teacher seed"] = df.groupby("dataset")["teacher_seed_chosen"].first()
    wtl = win_tie_loss(summary.mean, baseline=("ce", "kd"))
    return {"frame": df, "summary": summary, "ranks": average_ranks(summary.mean), "weights": weights,
            "inflation": inflation, "wtl": wtl}


FAITH_COLUMNS = {"faith_student_own_deletion": "deletion, own ranking",
                 "faith_student_teacher_deletion": "deletion, teacher's ranking",
                 "faith_student_own_insertion": "insertion, own ranking",
                 "faith_student_teacher_insertion": "insertion, teacher's ranking"}


def faithfulness_table(paper: PaperArchive) -> pd.DataFrame:
    """Per method (validation-selected setting, mean over the complete datasets and seeds): the
    deletion and insertion areas of its students ranked by their own saliency and by the teacher's,
    and the teacher's own (first row). Deletion: lower is more faithful; insertion: higher."""
    df = records_to_frame(paper.records)
    if not set(FAITH_COLUMNS) <= set(df.columns):
        return pd.DataFrame(columns=list(FAITH_COLUMNS.values()))
    sel = select(df, "auc_pr", by="val")
    table = sel.groupby("method", sort=False)[list(FAITH_COLUMNS)].mean().rename(columns=FAITH_COLUMNS)
    table = table.reindex(order_methods(table.index))
    teacher = sel.drop_duplicates(["dataset", "teacher_key"])[["faith_teacher_deletion", "faith_teacher_insertion"]]
    own = {"deletion, own ranking": teacher["faith_teacher_deletion"].mean(),
           "insertion, own ranking": teacher["faith_teacher_insertion"].mean()}
    return pd.concat([pd.DataFrame([own], index=["teacher"]), table])[list(FAITH_COLUMNS.values())]


def weights_view(weights: pd.DataFrame) -> pd.DataFrame:
    """:func:`paper_results`' ``weights`` for readers: one column per TSD method, "TSD weight chosen, KD+TSD",
    the weights as written in the profile (``0.1``, ``100``; "–" where validation chose none), then the
    teacher seed chosen before any student trained; index ``dataset``."""
    def name(column: str) -> str:
        return column if column == "teacher seed" else f"TSD weight chosen, {method_label(column[:-len(' weight')])}"

    view = weights.map(lambda v: "–" if pd.isna(v) else f"{v:g}").rename(columns=name)
    view.index.name, view.columns.name = "dataset", None
    return view


def shown_records(paper: PaperArchive) -> list[dict[str, Any]]:
    """Every distinct record the results page reads: the claims engine's (each arm's whole (dataset,
    method) groups) and the default-setting runs."""
    return list({r["key"]: r for r in [*paper.claim_records, *paper.defaults]}.values())


def old_dt2w(paper: PaperArchive) -> pd.DataFrame:
    """Per dataset: the archived DT2W runs, how many of them the per-batch adapter made (code in
    :data:`DT2W_PER_BATCH_CODES`) and how many the current code does not stand for (not current, nor
    certified), the codes that made them, and DT2W's and CE's mean test accuracy at the default setting
    (``paper.defaults``, NaN where not archived)."""
    columns = ["dataset", "DT2W records", "made by the per-batch adapter", "not current", "made by code",
               "DT2W accuracy (default)", "CE accuracy (default)"]
    runs = [r for r in paper.archive.records() if r.get("method") == "dt2w"]
    if not runs:
        return pd.DataFrame(columns=columns)
    default = pd.DataFrame(paper.defaults)
    accuracy = (default.groupby(["dataset", "method"])["accuracy"].mean() if len(default) else pd.Series(dtype=float))
    rows = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        mine = [r for r in runs if r["dataset"] == dataset]
        rows.append({"dataset": dataset, "DT2W records": len(mine),
                     "made by the per-batch adapter": sum(r.get("code") in DT2W_PER_BATCH_CODES for r in mine),
                     "not current": sum(not is_current(r, paper.archive.manifest) for r in mine),
                     "made by code": ", ".join(sorted({str(r.get("code")) for r in mine})),
                     "DT2W accuracy (default)": float(accuracy.get((dataset, "dt2w"), np.nan)),
                     "CE accuracy (default)": float(accuracy.get((dataset, "ce"), np.nan))})
    return pd.DataFrame(rows, columns=columns)


def old_dt2w_numbers(table: pd.DataFrame) -> dict[str, Any]:
    """For the page's prose, from :func:`old_dt2w`: DT2W records archived and made by the per-batch adapter,
    the codes that made those, the dataset where the old DT2W falls furthest below CE at the default setting
    with both accuracies ("none" and NaN without one), the datasets whose DT2W runs the current adapter
    made (``fixed``) and their largest CE-minus-DT2W accuracy gap at the default setting (``fixed_gap``),
    and the name DT2W's column and row should carry in the page's tables and figures."""
    old = table[table["made by the per-batch adapter"] > 0]
    fixed = table[(table["made by the per-batch adapter"] == 0) & (table["not current"] == 0)]
    fixed_gap = (fixed["CE accuracy (default)"] - fixed["DT2W accuracy (default)"]).dropna()
    gap = (old["CE accuracy (default)"] - old["DT2W accuracy (default)"]).dropna()
    worst = old.loc[gap.idxmax()] if len(gap) else None
    return {"records": int(table["DT2W records"].sum()), "old": int(old["made by the per-batch adapter"].sum()),
            "codes": ", ".join(sorted({c for codes in old["made by code"] for c in codes.split(", ")})) or "none",
            "worst": "none" if worst is None else str(worst["dataset"]),
            "worst_dt2w": np.nan if worst is None else float(worst["DT2W accuracy (default)"]),
            "worst_ce": np.nan if worst is None else float(worst["CE accuracy (default)"]),
            "fixed": len(fixed), "fixed_gap": float(fixed_gap.max()) if len(fixed_gap) else np.nan,
            "label": "DT2W (old adapter)" if len(old) else "DT2W"}


def extension_numbers(paper: PaperArchive) -> dict[str, Any]:
    """For the page's prose, from ``paper.extensions``: how many archived runs the epoch cap ended while they
    still improved (``capped``) and their ``methods`` ("none" without any), how many of them have been
    continued past the cap (``continued``) or wait for it (``waiting``), how many continued runs early
    stopping then ended (``settled``), the longest continuation in epochs (``longest``), the largest and the
    mean change continuing made to their test macro AUC-PR (``max_change``, ``mean_change``; 0 without a
    continued run), and the runs behind the complete datasets' tables still capped (``still_capped``)."""
    ext = paper.extensions
    continued = ext[ext["continued to"] > ext["cap"]]
    change = continued["change"].astype(float)
    return {"capped": len(ext), "methods": ", ".join(sorted(set(ext["method"]))) or "none",
            "continued": len(continued), "waiting": len(ext) - len(continued),
            "settled": int(continued["stopped early"].sum()),
            "longest": int(continued["continued to"].max()) if len(continued) else 0,
            "max_change": float(change.abs().max()) if len(change) else 0.0,
            "mean_change": float(change.mean()) if len(change) else 0.0, "still_capped": paper.n_capped}
