"""The "What we saw" markdown of chapters 1-5, written from the numbers each chapter computed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.analysis.architectures import ARCH, pair_sizes
from tsd_lib.analysis.logits import gradient_ratios, soft_entropy
from tsd_lib.analysis.tables import compare_means, seed_stats
from tsd_lib.data import Dataset
from tsd_lib.experiment import RunConfig
from tsd_lib.metrics import softmax
from tsd_lib.saliency import BASELINES


def _means(stats: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return stats.xs("mean", axis=1, level=1), stats.xs("std", axis=1, level=1)


def teacher_summary(data: Dataset, config: RunConfig, record: Mapping[str, Any], teachers: pd.DataFrame, *,
                    pair: RunConfig | None = None, alt: tuple[RunConfig, Mapping[str, Any]] | None = None,
                    picks: Mapping[str, int] | None = None) -> str:
    """Chapter 1: the data set, preprocessing, the profile's teacher against the published FCN and the
    majority class, the paper's pair teacher (``pair`` and the chosen ``alt`` config and record) and the
    student's size."""
    s = data.summary()
    n_teacher, n_student = pair_sizes(data, config)
    majority = float(np.bincount(data.y_test).max() / len(data.y_test))
    alt_line = ""
    if pair is not None and alt is not None:
        alt_cfg, alt_record = alt
        if pair.teacher_seeds:
            how = f"chosen among seeds {', '.join(map(str, pair.teacher_seeds))} on validation"
        elif pair.teacher_key() not in (picks or {}):
            how = "one seed, not chosen on validation"
        elif picks[pair.teacher_key()] == pair.teacher_seed:
            how = "the seed validation picks in the study of section 1.7"
        else:
            how = f"not the seed validation picks in the study of section 1.7, which is {picks[pair.teacher_key()]}"
        alt_line = (f"\n* The paper's {ARCH[alt_cfg.teacher]} teacher ({how}) reached test accuracy "
                    f"**{alt_record['test_accuracy']:.3f}** on {data.name} (seed {alt_cfg.teacher_seed}).")
    pub = teachers[(teachers.dataset == config.dataset) & (teachers.teacher == config.teacher)]["published FCN"]
    pub_line = "" if pub.empty or np.isnan(pub.iloc[0]) else f" (published FCN: {pub.iloc[0]:.3f})"
    ended = "trained until early stopping ended it" if record["stopped_early"] else "stopped by the epoch cap"
    return f'''
* A UCR set is a small collection of labelled series; **{data.name}** has {s['n_train'] + s['n_val']}
  training series (of which {s['n_val']} are held out for validation) and {s['n_test']} test series.
* Series longer than {config.length} points are resampled down to {config.length} and every series is z-normalised;
  the validation split is stratified.
* The profile's {ARCH[config.teacher]} teacher ({n_teacher:,} parameters), {ended}, reached test accuracy
  **{record['test_accuracy']:.3f}**{pub_line} and AUC-PR **{record['test_auc_pr']:.3f}** on {data.name}; the
  majority-class rate is {majority:.3f}.{alt_line}
* The student that the next chapters train ({ARCH[config.student]}) has {n_student:,} parameters,
  {n_teacher / n_student:.0f}× fewer. Whatever it learns beyond the labels must come from the teacher: its
  probabilities (chapter 2), its features (chapter 3) or its temporal saliency (chapters 4-5).
'''


