"""Checks of the ``tsd`` options' values, made before any work starts.

Every check raises ``ValueError`` with one line naming the option (``main`` prints it as
``tsd COMMAND: error: ...`` with exit code 2); the few values that are capped instead (``--n-jobs``
above the cores) are changed with a one-line warning.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from dataclasses import fields
from pathlib import Path

from tsd_lib.settings import ProtocolSettings, TSDSettings, normalise, run_field

#: Integer options that are no declared setting, and their lowest value.
_POSITIVE = {"saliency_eval_series": 1, "n_jobs": 1, "sample": 1}
#: Seeds: what Python, NumPy and torch all accept (torch refuses 2**63 and more: "Overflow when
#: unpacking long long").
_SEEDS = ("seed", "teacher_seed", "split_seed")
MAX_SEED = 2**63 - 1
#: Float options: ``(low, low inclusive, high)``; every one must be finite.
_FLOATS = {"tolerance": (0.0, True, math.inf),
           "max_notebook_mb": (0.0, True, math.inf)}


#: Options that are declared settings (the run protocol's and TSD's), by their ``args`` name.
_DECLARED = {**{f.name: f for f in fields(ProtocolSettings)}, **{run_field(f.name): f for f in fields(TSDSettings)}}


class CappedWarning(UserWarning):
    """An option value larger than this machine can use, lowered (``--n-jobs`` above the cores)."""


def check_args(args: argparse.Namespace) -> None:
    """Reject bad option values before any work starts (``ValueError`` with the option's name). The
    options of declared settings (:mod:`tsd_lib.settings`) are checked by their declaration."""
    for option, f in _DECLARED.items():
        value = getattr(args, option, None)
        if value is not None:
            normalise(f, value, f"--{_opt(option)}")
    for name, low in _POSITIVE.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise ValueError(f"--{_opt(name)} must be >= {low}, got {value}")
    for name in _SEEDS:
        value = getattr(args, name, None)
        if value is not None and not 0 <= value <= MAX_SEED:
            raise ValueError(f"--{_opt(name)} must be an integer from 0 to 2**63 - 1, got {value}")
    for name, (low, inclusive, high) in _FLOATS.items():
        value = getattr(args, name, None)
        if value is None:
            continue
        if not math.isfinite(value) or not (value >= low if inclusive else value > low) or not value < high:
            raise ValueError(f"--{_opt(name)} must be {'>=' if inclusive else '>'} {low:g} and finite, got {value}")
    _check_weights(getattr(args, "weights", None))
    device = getattr(args, "device", None)
    if device is not None:
        from tsd_lib.runtime import check_device  # imports torch: only when a command takes --device

        check_device(device, option="--device")
    _cap_n_jobs(args)
    store = getattr(args, "store", None)
    if store and Path(store).exists() and not Path(store).is_dir():
        raise ValueError(f"--store {store} is a file, not a folder")
    if args.command in _WRITES_STORE:
        from tsd_lib.experiment import RunStore

        RunStore(store).check_writable()
    elif args.command == "train":
        from tsd_lib.experiment.store import check_writable

        check_writable(Path(train_out(args)), what="output folder", option="--out")
    if args.command in ("report", "archive") and args.out:
        from tsd_lib.experiment.store import check_writable

        check_writable(Path(args.out), what="output folder", option="--out")
    if args.command == "grade":
        _check_grade(args)
    if args.command == "reproduce" and args.chapters is not None:
        from tsd_lib.book.reproduce import select_chapters

        select_chapters(args.chapters)


#: Commands that write to the run store: checked to be writable before any training.
_WRITES_STORE = ("grid", "distill", "reproduce", "archive")


def _opt(name: str) -> str:
    return name.replace("_", "-")


def train_out(args: argparse.Namespace) -> str:
    """``tsd train``'s output folder: ``--out``, else ``train/DATASET-MODEL-seedN`` in the run store
    (``--store``, else ``$TSD_RUNS``, else ``runs/``)."""
    if args.out:
        return args.out
    from tsd_lib.experiment.store import default_store

    root = Path(args.store) if getattr(args, "store", None) else default_store()
    return str(root / "train" / f"{args.dataset}-{args.model}-seed{args.seed}")


def _check_weights(weights: str | None) -> None:
    """``--weights``: a JSON object of known term names to finite numbers >= 0."""
    if not weights:
        return
    try:
        parsed = json.loads(weights)
    except json.JSONDecodeError as err:
        raise ValueError(f"--weights is not valid JSON ({err.msg}): {weights}") from None
    if not isinstance(parsed, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in parsed.values()):
        raise ValueError(f'--weights must be a JSON object of numbers, e.g. \'{{"tsd": 10}}\', got {weights}')
    from tsd_lib.losses import LOSSES

    unknown = sorted(k for k in parsed if k.strip().lower() not in LOSSES)
    if unknown:
        raise ValueError(f"--weights names unknown loss term(s) {unknown}; terms: {', '.join(sorted(LOSSES))}")
    bad = {k: v for k, v in parsed.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"--weights must be finite numbers >= 0 (0 turns a term off), got {bad}")


def _cap_n_jobs(args: argparse.Namespace) -> None:
    """``--n-jobs`` above the cores here is lowered to them, with a warning (not with a Dask scheduler
    elsewhere: its workers are not on this machine)."""
    n_jobs = getattr(args, "n_jobs", None)
    if n_jobs is None or getattr(args, "scheduler", None):
        return
    from tsd_lib.runs.grid import cores

    if n_jobs > cores():
        warnings.warn(f"--n-jobs {n_jobs} is more than the {cores()} cores here; using {cores()}", CappedWarning,
                      stacklevel=2)
        args.n_jobs = cores()


def _check_grade(args: argparse.Namespace) -> None:
    """``tsd grade``'s limits and output folder, before any notebook runs."""
    from tsd_lib.grading.grader import check_limits
    from tsd_lib.grading.output_folder import check_output_folder
    from tsd_lib.grading.sandbox import MIN_MEMORY_MB, REFERENCE_MEMORY_MB

    if args.memory_mb < MIN_MEMORY_MB:
        raise ValueError(f"--memory-mb must be at least {MIN_MEMORY_MB} (MiB), got {args.memory_mb}: a reference "
                         f"solution's kernel (importing torch and scipy) needs about {REFERENCE_MEMORY_MB} MiB of "
                         "address space, so below that every notebook crashes")
    check_limits(args.timeout, args.memory_mb, args.max_notebook_mb)
    check_output_folder(args.out)


