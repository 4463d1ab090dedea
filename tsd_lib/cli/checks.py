"""Checks of the ``tsd`` options' values, made before any work starts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

_POSITIVE = {"epochs": 1, "patience": 1, "n_windows": 1, "window": 1, "saliency_eval_series": 1, "n_jobs": 1,
             "length": 0, "timeout": 0, "sample": 1, "tolerance": 0}


def check_args(args: argparse.Namespace) -> None:
    """Reject bad option values before any work starts (``ValueError`` with the option's name)."""
    for name, low in _POSITIVE.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be >= {low}, got {value}")
    tau = getattr(args, "tau", None)
    if tau is not None and not tau > 0:
        raise ValueError(f"--tau must be > 0, got {tau}")
    weights = getattr(args, "weights", None)
    if weights:
        try:
            parsed = json.loads(weights)
        except json.JSONDecodeError as err:
            raise ValueError(f"--weights is not valid JSON ({err.msg}): {weights}") from None
        if not isinstance(parsed, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in parsed.values()):
            raise ValueError(f'--weights must be a JSON object of numbers, e.g. \'{{"tsd": 10}}\', got {weights}')
    device = getattr(args, "device", None)
    if device is not None:
        _check_device(device)
    store = getattr(args, "store", None)
    if store and Path(store).exists() and not Path(store).is_dir():
        raise ValueError(f"--store {store} is a file, not a folder")
    if args.command in _WRITES_STORE:
        from tsd_lib.experiment import RunStore

        RunStore(store).check_writable()
    elif args.command == "train":
        from tsd_lib.experiment.store import check_writable

        check_writable(Path(train_out(args)), what="output folder", option="--out")


#: Commands that write to the run store: checked to be writable before any training.
_WRITES_STORE = ("grid", "distill", "reproduce", "archive")


def train_out(args: argparse.Namespace) -> str:
    """``tsd train``'s output folder."""
    return args.out or f"runs/train/{args.dataset}-{args.model}-seed{args.seed}"


def _check_device(device: str) -> None:
    import torch

    if device in ("auto", "cpu"):
        return
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s)")
        return
    if device == "mps" and torch.backends.mps.is_available():
        return
    raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {device!r}")

