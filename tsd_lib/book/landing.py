"""The landing page's finding: the key figure and a "what this build found" summary.

``tsd reproduce`` writes ``finding.md`` and ``finding.png`` beside the executed chapters
(``book/chapters/``, git-ignored); ``book/intro.md`` includes the page. The figure shows the
saliency of the teacher, of a CE student and of a TSD student on one test series; the summary's
verdicts are the claims engine's (:mod:`tsd_lib.analysis.verdicts`) on the profile's main-grid runs in
the store, each with its test and p, and its numbers are descriptions (validation-selected settings,
means over seeds and datasets), with links to the chapters that explain them.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch

from tsd_lib.analysis.audit import capped_runs
from tsd_lib.analysis.claims import verdict_lines
from tsd_lib.analysis.verdicts import claims_by_arm
from tsd_lib.experiment import SALIENCY_SEED, RunConfig, RunStore, get_dataset, load_student, load_teacher
from tsd_lib.metrics import saliency_similarity
from tsd_lib.profiles import Profile
from tsd_lib.report import compare_saliency, fidelity_table, records_to_frame, select
from tsd_lib.saliency.maps import saliency_map

FINDING_PAGE, FINDING_FIGURE = "finding.md", "finding.png"
NOT_RESULTS = ("smoke", "paper-smoke")  # profiles for tests: their numbers are not results
FIGURE_CHAPTER = "05_tsd"  # the figure's dataset is this chapter's


def tsd_method(profile: Profile) -> str:
    """The profile's TSD student for the figure: CE+TSD, else KD+TSD, else the first TSD method."""
    tsd = [m for m in profile.methods if "tsd" in m.split("+")]
    if not tsd or "ce" not in profile.methods:
        raise ValueError(f"profile {profile.name!r} needs the methods 'ce' and a TSD method for the landing page")
    return next((m for m in ("tsd", "kd+tsd") if m in tsd), tsd[0])


def _chosen_config(chosen: pd.DataFrame, profile: Profile, dataset: str, method: str) -> RunConfig:
    """The config of the first seed's run of the validation-selected setting."""
    rows = chosen[(chosen["dataset"] == dataset) & (chosen["method"] == method)].sort_values("seed")
    by_key = {c.key(): c for c in profile.main_configs()}
    return by_key[rows["key"].iloc[0]]


def finding_figure(profile: Profile, store: RunStore, chosen: pd.DataFrame, path: Path, series: int = 0) -> str:
    """Teacher, CE student and TSD student saliency on test series ``series``; returns a caption."""
    dataset = profile.chapter_parameters(FIGURE_CHAPTER).get("dataset", profile.datasets[0])
    if dataset not in set(chosen["dataset"]):
        dataset = sorted(chosen["dataset"].unique())[0]
    tsd = tsd_method(profile)
    ce_cfg, tsd_cfg = (_chosen_config(chosen, profile, dataset, m) for m in ("ce", tsd))
    record = store.load_record(tsd_cfg)
    teacher_cfg = tsd_cfg.replace(teacher_seed=record.get("teacher_seed_chosen", tsd_cfg.teacher_seed),
                                  teacher_seeds=())
    data = get_dataset(tsd_cfg)
    X, y = data.X_test[series:series + 1], data.y_test[series:series + 1]
    models = {"teacher": load_teacher(teacher_cfg, store), "CE student": load_student(ce_cfg, store),
              f"{tsd.upper()} student": load_student(tsd_cfg, store)}
    maps = {name: saliency_map(m, X, y, X_pool=data.X_train, y_pool=data.y_train, window=tsd_cfg.window,
                               tau=tsd_cfg.tau, generator=torch.Generator().manual_seed(SALIENCY_SEED))[0]
            for name, m in models.items()}
    rho = {name: saliency_similarity(maps["teacher"][None], m[None])["spearman"] for name, m in maps.items()}
    labels = {n: n if n == "teacher" else f"{n}: Spearman with the teacher {rho[n]:.2f}" for n in maps}
    fig = compare_saliency(X[0], {labels[n]: maps[n] for n in maps},
                           title=f"{dataset}, test series {series} (class {data.class_names[int(y[0])]})")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return (f"Where the models look: saliency (bright = the prediction moves most when that window is "
            f"replaced) of the `{tsd_cfg.teacher}` teacher, a CE student and a {tsd.upper()} student "
            f"(`{tsd_cfg.student}`, seed {tsd_cfg.seed}) on test series {series} of {dataset}.")


