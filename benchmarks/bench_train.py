"""Seconds per training epoch of ``tsd_lib.train.fit`` for CE, KD, TSD and KD+TSD.

Run from the project root: ``python benchmarks/bench_train.py``. Writes
``benchmarks/results/bench_train.json`` and prints the same JSON object as the last stdout line.

Setting: the quick profile's GunPoint pair: GunPoint resampled to length 100 (training split
after the 20 % validation hold-out), teacher ``fcn`` (128-256-128, random init: epoch time does
not depend on the teacher's quality), student ``fcn_small`` (8-16-8), the quick profile's tau, K
windows of length L, teacher bank of 200 perturbations per series, batch 32, one torch thread. Each
variant trains through the library path, ``fit(student, data, Objective(...))``, whose epoch
seconds include the validation pass:

* ``ce``: cross-entropy only;
* ``kd``: CE + Hinton KD, the teacher's logits cached once per training set (``Objective``
  with ``X_pool``);
* ``kd_uncached``: the same without ``X_pool``, i.e. a teacher forward per batch (the old
  behaviour, for reference);
* ``tsd``: CE + TSD with the teacher bank;
* ``kd+tsd``: CE + KD + TSD (KD reads the teacher logits stored in the bank).

One teacher bank is built before timing and shared by the TSD variants (its build time is
``teacher_precompute_seconds``). The variants run in rounds, in a rotating order, each round a
fresh ``fit`` of ``1 + EPOCHS`` epochs per variant whose first epoch (allocations, the logit
cache) is dropped; reported: the median epoch time per variant and the median over rounds of
the per-round ratios to CE. Goals: ``kd_over_ce_epoch <= 1.3`` (with cached logits a KD step
costs a CE step) and ``kdtsd_over_tsd_epoch <= 1.3`` (KD adds nothing to TSD's cost).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TSD_PROGRESS", "0")

from _report import begin, finish  # noqa: E402  (benchmarks/, first on sys.path)

from tsd_lib.data import load_dataset  # noqa: E402
from tsd_lib.losses.objective import Objective  # noqa: E402
from tsd_lib.models import build_model  # noqa: E402
from tsd_lib.profiles import load_profile  # noqa: E402
from tsd_lib.runtime import set_seed  # noqa: E402
from tsd_lib.saliency.perturb import TeacherBank  # noqa: E402
from tsd_lib.train import TrainConfig, fit  # noqa: E402

# One thread by default (see bench_tsd.py: on a shared 2-core machine 2 OpenMP threads spin-wait).
THREADS = int(os.environ.get("TSD_BENCH_THREADS", "1"))
DATASET, LENGTH = "GunPoint", 100
TEACHER, STUDENT = "fcn", "fcn_small"
_QUICK = load_profile("quick").base_config("GunPoint")
BATCH, K, L, TAU, BANK_SIZE = _QUICK.batch_size, _QUICK.n_windows, _QUICK.window, _QUICK.tau, _QUICK.tsd_bank_size
ROUNDS, EPOCHS = 5, 10  # timed epochs per variant: ROUNDS * EPOCHS
VARIANTS = {
    "ce": {"ce": 1.0},
    "kd": {"ce": 1.0, "kd": 1.0},
    "kd_uncached": {"ce": 1.0, "kd": 1.0},
    "tsd": {"ce": 1.0, "tsd": 1.0},
    "kd+tsd": {"ce": 1.0, "kd": 1.0, "tsd": 1.0},
}
RESULTS = ROOT / "benchmarks" / "results" / "bench_train.json"


def epoch_times(name: str, ds, teacher, bank: TeacherBank, init: dict) -> list[float]:
    """Epoch seconds of one fresh ``fit`` of ``1 + EPOCHS`` epochs, the first dropped."""
    student = build_model(STUDENT, ds.n_channels, ds.n_classes)
    student.load_state_dict(init)
    weights = VARIANTS[name]
    pool = (None, None) if name == "kd_uncached" else (ds.X_train, ds.y_train)
    tsd = {"tsd": {"n_windows": K, "window": L, "bank_size": BANK_SIZE}} if "tsd" in weights else None
    objective = Objective(weights, teacher, *pool, tau=TAU, settings=tsd, student=student)
    if objective.tsd_term is not None:
        objective.tsd_term.bank = bank
    config = TrainConfig(epochs=1 + EPOCHS, patience=10 * EPOCHS, batch_size=BATCH, device="cpu", progress=False)
    history = fit(student, ds, objective, config)
    times = history.column("seconds")[1:]
    print(f"  {name:12s} epochs: " + " ".join(f"{t:.3f}" for t in times), flush=True)
    return times


def main() -> dict:
    t_start, load = begin(THREADS)
    ds = load_dataset(DATASET, length=LENGTH)
    set_seed(0)
    teacher = build_model(TEACHER, ds.n_channels, ds.n_classes).eval()
    init = build_model(STUDENT, ds.n_channels, ds.n_classes).state_dict()
    print(f"{DATASET}: {ds.X_train.shape} train series, {ds.n_classes} classes; threads={THREADS}", flush=True)
    bank = TeacherBank(teacher, ds.X_train, ds.y_train, bank_size=BANK_SIZE, window=L, tau=TAU, n_windows=K,
                       device="cpu", show_progress=False)
    print(f"  teacher bank: {bank.precompute_seconds:.2f}s", flush=True)

    names = list(VARIANTS)
    epochs: dict[str, list[float]] = {name: [] for name in names}  # every timed epoch
    rounds: dict[str, list[float]] = {name: [] for name in names}  # each round's median epoch
    for r in range(ROUNDS):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate: drift hits every variant
            times = epoch_times(name, ds, teacher, bank, init)
            epochs[name] += times
            rounds[name].append(statistics.median(times))

    def paired(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rounds[a], rounds[b], strict=True))

    ratio = {name: paired(name, "ce") for name in names if name != "ce"}
    kdtsd_over_tsd = paired("kd+tsd", "tsd")
    result = {
        "benchmark": "bench_train",
        "dataset": DATASET,
        "length": LENGTH,
        "n_train": int(len(ds.y_train)),
        "n_val": int(len(ds.y_val)),
        "steps_per_epoch": -(-len(ds.y_train) // BATCH),
        "batch_size": BATCH,
        "teacher": f"{TEACHER} (random init)",
        "student": STUDENT,
        "tau": TAU,
        "n_windows": K,
        "window": L,
        "bank_size": BANK_SIZE,
        "torch_threads": THREADS,
        "what": "tsd_lib.train.fit + Objective; epoch seconds include fit's validation pass; per variant "
        f"{ROUNDS} rounds (rotating order) of a fresh fit of 1 + {EPOCHS} epochs, the first dropped",
        "timing": "epoch_s: median of all timed epochs; *_over_*_epoch: median over rounds of the ratio of "
        "the rounds' median epochs",
        "epoch_seconds": {k: [round(t, 4) for t in v] for k, v in epochs.items()},
        "epoch_s": {k: statistics.median(v) for k, v in epochs.items()},
        "teacher_precompute_seconds": bank.precompute_seconds,
        "kd_over_ce_epoch": ratio["kd"],
        "kd_uncached_over_ce_epoch": ratio["kd_uncached"],
        "tsd_over_ce_epoch": ratio["tsd"],
        "kdtsd_over_ce_epoch": ratio["kd+tsd"],
        "kdtsd_over_tsd_epoch": kdtsd_over_tsd,
        "goals": {
            "kd_over_ce_epoch<=1.3": ratio["kd"] <= 1.3,
            "kdtsd_over_tsd_epoch<=1.3": kdtsd_over_tsd <= 1.3,
        },
    }
    return finish(RESULTS, result, t_start, load)


if __name__ == "__main__":
    main()