def logit_summary(name: str, teacher_logits: np.ndarray, tau: float, kd_check: tuple[float, float],
                  grads: pd.DataFrame, frame: pd.DataFrame, n_seeds: int) -> str:
    """Chapter 2: softened targets at ``tau``, the by-hand KD loss against ``kd_loss`` (``kd_check``: floats
    or 0-d tensors), the tau^2 factor (``grads`` from :func:`~tsd_lib.analysis.logits.kd_gradient_table`) and
    CE against KD students (``frame``: their runs, one row each)."""
    mean, std = _means(seed_stats(frame, ["accuracy", "auc_pr", "agreement", "kl_teacher_student"], ["ce", "kd"]))
    by_hand, library = (float(v) for v in kd_check)
    ratio_plain, ratio_kd = gradient_ratios(grads)
    d_acc = mean.at["kd", "accuracy"] - mean.at["ce", "accuracy"]
    d_auc = mean.at["kd", "auc_pr"] - mean.at["ce", "auc_pr"]
    spread = max(std.at["kd", "auc_pr"], std.at["ce", "auc_pr"])
    closer = mean.at["kd", "kl_teacher_student"] < mean.at["ce", "kl_teacher_student"]
    k = teacher_logits.shape[1]
    match = "matches" if abs(by_hand - library) < 1e-5 else "does not match"
    return f'''
* Temperature softens the teacher's outputs: its mean top-class probability on the test set is
  {softmax(teacher_logits).max(1).mean():.3f} at τ = 1 and {softmax(teacher_logits, tau=tau).max(1).mean():.3f} at
  τ = {tau:g}, where its mean entropy is {soft_entropy(teacher_logits, tau):.3f} nats (uniform: {np.log(k):.3f}).
* The KD loss is τ² KL(p_T^τ ‖ p_S^τ); computing it by hand {match}
  `kd_loss`. Between τ = {grads.index[0]:g} and τ = {grads.index[-1]:g} the gradient of the plain KL shrank
  {ratio_plain:.0f}-fold, while the τ²-scaled gradient changed by a factor of {ratio_kd:.2f}.
* Over {n_seeds} seeds on {name}, the KD student's mean test accuracy was
  {'higher' if d_acc > 0 else 'not higher'} than the CE student's ({mean.at['kd', 'accuracy']:.3f} vs
  {mean.at['ce', 'accuracy']:.3f}) and its mean AUC-PR {'higher' if d_auc > 0 else 'not higher'}
  ({mean.at['kd', 'auc_pr']:.3f} vs {mean.at['ce', 'auc_pr']:.3f}); the AUC-PR difference is
  {'smaller' if abs(d_auc) < spread else 'larger'} than the seed-to-seed standard deviation ({spread:.3f}).
* Fidelity: the KD student's predictive distribution was {'closer to' if closer else 'not closer to'} the
  teacher's (mean KL {mean.at['kd', 'kl_teacher_student']:.3f} vs {mean.at['ce', 'kl_teacher_student']:.3f}),
  with agreement {mean.at['kd', 'agreement']:.3f} vs {mean.at['ce', 'agreement']:.3f}.
* Logit distillation transfers *what* the teacher predicts, series by series. It says nothing about *why*:
  which parts of a series drove the prediction. Chapter 3 tries features; chapter 4 measures the "why" directly.
'''


def baselines_summary(name: str, frame: pd.DataFrame, methods: Sequence[str], at_gap: Mapping[str, float],
                      rkd_gap: Mapping[str, float], n_seeds: int) -> str:
    """Chapter 3: what each baseline copies, whether AT and RKD moved the quantity they train on
    (``at_gap``, ``rkd_gap`` per method) and how ``methods`` rank (``frame``: their runs, one row each)."""
    mean, std = _means(seed_stats(frame, ["auc_pr", "kl_teacher_student"], methods))
    best_auc, best_kl = mean["auc_pr"].idxmax(), mean["kl_teacher_student"].idxmin()
    beat_ce = [m for m in methods if m != "ce" and mean.at[m, "auc_pr"] > mean.at["ce", "auc_pr"]]
    spread = std["auc_pr"].max()
    range_auc = mean["auc_pr"].max() - mean["auc_pr"].min()
    at_moved, rkd_moved = at_gap["at"] < at_gap["ce"], rkd_gap["rkd"] < rkd_gap["ce"]
    noise = range_auc < spread
    return f'''
* FitNets and DT2W copy the teacher's feature sequence (through a learned adapter, DT2W up to a time warp), AT its
  attention over time, RKD the geometry of its embeddings, DKD a decoupled version of its logits.
* Inside the networks: the AT student's attention profile was {'closer to' if at_moved else 'not closer to'}
  the teacher's than the CE student's (AT loss {at_gap['at']:.2e} vs {at_gap['ce']:.2e}), and the RKD student's
  distance matrix {'matched' if rkd_moved else 'did not match'} the teacher's better than the CE student's.
  {'Each of the two methods moved the quantity it is trained on.' if at_moved and rkd_moved
   else 'Training on a quantity did not guarantee matching it on test series here.'}
* On {name} the highest mean test AUC-PR was reached by **{best_auc}** ({mean.at[best_auc, 'auc_pr']:.3f}); the
  methods whose mean AUC-PR exceeded plain CE ({mean.at['ce', 'auc_pr']:.3f}) were:
  {', '.join(beat_ce) if beat_ce else 'none'}. The spread between methods ({range_auc:.3f}) is
  {'smaller' if noise else 'larger'} than the largest seed-to-seed standard deviation ({spread:.3f}),
  so {f'these differences are within seed noise with {n_seeds} seeds' if noise
      else 'the ranking is not only seed noise, though a single data set proves little'}.
* The student closest to the teacher in distribution (lowest mean KL) was **{best_kl}**.
* None of these losses tells the student *which time steps made the teacher decide*. That is the missing piece
  TSD adds, and the next chapter shows how to measure it.
'''


