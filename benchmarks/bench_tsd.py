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

Goals: ``tsd_over_kd_epoch <= 6``, ``reference_over_ours_epoch >= 10``,
``precompute_over_reference_epoch <= 10``. Epoch times are medians over several epochs after
one warm-up epoch.
"""

from __future__ import annotations

import json
import os
import platform
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

from tsd_lib.data import load_dataset  # noqa: E402
from tsd_lib.losses.tsd import TSDTerm  # noqa: E402
from tsd_lib.models import build_model  # noqa: E402
from tsd_lib.utils import atomic_write_json, set_seed  # noqa: E402

THREADS = 2
DATASET, LENGTH = "GunPoint", 100
BATCH, K, L, TAU, BANK_SIZE = 32, 50, 10, 8.0, 200
LR, WEIGHT_DECAY = 0.005, 1e-5
EPOCHS = {"kd": 7, "tsd": 7, "tsd_fresh": 3, "reference": 3}  # timed epochs (after 1 warm-up)
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


def run_epochs(name: str, student, X, y, step: Step, n_timed: int) -> list[float]:
    """One warm-up + ``n_timed`` timed epochs of the shared minimal loop; returns epoch seconds."""
    opt = torch.optim.Adam(student.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    shuffle = torch.Generator().manual_seed(0)
    times = []
    for epoch in range(1 + n_timed):
        student.train()
        t0 = time.perf_counter()
        for idx in torch.randperm(len(X), generator=shuffle).split(BATCH):
            loss = step(student, X[idx], y[idx], idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch:
            times.append(time.perf_counter() - t0)
        print(f"  {name} epoch {epoch}{' (warm-up)' if not epoch else ''}: {time.perf_counter() - t0:.3f}s", flush=True)
    return times


def main() -> dict:
    t_start = time.perf_counter()
    torch.set_num_threads(THREADS)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
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
    epochs: dict[str, list[float]] = {}
    epochs["kd"] = run_epochs("kd", fresh_student(), X, y, kd_step, EPOCHS["kd"])

    banked = TSDTerm(teacher, X, y, n_windows=K, window=L, tau=TAU, bank_size=BANK_SIZE, seed=0)
    banked.to("cpu")  # builds the teacher bank
    precompute = banked.precompute_seconds
    print(f"  teacher bank: {precompute:.2f}s for {len(X)} x {BANK_SIZE} perturbations", flush=True)
    epochs["tsd"] = run_epochs("tsd", fresh_student(), X, y, tsd_step_with(banked), EPOCHS["tsd"])

    fresh = TSDTerm(teacher, X, y, n_windows=K, window=L, tau=TAU, bank_size=0, seed=0)
    epochs["tsd_fresh"] = run_epochs("tsd_fresh", fresh_student(), X, y, tsd_step_with(fresh), EPOCHS["tsd_fresh"])
    epochs["reference"] = run_epochs("reference", fresh_student(), X, y, reference_step, EPOCHS["reference"])

    med = {k: statistics.median(v) for k, v in epochs.items()}
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
        "epoch_loop": "explicit minimal loop (Adam, batch 32, shuffled), identical for all variants; "
        "not tsd_lib.train.fit (which also evaluates validation every epoch)",
        "timed_epochs": {k: len(v) for k, v in epochs.items()},
        "epoch_seconds": {k: [round(t, 4) for t in v] for k, v in epochs.items()},
        "kd_epoch_s": med["kd"],
        "tsd_epoch_s": med["tsd"],
        "tsd_fresh_epoch_s": med["tsd_fresh"],
        "reference_epoch_s": med["reference"],
        "teacher_precompute_seconds": precompute,
        "tsd_over_kd_epoch": med["tsd"] / med["kd"],
        "reference_over_ours_epoch": med["reference"] / med["tsd"],
        "fresh_over_ours_epoch": med["tsd_fresh"] / med["tsd"],
        "precompute_over_reference_epoch": precompute / med["reference"],
        "goals": {
            "tsd_over_kd_epoch<=6": med["tsd"] / med["kd"] <= 6,
            "reference_over_ours_epoch>=10": med["reference"] / med["tsd"] >= 10,
            "precompute_over_reference_epoch<=10": precompute / med["reference"] <= 10,
        },
        "load_average_1min_at_start": load,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "total_seconds": time.perf_counter() - t_start,
    }
    atomic_write_json(RESULTS, result)
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
