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
from dataclasses import fields
from typing import Any

from tsd_lib.cli.checks import check_args
from tsd_lib.cli.commands import (
    cmd_archive,
    cmd_claims,
    cmd_datasets,
    cmd_distill,
    cmd_grade,
    cmd_grid,
    cmd_pdf,
    cmd_report,
    cmd_reproduce,
    cmd_site_check,
    cmd_status,
    cmd_train,
    cmd_verify,
)
from tsd_lib.grading.sandbox import MAX_TIMEOUT_S, MIN_MEMORY_MB, REFERENCE_MEMORY_MB
from tsd_lib.paths import PROFILE_DIR
from tsd_lib.settings import ProtocolSettings, TSDSettings, run_field


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every option's default, except where there is none (None, False) or the
    help text already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or action.default is False or action.default == argparse.SUPPRESS \
                or "default" in text:
            return text
        return super()._get_help_string(action)


class _SubParser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def packaged_profiles() -> list[str]:
    """The packaged profiles' names (:func:`tsd_lib.profiles.available_profiles`, read without
    importing torch: ``--help`` stays fast)."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


#: The protocol's defaults (:class:`~tsd_lib.settings.ProtocolSettings`; RunConfig's too).
PROTOCOL = ProtocolSettings()


def _protocol_arg(p: argparse.ArgumentParser, name: str, flag: str | None = None, **overrides: Any) -> None:
    """The option of a :class:`~tsd_lib.settings.ProtocolSettings` field: its default, type and help."""
    f = next(f for f in fields(ProtocolSettings) if f.name == name)
    kwargs = {"default": f.default, "help": f.metadata["help"], **overrides}
    if not isinstance(f.default, str):
        kwargs.setdefault("type", type(f.default))
    p.add_argument(flag or f"--{name.replace('_', '-')}", **kwargs)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="dataset name (see `tsd datasets`)")
    p.add_argument("--data-dir", default=None, help="local copy of the UCR/UEA archive (.tsv or .ts layout)")
    _protocol_arg(p, "length")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the train/validation split")


def _add_train_args(p: argparse.ArgumentParser, epochs: int = PROTOCOL.epochs) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the model's initialisation and batches")
    _protocol_arg(p, "epochs", default=epochs)
    _protocol_arg(p, "patience")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress bar")



def _add_tsd_args(p: argparse.ArgumentParser) -> None:
    """One flag per TSD setting (:class:`~tsd_lib.settings.TSDSettings`): RunConfig's field name
    dashed (``--n-windows``, ``--tsd-bank-size``), the setting's type, choices, default and help."""
    for f in fields(TSDSettings):
        choices = f.metadata["choices"]
        p.add_argument(f"--{run_field(f.name).replace('_', '-')}", type=type(f.default), default=f.default,
                       choices=choices, help=f.metadata["help"] + (" (also KD's and DKD's)" if f.name == "tau" else ""))


