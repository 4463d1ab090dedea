"""Speed of a TSD training epoch: teacher bank vs a straightforward per-sample implementation.

Run from the project root: ``python benchmarks/bench_tsd.py``. Writes
``benchmarks/results/bench_tsd.json`` and prints the same JSON object as the last stdout line.

Setting: GunPoint resampled to length 100 (training split after the 20 % validation hold-out),
batch 32, K = 50 windows of L = 10, tau = 8, teacher ``lstm_teacher`` (3x100, random init:
speed does not depend on the weights), student ``lstm_student`` (1x16). Every variant runs
the SAME explicit minimal epoch loop (Adam lr 0.005, weight decay 1e-5, batch 32, shuffled
by a seeded generator), with the same number of torch threads:

* ``kd``: CE + Hinton KD (teacher forward on the clean batch every step);
* ``tsd``: CE + KD + ``TSDTerm`` with the teacher bank (steady state: the bank is built
  before timing; its build time is reported separately as ``teacher_precompute_seconds``);
* ``tsd_fresh``: CE + KD + ``TSDTerm(bank_size=0)`` (vectorised, teacher run every step);
* ``reference``: CE + KD + TSD written the straightforward way, kept here: Python loops over
  the series of the batch and their windows build the perturbed copies one by one, and the
  teacher runs on the perturbed copies at every step.

The headline ratios use that shared loop (the reference cannot run through the library).
``library_path`` times the real thing too: ``tsd_lib.train.fit`` with ``Objective`` for
``ce+kd`` and ``ce+kd+tsd`` (its epoch times include fit's validation pass).

Goals: ``tsd_over_kd_epoch <= 6``, ``reference_over_ours_epoch >= 10``,
``precompute_over_reference_epoch <= 10``. Epoch times are medians over several epochs; the
variants run interleaved (one epoch each per round) after a warm-up, so that load from other
processes hits all of them alike. Process CPU-time ratios are reported too. One torch thread by
default (``TSD_BENCH_THREADS`` overrides it).
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TSD_PROGRESS", "0")

from _report import begin, finish  # noqa: E402  (benchmarks/, first on sys.path)

from tsd_lib.data import load_dataset  # noqa: E402
from tsd_lib.losses.objective import Objective  # noqa: E402
from tsd_lib.losses.tsd import TSDTerm  # noqa: E402
from tsd_lib.models import build_model  # noqa: E402
from tsd_lib.runtime import set_seed  # noqa: E402
from tsd_lib.train import TrainConfig, fit  # noqa: E402

# One thread by default: on a shared 2-core machine, 2 OpenMP threads spin-wait whenever the
# other core is busy and epoch times then vary 5x; one thread gives stable CPU times.
THREADS = int(os.environ.get("TSD_BENCH_THREADS", "1"))
DATASET, LENGTH = "GunPoint", 100
BATCH, K, L, TAU, BANK_SIZE = 32, 50, 10, 8.0, 200
LR, WEIGHT_DECAY = 0.005, 1e-5
EPOCHS = {"kd": 9, "tsd": 9, "tsd_fresh": 3, "reference": 3}  # timed epochs, interleaved round-robin
FIT_EPOCHS = 9  # library path: tsd_lib.train.fit + Objective, first epoch dropped as warm-up
RESULTS = ROOT / "benchmarks" / "results" / "bench_tsd.json"

Step = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def kd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``CE(z_S, y) + tau^2 KL(softmax(z_T/tau) || softmax(z_S/tau))``."""
    kd = F.kl_div(
        F.log_softmax(student_logits / TAU, dim=1),
        F.log_softmax(teacher_logits / TAU, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    return F.cross_entropy(student_logits, y) + TAU * TAU * kd


def reference_tsd(student, teacher, x, y, X_pool, y_pool, zt, zs, rng: random.Random) -> torch.Tensor:
    """TSD loss, the straightforward way: per-series, per-window Python loops; teacher every step."""
    B, _, T = x.shape
    copies = []
    for b in range(B):
        starts = rng.sample(range(T - L + 1), K)
        others = [j for j in range(len(y_pool)) if int(y_pool[j]) != int(y[b])]
        donors = rng.sample(others, K) if len(others) >= K else others + rng.choices(others, k=K - len(others))
        for t, j in zip(starts, donors, strict=True):
            xc = x[b].clone()
            xc[:, t : t + L] = X_pool[j, :, t : t + L]
            copies.append(xc)
    copies = torch.stack(copies)
    with torch.no_grad():
        zt_p = teacher(copies)
    zs_p = student(copies)

    def saliency(z, zp):
        log_p = F.log_softmax(z / TAU, dim=1)[:, None, :]
        log_q = F.log_softmax(zp.view(B, K, -1) / TAU, dim=2)
        s = TAU**2 * log_p.exp() * (log_p - log_q)
        return s / (s[s > 0].mean() + 1e-8)

    return F.smooth_l1_loss(saliency(zs, zs_p), saliency(zt, zt_p))


class Runner:
    """One variant: a student, its optimiser and a step; runs epochs of the shared minimal loop."""

    def __init__(self, name: str, student: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, step: Step):
        self.name, self.student, self.X, self.y, self.step = name, student, X, y, step
        self.opt = torch.optim.Adam(student.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
        self.shuffle = torch.Generator().manual_seed(0)
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def epoch(self, timed: bool = True) -> None:
        self.student.train()
        t0, c0 = time.perf_counter(), time.process_time()
        for idx in torch.randperm(len(self.X), generator=self.shuffle).split(BATCH):
            loss = self.step(self.student, self.X[idx], self.y[idx], idx)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if timed:
            self.wall.append(wall)
            self.cpu.append(cpu)
        print(f"  {self.name:9s} epoch: {wall:7.3f}s wall, {cpu:7.3f}s cpu{'' if timed else ' (warm-up)'}", flush=True)


def library_path(ds, teacher, fresh_student) -> dict:
    """Epoch times of ``tsd_lib.train.fit`` with ``Objective("kd")`` and ``Objective("kd+tsd")``.

    ``fit`` also evaluates the validation split every epoch (included in its epoch seconds);
    the TSD bank is built when ``fit`` moves the objective to the device, before epoch 1.
    """
    out = {}
    for name, weights in (("kd", {"ce": 1, "kd": 1}), ("tsd", {"ce": 1, "kd": 1, "tsd": 1})):
        tsd = {"tsd": {"n_windows": K, "window": L, "bank_size": BANK_SIZE}} if "tsd" in weights else None
        objective = Objective(weights, teacher, ds.X_train, ds.y_train, tau=TAU, settings=tsd)
        config = TrainConfig(
            epochs=FIT_EPOCHS,
            patience=10 * FIT_EPOCHS,
            batch_size=BATCH,
            lr=LR,
            weight_decay=WEIGHT_DECAY,
            device="cpu",
            progress=False,
        )
        history = fit(fresh_student(), ds, objective, config)
        secs = history.column("seconds")[1:]
        out[f"{name}_epoch_s"] = statistics.median(secs)
        out[f"{name}_epoch_seconds"] = [round(t, 4) for t in secs]
        print(f"  fit+Objective {name}: median epoch {out[f'{name}_epoch_s']:.3f}s", flush=True)
        if objective.tsd_term is not None:
            out["teacher_precompute_seconds"] = objective.tsd_term.precompute_seconds
    out["tsd_over_kd_epoch"] = out["tsd_epoch_s"] / out["kd_epoch_s"]
    return out


def main() -> dict:
    t_start, load = begin(THREADS)
    ds = load_dataset(DATASET, length=LENGTH)
    X = torch.as_tensor(ds.X_train, dtype=torch.float32)
    y = torch.as_tensor(ds.y_train, dtype=torch.long)
    set_seed(0)
    teacher = build_model("lstm_teacher", ds.n_channels, ds.n_classes).eval()
    init = build_model("lstm_student", ds.n_channels, ds.n_classes).state_dict()

    def fresh_student():
        s = build_model("lstm_student", ds.n_channels, ds.n_classes)
        s.load_state_dict(init)
        return s

    def kd_step(student, xb, yb, idx):
        zs = student(xb)
        with torch.no_grad():
            zt = teacher(xb)
        return kd_terms(zs, zt, yb)

    def tsd_step_with(term: TSDTerm) -> Step:
        def step(student, xb, yb, idx):
            zs = student(xb)
            with torch.no_grad():
                zt = teacher(xb)
            return kd_terms(zs, zt, yb) + term(student, xb, yb, index=idx, student_logits=zs)

        return step

    rng = random.Random(0)

    def reference_step(student, xb, yb, idx):
        zs = student(xb)
        with torch.no_grad():
            zt = teacher(xb)
        return kd_terms(zs, zt, yb) + reference_tsd(student, teacher, xb, yb, X, y, zt, zs, rng)

    print(f"{DATASET}: {tuple(X.shape)} train series, {ds.n_classes} classes; threads={THREADS}", flush=True)
    banked = TSDTerm(teacher, X, y, n_windows=K, window=L, tau=TAU, bank_size=BANK_SIZE, seed=0)
    banked.to("cpu")  # builds the teacher bank
    precompute = banked.precompute_seconds
    print(f"  teacher bank: {precompute:.2f}s for {len(X)} x {BANK_SIZE} perturbations", flush=True)
    fresh = TSDTerm(teacher, X, y, n_windows=K, window=L, tau=TAU, bank_size=0, seed=0)
    runners = {
        "kd": Runner("kd", fresh_student(), X, y, kd_step),
        "tsd": Runner("tsd", fresh_student(), X, y, tsd_step_with(banked)),
        "tsd_fresh": Runner("tsd_fresh", fresh_student(), X, y, tsd_step_with(fresh)),
        "reference": Runner("reference", fresh_student(), X, y, reference_step),
    }
    # Warm-up (first-call allocations), then rounds that interleave the variants so that load
    # from other processes on a shared machine hits all of them alike.
    runners["kd"].epoch(timed=False)
    runners["tsd"].epoch(timed=False)
    for r in range(max(EPOCHS.values())):
        for name, runner in runners.items():
            if r < EPOCHS[name]:
                runner.epoch()

    lib = library_path(ds, teacher, fresh_student)
    med = {k: statistics.median(v.wall) for k, v in runners.items()}
    cpu = {k: statistics.median(v.cpu) for k, v in runners.items()}
    result = {
        "benchmark": "bench_tsd",
        "dataset": DATASET,
        "length": LENGTH,
        "n_train": len(X),
        "steps_per_epoch": -(-len(X) // BATCH),
        "batch_size": BATCH,
        "n_windows": K,
        "window": L,
        "tau": TAU,
        "bank_size": BANK_SIZE,
        "teacher": "lstm_teacher (3x100, random init)",
        "student": "lstm_student (1x16)",
        "torch_threads": THREADS,
        "epoch_loop": "explicit minimal loop (Adam, batch 32, shuffled), identical for all variants, "
        "variants interleaved epoch by epoch; not tsd_lib.train.fit (which also evaluates validation "
        "every epoch)",
        "timing": "medians of wall-clock epoch times (cpu_time_ratios: the same from process CPU time)",
        "timed_epochs": {k: len(v.wall) for k, v in runners.items()},
        "epoch_seconds": {k: [round(t, 4) for t in v.wall] for k, v in runners.items()},
        "epoch_cpu_seconds": {k: [round(t, 4) for t in v.cpu] for k, v in runners.items()},
        "kd_epoch_s": med["kd"],
        "tsd_epoch_s": med["tsd"],
        "tsd_fresh_epoch_s": med["tsd_fresh"],
        "reference_epoch_s": med["reference"],
        "teacher_precompute_seconds": precompute,
        "tsd_over_kd_epoch": med["tsd"] / med["kd"],
        "reference_over_ours_epoch": med["reference"] / med["tsd"],
        "fresh_over_ours_epoch": med["tsd_fresh"] / med["tsd"],
        "precompute_over_reference_epoch": precompute / med["reference"],
        "cpu_time_ratios": {
            "tsd_over_kd_epoch": cpu["tsd"] / cpu["kd"],
            "reference_over_ours_epoch": cpu["reference"] / cpu["tsd"],
            "fresh_over_ours_epoch": cpu["tsd_fresh"] / cpu["tsd"],
        },
        "library_path": {
            "what": "tsd_lib.train.fit + Objective (ce+kd vs ce+kd+tsd with the bank); epoch seconds "
            "include fit's validation pass",
            **lib,
        },
        "goals": {
            "fit_tsd_over_kd_epoch<=6": lib["tsd_over_kd_epoch"] <= 6,
            "tsd_over_kd_epoch<=6": med["tsd"] / med["kd"] <= 6,
            "reference_over_ours_epoch>=10": med["reference"] / med["tsd"] >= 10,
            "precompute_over_reference_epoch<=10": precompute / med["reference"] <= 10,
        },
    }
    return finish(RESULTS, result, t_start, load)


if __name__ == "__main__":
    main()
