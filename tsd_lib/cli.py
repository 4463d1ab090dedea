"""The ``tsd`` command line (also ``python -m tsd_lib``)."""

from __future__ import annotations

import argparse
import json
import os
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
    p.add_argument("--epochs", type=int, default=1000, help="epoch cap (early stopping ends a run before it)")
    p.add_argument("--patience", type=int, default=50)
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


SOURCES = {"aeon": "shipped with aeon", "data_dir": "in --data-dir", "cache": "in aeon's download cache"}


def _profile_datasets(args: argparse.Namespace) -> int:
    from tsd_lib.data import dataset_info, is_downloadable
    from tsd_lib.profiles import load_profile

    profile = load_profile(args.profile, data_dir=args.data_dir)
    missing = []
    print(f"profile {profile.name}: {len(profile.datasets)} datasets")
    for name in profile.datasets:
        if name.lower().startswith("synthetic"):
            print(f"  {name:<32} available (generated)")
            continue
        try:
            info = dataset_info(name, data_dir=profile.data_dir)
            print(f"  {name:<32} available, {SOURCES[info['source']]} "
                  f"({info['n_train']} train / {info['n_test']} test)")
        except ValueError:
            missing.append(name)
            how = "downloadable through aeon (needs the network)" if is_downloadable(name) else "unknown to aeon"
            print(f"  {name:<32} MISSING, {how}")
    if missing:
        print(f"\n{len(missing)} missing: {', '.join(missing)}.\nPass --data-dir with a local copy of the "
              "UCR archive (NAME/NAME_TRAIN.tsv or NAME/NAME_TRAIN.ts); with network access, "
              "tsd_lib.data.load_dataset(name, allow_download=True) fetches a set through aeon.")
        return 1
    print("\nall datasets available")
    return 0


def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="run store folder (default $TSD_RUNS or runs/)")


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="smoke, quick, paper, paper-smoke or a YAML path")
    p.add_argument("--data-dir", default=None, help="local copy of the UCR/UEA archive")
    _add_store_arg(p)


def cmd_datasets(args: argparse.Namespace) -> int:
    from tsd_lib.data import available_datasets, dataset_info

    if args.profile:
        return _profile_datasets(args)
    rows = []
    for name in available_datasets(data_dir=args.data_dir):
        try:
            info = dataset_info(name, data_dir=args.data_dir)
        except ValueError as err:
            print(f"{name}: unreadable ({err})", file=sys.stderr)
            continue
        rows.append((name, info))
    header = f"{'dataset':<28}{'train':>7}{'test':>7}{'channels':>10}{'length':>8}{'classes':>9}  source"
    print(header)
    print("-" * len(header))
    for name, info in rows:
        info = {k: ("var" if v is None else v) for k, v in info.items()}
        print(
            f"{name:<28}{info['n_train']:>7}{info['n_test']:>7}{info['n_channels']:>10}"
            f"{info['length']:>8}{info['n_classes']:>9}  {info['source']}"
        )
    print(f"\n{len(rows)} datasets load offline. Others: pass --data-dir with a local archive copy.")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tsd_lib.data import load_dataset
    from tsd_lib.experiment import default_protocol, save_model
    from tsd_lib.metrics import classification_metrics, softmax
    from tsd_lib.models import build_model
    from tsd_lib.train import TrainConfig, fit, predict_logits
    from tsd_lib.utils import atomic_write_json, resolve_device, set_seed, versions

    data = load_dataset(
        args.dataset, length=args.length or None, split_seed=args.split_seed, data_dir=args.data_dir, stretch=False
    )
    set_seed(args.seed)
    model = build_model(args.model, data.n_channels, data.n_classes)
    config = TrainConfig(
        epochs=args.epochs, patience=args.patience, seed=args.seed, device=args.device,
        progress=False if args.quiet else None, desc=f"{args.model} on {data.name}", **default_protocol(args.model),
    )
    start = time.perf_counter()
    history = fit(model, data, config=config)
    wall = time.perf_counter() - start
    proba = softmax(predict_logits(model, data.X_test, device=args.device))
    metrics = classification_metrics(data.y_test, proba)
    record = {
        "dataset": data.name, "model": args.model, "seed": args.seed, "split_seed": args.split_seed,
        "length": data.length, **{f"test_{k}": v for k, v in metrics.items()},
        "epochs_run": history.epochs_run, "best_epoch": history.best_epoch, "stopped_early": history.stopped_early,
        **{f"{k}_used": getattr(config, k) for k in ("lr_schedule", "warmup")}, "wall_seconds": wall,
        "device": str(resolve_device(args.device)), "versions": versions(),
    }
    out = Path(args.out or f"runs/train/{data.name}-{args.model}-seed{args.seed}")
    save_model(out / "model.pt", args.model, model, data)
    atomic_write_json(out / "metrics.json", record)
    atomic_write_json(out / "history.json", history.to_dict())
    print(json.dumps({k: v for k, v in record.items() if k != "versions"}, indent=2))
    print(f"wrote {out / 'metrics.json'}")
    return 0