def saliency_summary(name: str, i: int, window: int, top_start: int, baselines: pd.DataFrame,
                     precision: pd.DataFrame, chance: float, agree: pd.DataFrame) -> str:
    """Chapter 4: the largest window shift on series ``i``, the replacement baselines (``baselines`` from
    :func:`~tsd_lib.analysis.saliency_views.baseline_table`), the planted-pattern precision of each
    teacher and map (``precision``) and how gradient maps agree with occlusion (``agree``)."""
    spearman = baselines["Spearman vs other_class"]
    less = baselines.at["same_class", "mean saliency"] < baselines.at["other_class", "mean saliency"]
    lines = [
        f"* Replacing a window of length {window} with the same window of another-class series and measuring "
        f"τ² KL(p‖q_t) tells how much that stretch matters; on {name} test series {i} the teacher's largest "
        f"shift came from the window starting at t = {top_start}.",
        f"* {'The replacement matters' if spearman.min() < 0.9 else 'The replacement mattered little here'}: "
        "the maps of the other baselines correlated with the other-class maps with Spearman "
        + ", ".join(f"{b} {spearman[b]:.2f}" for b in BASELINES if b != "other_class")
        + f"; same-class donors moved the teacher {'less' if less else 'not less'} than other-class donors.",
    ]
    for teacher, row in precision[precision["map"] == "occlusion (TSD)"].set_index("teacher").iterrows():
        p = row["precision"]
        lines.append(
            f"* Synthetic check, {teacher}: test accuracy {row['test accuracy']:.3f}, occlusion precision "
            f"{p:.3f} against chance {chance:.2f}, "
            f"{'well above' if p > 2 * chance else 'above' if p > chance else 'not above'} chance."
            + ("" if row["test accuracy"] >= 0.9 else " With a test accuracy below 0.9 this teacher has not fully "
               "learned the task and need not rely on the pattern alone, so read its precision with care: the check "
               "is only conclusive for a teacher that classifies well."))
    best = precision.loc[precision["precision"].idxmax()]
    rho = agree["Spearman vs occlusion"]
    lines.append(f"* The most precise map overall was {best['map']} of the {best['teacher']} "
                 f"({best['precision']:.3f}). "
                 f"On {name}, gradient maps agreed with the occlusion map with a Spearman correlation of "
                 f"{rho.iloc[0]:.2f} (|gradient|) and {rho.iloc[1]:.2f} (|IG|)"
                 + (": different methods can tell different stories." if rho.min() < 0.7 else
                    ", broadly the same story."))
    lines.append("* Chapter 5 turns the occlusion saliency into a loss: the student is trained so that the same "
                 "perturbations move *its* predictions the way they move the teacher's.")
    return "\n".join(lines)


def tsd_summary(name: str, profile: str, stats: pd.DataFrame, checks: tuple[bool, bool],
                rho: Mapping[str, np.ndarray], n_seeds: int, students: Sequence[str]) -> str:
    """Chapter 5: the by-hand checks (``checks``: loss equals ``tsd_loss``, teacher side equals
    ``distribution_shift``), KD+TSD against KD and CE (``stats``) and, on the drawn series, how often the
    KD+TSD student's map is closer to the teacher's than the CE student's (``rho`` of ``students``:
    CE first, KD+TSD second)."""
    same_loss, matches = checks
    ce, tsd = (np.asarray(rho[s]) for s in students)
    return "\n".join([
        f"- Computed by hand on one batch, the TSD loss equals the library's `tsd_loss` when both use the same "
        f"generator (equal: **{same_loss}**); the teacher side equals `distribution_shift` (**{matches}**).",
        f"- Saliency Spearman with the teacher, KD+TSD vs CE students on {name}: "
        f"{compare_means(stats, 'kd+tsd', 'ce', 'saliency_spearman')}.",
        f"- Saliency Spearman, KD+TSD vs KD: {compare_means(stats, 'kd+tsd', 'kd', 'saliency_spearman')}.",
        f"- Test accuracy, KD+TSD vs KD: {compare_means(stats, 'kd+tsd', 'kd', 'accuracy')}; vs CE: "
        f"{compare_means(stats, 'kd+tsd', 'ce', 'accuracy')}.",
        f"- On the {len(tsd)} series drawn above, the KD+TSD student's map is closer to the teacher's (higher "
        f"Spearman) than the CE student's on {int((tsd > ce).sum())} of {len(tsd)}.",
        f"- This is one dataset under profile `{profile}` with {n_seeds} seed(s); Chapter 6 looks across datasets.",
    ])