def _add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="run store folder (default $TSD_RUNS or runs/)")


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", required=True,
                   help=f"a packaged profile ({', '.join(packaged_profiles())}) or a YAML path")
    p.add_argument("--data-dir", default=None, help="local copy of the UCR/UEA archive")
    _add_store_arg(p)



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tsd", description="TSD Book: Temporal Saliency Distillation toolkit."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_SubParser)

    p = sub.add_parser("datasets", help="list the datasets that load offline, with sizes")
    p.add_argument("--data-dir", default=None, help="also list the sets in this local archive copy (each is "
                                                     "loaded once: sets that fail are listed apart, with why)")
    p.add_argument("--profile", default=None, help="say which of a profile's datasets are available "
                                                    f"(packaged: {', '.join(packaged_profiles())}; or a YAML path)")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("train", help="train one model (e.g. a teacher) and write its metrics")
    _add_data_args(p)
    _protocol_arg(p, "teacher", "--model", help="lstm_teacher, lstm_student, fcn, fcn_small, resnet")
    _add_train_args(p, epochs=PROTOCOL.teacher_epochs)
    _add_store_arg(p)
    p.add_argument("--out", default=None, help="output folder (default STORE/train/DATASET-MODEL-seedN, "
                                               "STORE being --store, else $TSD_RUNS, else runs/)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("distill", help="train one student (teacher trained or loaded) and print its record")
    _add_data_args(p)
    _protocol_arg(p, "method")
    p.add_argument("--weights", default=None, help='JSON object overriding term weights (finite, >= 0), '
                                                   'e.g. \'{"tsd": 10}\' (default: 1 per term)')
    _protocol_arg(p, "teacher")
    p.add_argument("--teacher-seed", type=int, default=0, help="the teacher's seed")
    _protocol_arg(p, "teacher_epochs", help="the teacher's epoch cap (the protocol's; --epochs caps the student only)")
    _protocol_arg(p, "student")
    _add_tsd_args(p)
    p.add_argument("--saliency-eval-series", type=int, default=None,
                   help="cap on test series for saliency metrics (default: all)")
    _add_train_args(p)
    _add_store_arg(p)
    p.set_defaults(func=cmd_distill)

    p = sub.add_parser("grid", help="run a profile's grid (resumable; local processes or Dask)")
    _add_profile_args(p)
    p.add_argument("--backend", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a LocalCluster)")
    p.add_argument("--n-jobs", type=int, default=1, help="parallel workers (at most the cores here, "
                                                         "unless --scheduler names a cluster)")
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
    p.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel workers for the grid (at most the cores here)")
    p.add_argument("--force", action="store_true", help="re-execute chapters even when nothing changed")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("archive", help="run a profile and export its records to a results archive (results/NAME)")
    _add_profile_args(p)
    p.add_argument("--out", default=None, help="archive folder (default results/PROFILE)")
    p.add_argument("--n-jobs", type=int, default=min(2, os.cpu_count() or 1),
                   help="parallel workers for the grid (at most the cores here)")
    p.add_argument("--datasets", default=None,
                   help="comma-separated datasets of the profile to train, in this order (default: all, in the "
                        "profile's order); the archive keeps every dataset's records")
    p.add_argument("--no-remeasure", dest="remeasure", action="store_false",
                   help="train only what the archive lacks; runs whose faithfulness older code measured without a "
                        "current measure are trained again and measured on a later run without this flag")
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
    p.add_argument("--cpu", choices=("auto", "here", "any"), default="auto",
                   help="which runs to sample by the CPU that made them: only that CPU reproduces a record exactly "
                        "(another's math libraries round differently). auto: the datasets made on this CPU alone when "
                        "the manifest names any, else all; here: only those; any: all")
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

    p = sub.add_parser("pdf", help="the whole book as one PDF, printed by headless Chromium from the built site")
    p.add_argument("--html", default="_build/html", help="the built site (default _build/html; `make book`)")
    p.add_argument("--toc", default="_toc.yml", help="the table of contents giving the pages and their order")
    p.add_argument("--out", default="_build/pdf/tsd-book.pdf", help="the PDF to write")
    p.set_defaults(func=cmd_pdf)

    p = sub.add_parser("grade", help="grade assignment notebooks (run in a separate, time/memory-limited process)")
    p.add_argument("path", help="a submitted notebook, or a folder of them")
    p.add_argument("--assignment", type=int, default=None, help="assignment number (default: notebook metadata)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="papermill parameter, e.g. -p seed 3 (repeatable)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help=f"wall-clock limit per notebook, seconds (> 0, at most {MAX_TIMEOUT_S:g}: one day)")
    p.add_argument("--memory-mb", type=int, default=4096,
                   help="memory limit of a notebook, MiB: each of its processes gets this much address space "
                        "(RLIMIT_AS) and all of them together this much resident memory (a watchdog sums the "
                        "RSS of every process the notebook started and stops them above it); at least "
                        f"{MIN_MEMORY_MB}: a reference solution's kernel (importing torch and scipy) needs about "
                        f"{REFERENCE_MEMORY_MB} MiB of address space")
    p.add_argument("--max-notebook-mb", type=float, default=20.0,
                   help="refuse submitted notebooks larger than this (0: no limit)")
    p.add_argument("--out", default="grades",
                   help="folder for reports and executed notebooks: new, or one that holds only tsd grade's "
                        "files (what a submission writes there is removed)")
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
    except Exception as err:  # a user's mistake (or a diverged run) is one line, anything else a traceback
        code = _error_code(err)
        if code is None:
            raise
        print(f"tsd {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return code


#: Errors shown as one line with exit code 2: a bad option, file or folder.
_USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
                PermissionError)


def _error_code(err: BaseException) -> int | None:
    """2 for a user's mistake, 1 for a run that diverged, None for a bug (shown as a traceback)."""
    train = sys.modules.get("tsd_lib.train")
    if train is not None and isinstance(err, train.TrainingDivergedError):
        return 1
    return 2 if isinstance(err, _USER_ERRORS) else None


def _one_line(err: BaseException) -> str:
    train = sys.modules.get("tsd_lib.train")
    text = " ".join(str(err).split()) or type(err).__name__
    if train is not None and isinstance(err, train.TrainingDivergedError):
        return f"training diverged: {text}"
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        return f"{text}: {err.filename}"
    return text


def _one_line_warnings(command: str, default: Callable[..., None]) -> Callable[..., None]:
    """Show warnings meant for users (``UserWarning`` and its kinds: the store's damaged files, a
    profile's duplicates, a library's notes) as one line each: ``tsd COMMAND: warning: ...``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, UserWarning):
            print(f"tsd {command}: warning: {' '.join(str(message).split())}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    return show
