"""The ``tsd`` command line (also ``python -m tsd_lib``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset name (see `tsd datasets`)")
    p.add_argument("--data-dir", default=None, help="local copy of the UCR/UEA archive (.tsv or .ts layout)")
    p.add_argument("--length", type=int, default=100, help="resample every series to this length (0: keep)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=500)
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def cmd_datasets(args: argparse.Namespace) -> int:
    from tsd_lib.data import available_datasets, dataset_info

    rows = []
    for name in available_datasets(data_dir=args.data_dir):
        try:
            info = dataset_info(name, data_dir=args.data_dir)
        except ValueError as err:
            print(f"{name}: unreadable ({err})", file=sys.stderr)
            continue
        rows.append((name, info))
    header = f"{'dataset':<28}{'train':>7}{'test':>7}{'channels':>10}{'length':>8}{'classes':>9}"
    print(header)
    print("-" * len(header))
    for name, info in rows:
        info = {k: ("var" if v is None else v) for k, v in info.items()}
        print(
            f"{name:<28}{info['n_train']:>7}{info['n_test']:>7}{info['n_channels']:>10}"
            f"{info['length']:>8}{info['n_classes']:>9}"
        )
    print(f"\n{len(rows)} datasets load offline. Others: pass --data-dir with a local archive copy.")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tsd_lib.data import load_dataset
    from tsd_lib.metrics import classification_metrics, softmax
    from tsd_lib.models import build_model
    from tsd_lib.train import TrainConfig, fit, predict_logits
    from tsd_lib.utils import atomic_torch_save, atomic_write_json, resolve_device, set_seed, versions

    data = load_dataset(
        args.dataset, length=args.length or None, split_seed=args.split_seed, data_dir=args.data_dir
    )
    set_seed(args.seed)
    model = build_model(args.model, data.n_channels, data.n_classes)
    config = TrainConfig(
        epochs=args.epochs, patience=args.patience, seed=args.seed, device=args.device,
        progress=False if args.quiet else None, desc=f"{args.model} on {data.name}",
    )
    start = time.perf_counter()
    history = fit(model, data, config=config)
    wall = time.perf_counter() - start
    proba = softmax(predict_logits(model, data.X_test, device=args.device))
    metrics = classification_metrics(data.y_test, proba)
    record = {
        "dataset": data.name, "model": args.model, "seed": args.seed, "split_seed": args.split_seed,
        "length": data.length, **{f"test_{k}": v for k, v in metrics.items()},
        "epochs_run": history.epochs_run, "best_epoch": history.best_epoch,
        "wall_seconds": wall, "device": str(resolve_device(args.device)), "versions": versions(),
    }
    out = Path(args.out or f"runs/train/{data.name}-{args.model}-seed{args.seed}")
    atomic_torch_save(out / "model.pt", {"model": args.model, "state_dict": model.state_dict(),
                                         "n_channels": data.n_channels, "n_classes": data.n_classes})
    atomic_write_json(out / "metrics.json", record)
    atomic_write_json(out / "history.json", history.to_dict())
    print(json.dumps({k: v for k, v in record.items() if k != "versions"}, indent=2))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsd", description="TSD Book: Temporal Saliency Distillation toolkit."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the datasets that load offline, with sizes")
    p.add_argument("--data-dir", default=None, help="also list the sets in this local archive copy")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train one model (e.g. a teacher) and write its metrics")
    _add_data_args(p)
    p.add_argument("--model", default="lstm_teacher", help="lstm_teacher, lstm_student, fcn, fcn_small, resnet")
    _add_train_args(p)
    p.add_argument("--out", default=None, help="output folder (default runs/train/DATASET-MODEL-seedN)")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"tsd {args.command}: error: {err}", file=sys.stderr)
        return 2
