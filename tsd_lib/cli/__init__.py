"""The ``tsd`` command line (also ``python -m tsd_lib``): the parser and ``main``.

The commands are in :mod:`tsd_lib.cli.commands` (one ``cmd_*`` per sub-command), the checks of
option values made before any work starts in :mod:`tsd_lib.cli.checks`.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable, Sequence

from tsd_lib.cli.checks import check_args
from tsd_lib.cli.commands import (
    cmd_archive,
    cmd_claims,
    cmd_datasets,
    cmd_distill,
    cmd_grade,
    cmd_grid,
    cmd_report,
    cmd_reproduce,
    cmd_site_check,
    cmd_status,
    cmd_train,
    cmd_verify,
)


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



def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="run store folder (default $TSD_RUNS or runs/)")


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True, help="smoke, quick, paper, paper-smoke or a YAML path")
    p.add_argument("--data-dir", default=None, help="local copy of the UCR/UEA archive")
    _add_store_arg(p)



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

    p = sub.add_parser("archive", help="run a profile and export its records to a results archive (results/NAME)")
    _add_profile_args(p)
    p.add_argument("--out", default=None, help="archive folder (default results/PROFILE)")
    p.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1), help="parallel workers for the grid")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_archive)

    p = sub.add_parser("verify", help="re-run archived configs in a fresh store and compare with the archive")
    p.add_argument("--archive", required=True, help="an archive folder (results/NAME) or profile name")
    p.add_argument("--sample", type=int, default=None, help="re-run N archived runs chosen at random")
    p.add_argument("--key", action="append", default=None, help="re-run this archived run (key prefix; repeatable)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random choice")
    p.add_argument("--tolerance", type=float, default=0.01, help="largest absolute difference per metric")
    p.add_argument("--data-dir", default=None, help="local copy of the UCR/UEA archive")
    p.add_argument("--store", default=None, help="store for the re-runs (default: a temporary folder)")
    p.add_argument("--certify", action="store_true",
                   help="re-run one run per method on 3 datasets (teachers too); when every number reproduces "
                        "exactly, record the current code as certified equal to the archive's in its manifest "
                        "(a method that differs is marked stale: `tsd archive` retrains it)")
    p.add_argument("--datasets", default=None, help="with --certify: comma-separated datasets to sample "
                                                     "(default: 3 at random)")
    p.add_argument("--baseline", default=None, help="with --certify: the code that made the archive, a git "
                                                     "revision or a folder holding its tsd_lib (default: the "
                                                     "newest commit whose results digest is the archive's)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("claims", help="the paper's claims tested across datasets (an archive or a profile's runs)")
    p.add_argument("--archive", default=None, help="an archive folder (results/NAME) or name (default: paper)")
    p.add_argument("--profile", default=None, help="read this profile's runs from the store instead")
    _add_store_arg(p)
    p.add_argument("--json", action="store_true", help="a JSON list, one object per comparison and arm")
    p.set_defaults(func=cmd_claims)

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
    p.add_argument("--max-notebook-mb", type=float, default=20.0,
                   help="refuse submitted notebooks larger than this (0: no limit)")
    p.add_argument("--out", default="grades", help="folder for reports and executed notebooks")
    p.set_defaults(func=cmd_grade)
    return parser



def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            check_args(args)
            return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"tsd {args.command}: error: {err}", file=sys.stderr)
        return 2


def _one_line_warnings(command: str, default: Callable[..., None]) -> Callable[..., None]:
    """Show the store's warnings (damaged files) as one line each: ``tsd COMMAND: warning: ...``."""
    from tsd_lib.experiment import StoreWarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, StoreWarning):
            print(f"tsd {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    return show