def _pct(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.1f}%" if b else "n/a"


def finding_summary(profile: Profile, records: list[dict]) -> list[str]:
    """The summary's bullet points, computed from the profile's main-grid records: the runs, the claims
    engine's verdict on each claim (with its test, datasets and Holm p) and, as descriptions, the TSD and CE
    students' means."""
    df = records_to_frame(records)
    fid = fidelity_table(df)
    n_capped = len(capped_runs(records))
    tsd = tsd_method(profile)
    lines = [
        f"**{len(records)} runs**: {df['dataset'].nunique()} datasets × {df['method'].nunique()} methods × "
        f"{df['seed'].nunique()} student seeds; early stopping ended {len(records) - n_capped} of them"
        + (f" and **{n_capped} hit the epoch cap**" if n_capped else "")
        + " ({doc}`/book/chapters/06_experiments`).",
    ]
    for arm, found in claims_by_arm(df).items():
        lines.append(f"The paper's claims on these runs ({arm}), as the claims engine decides them: datasets are "
                     "the unit, and a verdict is *supported*, *contradicted*, *inconclusive* or *too few datasets* "
                     "({doc}`/book/chapters/09_results` lists every comparison with its effect and interval):")
        lines += [f"  - {line}" for line in verdict_lines(found)]
    pairs = [("ce", tsd)] + ([("kd", "kd+tsd")] if tsd != "kd+tsd" else [])
    for base, plus in pairs:
        if base in fid.index and plus in fid.index:
            a, b = fid.at[plus, "auc_pr"], fid.at[base, "auc_pr"]
            lines.append(f"Macro AUC-PR (average precision), {plus.upper()} vs {base.upper()} students: "
                         f"{a:.3f} vs {b:.3f} ({_pct(a, b)}; means over datasets of the seed means, a description: "
                         "the verdicts above are the test).")
    if "saliency_spearman" in fid:
        a, b = fid.at[tsd, "saliency_spearman"], fid.at["ce", "saliency_spearman"]
        lines.append(f"Saliency Spearman with the teacher, {tsd.upper()} vs CE students: {a:.3f} vs {b:.3f} (the "
                     f"perturbation TSD trains on, so not independent evidence); agreement with the teacher's "
                     f"decisions {fid.at[tsd, 'agreement']:.3f} vs {fid.at['ce', 'agreement']:.3f} "
                     "({doc}`/book/chapters/07_beyond_accuracy`).")
    return lines


def write_finding(profile: Profile, store: RunStore, out_dir: Path, site_dir: str = "/book/chapters") -> Path:
    """Write ``finding.md`` (and ``finding.png``) into ``out_dir`` from the profile's runs;
    ``site_dir`` is where ``out_dir`` sits in the book (for the figure's path)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    configs = profile.main_configs()
    records = store.current_records(configs)
    lines = ["## What this build found", ""]
    if profile.name in NOT_RESULTS:
        lines += [":::{warning}", f"Built with the `{profile.name}` profile: **smoke profile: not results**. "
                  "Its models train for a few epochs to check that every page executes; build with "
                  "`make book` (the `quick` profile) for numbers worth reading.", ":::", ""]
    methods = set(profile.methods)
    if "ce" not in methods or not any("tsd" in m.split("+") for m in methods):
        lines.append(f"Profile `{profile.name}` has no CE and TSD students to compare (methods: "
                     f"{', '.join(profile.methods)}).")
    elif len(records) < len(configs):
        lines.append(f"The store holds {len(records)} of the profile's {len(configs)} main-grid runs; run "
                     f"`tsd reproduce --profile {profile.name}` to complete them.")
    else:
        chosen = select(records_to_frame(records), "auc_pr", by="val")
        caption = finding_figure(profile, store, chosen, out_dir / FINDING_FIGURE)
        lines += [f"```{{figure}} {site_dir}/{FINDING_FIGURE}", ":class: tsd-finding", "", caption, "```", ""]
        lines += [line if line.startswith("  - ") else f"- {line}" for line in finding_summary(profile, records)]
    lines += ["", f"Profile `{profile.name}`. How and when each chapter was executed: "
              "{doc}`/book/chapters/execution_report`."]
    path = out_dir / FINDING_PAGE
    path.write_text("\n".join(lines) + "\n")
    return path