def _print_record(record: dict) -> None:
    keys = ["dataset", "method", "seed", "accuracy", "auc_pr", "roc_auc", "agreement", "kl_teacher_student",
            "js_teacher_student", "ece", "saliency_spearman", "saliency_cosine", "teacher_accuracy",
            "val_accuracy", "val_auc_pr", "epochs_run", "train_seconds", "key"]
    width = max(map(len, keys))
    for k in keys:
        v = record.get(k)
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def cmd_distill(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunConfig, RunStore, run

    weights = json.loads(args.weights) if args.weights else None
    config = RunConfig(
        dataset=args.dataset, data_dir=args.data_dir, length=args.length or None, split_seed=args.split_seed,
        teacher=args.teacher, teacher_seed=args.teacher_seed, student=args.student, method=args.method,
        weights=weights, tau=args.tau, n_windows=args.n_windows, window=args.window, epochs=args.epochs,
        patience=args.patience, seed=args.seed, device=args.device, saliency_eval_series=args.saliency_eval_series,
    )
    store = RunStore(args.store)
    cached = store.has(config)
    record = run(config, store, progress=False if args.quiet else None)
    print(f"{'loaded from' if cached else 'stored in'} {store.run_dir(config)}")
    _print_record(record)
    return 0


def cmd_grid(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.grid import run_grid
    from tsd_lib.profiles import load_profile

    profile = load_profile(args.profile, data_dir=args.data_dir)
    store = RunStore(args.store)
    configs = profile.configs()
    print(f"profile {profile.name}: {len(configs)} runs, store {store.root}, backend {args.backend}")
    summary = run_grid(configs, store, backend=args.backend, n_jobs=args.n_jobs, scheduler=args.scheduler,
                       teachers=profile.teacher_configs(),
                       retry_failed=args.retry_failed, show_progress=False if args.quiet else None)
    print(summary)
    for err in summary.errors[:10]:
        print(f"  failed: {err.get('dataset', '')} {err.get('key', '')}: {err['error']}")
    if len(summary.errors) > 10:
        print(f"  ... {len(summary.errors) - 10} more; see `tsd status --profile {profile.name}`")
    return 0 if summary.failed == 0 else 1


def cmd_status(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.grid import grid_status
    from tsd_lib.profiles import load_profile

    profile = load_profile(args.profile, data_dir=args.data_dir)
    store = RunStore(args.store)
    table = grid_status(profile.configs(), store)
    print(table.to_string())
    total = table.sum()
    print(f"\ntotal: {total['done']} done, {total['failed']} failed, {total['missing']} missing")
    for failure in store.failures():
        print(f"  {failure.get('key')}: {failure.get('error')}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tsd_lib.experiment import RunStore
    from tsd_lib.profiles import load_profile
    from tsd_lib.report import write_report

    profile = load_profile(args.profile, data_dir=args.data_dir)
    store = RunStore(args.store)
    keys = {c.key() for c in profile.main_configs()}
    records = [r for r in store.records() if r.get("key") in keys]
    out = Path(args.out or f"reports/{profile.name}")
    written = write_report(records, out)
    print(f"{len(records)} runs -> {len(written)} files in {out}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from tsd_lib.book import ChapterFailed, reproduce

    try:
        results = reproduce(args.profile, chapters=args.chapters, data_dir=args.data_dir, store=args.store,
                            n_jobs=args.n_jobs, force=args.force)
    except ChapterFailed as err:
        print(f"tsd reproduce: {err}", file=sys.stderr)
        return 1
    except RuntimeError as err:
        print(f"tsd reproduce: {err}", file=sys.stderr)
        return 1
    for r in results:
        note = "unchanged, not re-executed" if r.cached else f"{r.seconds:6.1f} s"
        print(f"  {r.chapter:<28} {note}  -> {r.output}")
    ran = sum(not r.cached for r in results)
    print(f"{ran} chapters executed, {len(results) - ran} unchanged; "
          "build the site with: jupyter-book build . -W --keep-going")
    return 0


def cmd_site_check(args: argparse.Namespace) -> int:
    html = Path(args.html)
    if not (html / "index.html").exists():
        raise FileNotFoundError(f"--html {html}: no built site there; build it with `make book`")
    try:
        from tsd_lib.site_check import check_site, screenshots
    except ImportError as err:
        raise FileNotFoundError(f"tsd site-check needs the dev extra (pip install -e '.[dev]'): {err}") from None
    reports = check_site(html)
    problems = [p for r in reports for p in r.problems]
    for problem in problems:
        print(problem)
    print(f"{len(reports)} pages checked offline, {len(problems)} problems")
    for path in screenshots(html, Path(args.screenshots)) if args.screenshots else []:
        print(f"wrote {path}")
    return 1 if problems else 0


def cmd_grade(args: argparse.Namespace) -> int:
    from tsd_lib.grading import grade_command

    return grade_command(args.path, assignment=args.assignment, parameters=args.parameter, timeout=args.timeout,
                         memory_mb=args.memory_mb or None, out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsd", description="TSD Book: Temporal Saliency Distillation toolkit."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("datasets", help="list the datasets that load offline, with sizes")
    p.add_argument("--data-dir", default=None, help="also list the sets in this local archive copy")
    p.add_argument("--profile", default=None, help="say which of a profile's datasets are available")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train one model (e.g. a teacher) and write its metrics")
    _add_data_args(p)
    p.add_argument("--model", default="lstm_teacher", help="lstm_teacher, lstm_student, fcn, fcn_small, resnet")
    _add_train_args(p)
    p.add_argument("--out", default=None, help="output folder (default runs/train/DATASET-MODEL-seedN)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="train one student (teacher trained or loaded) and print its record")
    _add_data_args(p)
    p.add_argument("--method", default="kd+tsd", help="'+'-joined losses: ce, kd, fitnets, at, rkd, dkd, dt2w, tsd")
    p.add_argument("--weights", default=None, help='JSON dict overriding term weights, e.g. \'{"tsd": 10}\'')
    p.add_argument("--teacher", default="lstm_teacher")
    p.add_argument("--teacher-seed", type=int, default=0)
    p.add_argument("--student", default="lstm_student")
    p.add_argument("--tau", type=float, default=8.0)
    p.add_argument("--n-windows", type=int, default=50, help="K perturbations per series")
    p.add_argument("--window", type=int, default=10, help="window length L")
    p.add_argument("--saliency-eval-series", type=int, default=None, help="cap on test series for saliency metrics")
    _add_train_args(p)
    _add_store_arg(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("grid", help="run a profile's grid (resumable; local processes or Dask)")
    _add_profile_args(p)
    p.add_argument("--backend", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel workers")
    p.add_argument("--retry-failed", action="store_true", help="rerun runs that failed before")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("status", help="done, failed and missing runs of a profile")
    _add_profile_args(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="tables and figures of a profile's results")
    _add_profile_args(p)
    p.add_argument("--out", default=None, help="output folder (default reports/PROFILE)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="run a profile's grid, then execute the book's chapters with papermill")
    _add_profile_args(p)
    p.add_argument("--chapters", default=None, help="comma-separated chapter numbers, e.g. 2,5 (default: all)")
    p.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel workers for the grid")
    p.add_argument("--force", action="store_true", help="re-execute chapters even when nothing changed")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("site-check", help="walk the built site in headless Chromium with the network blocked")
    p.add_argument("--html", default="_build/html", help="the built site (default _build/html)")
    p.add_argument("--screenshots", default=None, help="also write landing.png and chapter.png into this folder")
    p.set_defaults(func=cmd_site_check)

    p = sub.add_parser("grade", help="grade assignment notebooks (run in a separate, time/memory-limited process)")
    p.add_argument("path", help="a submitted notebook, or a folder of them")
    p.add_argument("--assignment", type=int, default=None, help="assignment number (default: notebook metadata)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="papermill parameter, e.g. -p seed 3 (repeatable)")
    p.add_argument("--timeout", type=float, default=300.0, help="wall-clock limit per notebook, seconds")
    p.add_argument("--memory-mb", type=int, default=4096, help="address-space limit per notebook (0: none)")
    p.add_argument("--out", default="grades", help="folder for reports and executed notebooks")
    p.set_defaults(func=cmd_grade)
    return parser


_POSITIVE = {"epochs": 1, "patience": 1, "n_windows": 1, "window": 1, "saliency_eval_series": 1, "n_jobs": 1,
             "length": 0, "timeout": 0}


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        check_args(args)
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"tsd {args.command}: error: {err}", file=sys.stderr)
        return 2
