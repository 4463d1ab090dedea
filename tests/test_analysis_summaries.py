"""The chapters' "What we saw" markdown, from small tables whose conclusions are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tsd_lib.analysis import (
    archived_note,
    baseline_table,
    baselines_summary,
    kd_gradient_table,
    logit_summary,
    saliency_summary,
    seed_stats,
    teacher_summary,
    tsd_summary,
)
from tsd_lib.experiment import RunConfig


def _frame(rows: dict[str, list[dict[str, float]]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, **r} for m, runs in rows.items() for r in runs])


def _stats(rows: dict[str, list[dict[str, float]]], metrics: list[str]) -> pd.DataFrame:
    return seed_stats(_frame(rows), metrics, list(rows))


def test_teacher_summary(tiny_dataset):
    data = tiny_dataset
    config = RunConfig(dataset="GunPoint", teacher="fcn", student="fcn_small")
    teachers = pd.DataFrame({"dataset": ["GunPoint"], "teacher": ["fcn"], "published FCN": [1.0]})
    record = {"test_accuracy": 0.9, "test_auc_pr": 0.95, "stopped_early": True}
    text = teacher_summary(data, config, record, teachers)
    assert "**GunPoint** has 8\n  training series (of which 2 are held out for validation) and 3 test series" in text
    assert "trained until early stopping ended it, reached test accuracy\n  **0.900** (published FCN: 1.000)" in text
    assert "majority-class rate is 0.667." in text and "The paper's" not in text
    pair = RunConfig(dataset="GunPoint", teacher="lstm_teacher", teacher_seeds=(0, 1))
    alt = (pair.replace(teacher_seeds=(), teacher_seed=1), {"test_accuracy": 0.8})
    text = teacher_summary(data, config, {**record, "stopped_early": False}, teachers, pair=pair, alt=alt)
    assert "stopped by the epoch cap" in text
    assert ("* The paper's LSTM 3×100 teacher (chosen among seeds 0, 1 on validation) reached test accuracy "
            "**0.800** on GunPoint (seed 1).") in text
    single = pair.replace(teacher_seeds=(), teacher_seed=1)
    picked = teacher_summary(data, config, record, teachers, pair=single, alt=alt, picks={single.teacher_key(): 1})
    assert "(the seed validation picks in the study of section 1.7)" in picked
    assert "(one seed, not chosen on validation)" in teacher_summary(data, config, record, teachers, pair=single,
                                                                     alt=alt, picks={})
    other = teacher_summary(data, config, record, teachers, pair=single, alt=alt, picks={single.teacher_key(): 24})
    assert "(not the seed validation picks in the study of section 1.7, which is 24)" in other


def test_logit_summary():
    # the runs of CE and KD students, one row each (KD first: the summary finds the methods by name)
    frame = _frame({"kd": [{"accuracy": 0.95, "auc_pr": 0.9, "agreement": 0.95, "kl_teacher_student": 0.05},
                           {"accuracy": 0.95, "auc_pr": 0.9, "agreement": 0.95, "kl_teacher_student": 0.05}],
                    "ce": [{"accuracy": 0.8, "auc_pr": 0.7, "agreement": 0.8, "kl_teacher_student": 0.2},
                           {"accuracy": 0.9, "auc_pr": 0.8, "agreement": 0.9, "kl_teacher_student": 0.1}]})
    g = torch.Generator().manual_seed(0)
    grads = kd_gradient_table(torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g), taus=[1.0, 32.0])
    text = logit_summary("D", np.zeros((3, 2)), 8.0, (0.5, 0.5), grads, frame, n_seeds=2)
    assert "0.500 at τ = 1 and 0.500 at\n  τ = 8, where its mean entropy is 0.693 nats (uniform: 0.693)." in text
    assert "by hand matches\n  `kd_loss`. Between τ = 1 and τ = 32" in text
    assert "the KD student's mean test accuracy was\n  higher than the CE student's (0.950 vs\n  0.850)" in text
    assert "the AUC-PR difference is\n  larger than the seed-to-seed standard deviation (0.071)" in text
    assert "was closer to the\n  teacher's (mean KL 0.050 vs 0.150)" in text
    assert "does not match" in logit_summary("D", np.zeros((3, 2)), 8.0, (0.5, 0.6), grads, frame, 2)
    by_hand, library = torch.tensor(0.5), torch.tensor(0.5)  # the chapter passes the losses as 0-d tensors
    assert logit_summary("D", np.zeros((3, 2)), 8.0, (by_hand, library), grads, frame, 2) == text


def test_baselines_summary():
    runs = {"ce": [0.70, 0.72], "at": [0.80, 0.78], "rkd": [0.60, 0.62]}
    frame = _frame({m: [{"auc_pr": v, "kl_teacher_student": 0.1 * (i + 1), "train_seconds": 1.0} for v in vals]
                    for i, (m, vals) in enumerate(runs.items())})
    text = baselines_summary("D", frame, list(runs), {"at": 0.1, "ce": 0.2}, {"rkd": 0.1, "ce": 0.2}, n_seeds=2)
    assert "Each of the two methods moved the quantity it is trained on." in text
    assert "the highest mean test AUC-PR was reached by **at** (0.790)" in text
    assert "exceeded plain CE (0.710) were:\n  at." in text
    assert "The spread between methods (0.180) is\n  larger than the largest seed-to-seed" in text
    assert "the ranking is not only seed noise" in text and "(lowest mean KL) was **ce**" in text
    moved_not = baselines_summary("D", frame, list(runs), {"at": 0.3, "ce": 0.2}, {"rkd": 0.1, "ce": 0.2}, n_seeds=2)
    assert "not closer to" in moved_not and "did not guarantee matching it" in moved_not


def test_saliency_summary():
    m = np.arange(1, 21, dtype=float).reshape(2, 10)
    baselines = baseline_table({"other_class": m, "zero": m, "mean": m, "noise": m[:, ::-1], "same_class": 0.5 * m})
    precision = pd.DataFrame({"teacher": ["A", "A", "B"], "test accuracy": [0.95, 0.95, 0.7],
                              "map": ["occlusion (TSD)", "|gradient|", "occlusion (TSD)"],
                              "precision": [0.5, 0.9, 0.15]})
    agree = pd.DataFrame({"Spearman vs occlusion": [0.8, 0.5]}, index=["|gradient|", "|integrated gradients|"])
    text = saliency_summary("D", 0, 10, 42, baselines, precision, chance=0.1, agree=agree).split("\n")
    assert text[0].endswith("on D test series 0 the teacher's largest shift came from the window starting at t = 42.")
    assert text[1].startswith("* The replacement matters: the maps of the other baselines correlated with the "
                              "other-class maps with Spearman zero 1.00, mean 1.00, noise -1.00, same_class 1.00")
    assert text[1].endswith("same-class donors moved the teacher less than other-class donors.")
    assert text[2] == ("* Synthetic check, A: test accuracy 0.950, occlusion precision 0.500 against chance 0.10, "
                       "well above chance.")
    assert text[3].startswith("* Synthetic check, B: test accuracy 0.700, occlusion precision 0.150 against chance "
                              "0.10, above chance. With a test accuracy below 0.9")
    assert text[4].startswith("* The most precise map overall was |gradient| of the A (0.900).")
    assert text[4].endswith("0.80 (|gradient|) and 0.50 (|IG|): different methods can tell different stories.")


def test_tsd_summary():
    stats = _stats({"ce": [{"accuracy": 0.8, "saliency_spearman": 0.2}, {"accuracy": 0.82, "saliency_spearman": 0.3}],
                    "kd": [{"accuracy": 0.9, "saliency_spearman": 0.4}, {"accuracy": 0.9, "saliency_spearman": 0.5}],
                    "kd+tsd": [{"accuracy": 0.9, "saliency_spearman": 0.8},
                               {"accuracy": 0.92, "saliency_spearman": 0.8}]}, ["accuracy", "saliency_spearman"])
    rho = {"CE": np.array([0.1, 0.9, 0.2]), "TSD": np.array([0.5, 0.3, 0.6])}
    lines = tsd_summary("D", "p", stats, (True, False), rho, n_seeds=2, students=["CE", "TSD"]).split("\n")
    assert lines[0].endswith("(equal: **True**); the teacher side equals `distribution_shift` (**False**).")
    assert lines[1] == ("- Saliency Spearman with the teacher, KD+TSD vs CE students on D: 0.800 vs 0.250: higher "
                        "than, a gap larger than the seed-to-seed spread.")
    assert "Test accuracy, KD+TSD vs KD: 0.910 vs 0.900: higher than, a gap within the seed-to-seed spread" in lines[3]
    assert lines[4].endswith("than the CE student's on 2 of 3.")
    assert lines[5] == "- This is one dataset under profile `p` with 2 seed(s); Chapter 6 looks across datasets."


def test_archived_note():
    class _Archive:
        def describe(self):
            return "From archive X."

    class _Source:
        archive = _Archive()

        def from_archive(self, configs):
            return [c for c in configs if c.seed > 0]

    configs = [RunConfig(dataset="GunPoint", method="at", seed=s) for s in (0, 3, 2)]
    assert archived_note(_Source(), configs, "p") == ("2 of these 3 runs (the feature baselines' seeds 2, 3) are "
                                                      "not trained by `p`. From archive X.")
    assert archived_note(_Source(), configs[:1], "p") is None
    assert archived_note(object(), configs, "p") is None  # a plain run store: everything is stored
