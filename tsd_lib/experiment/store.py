"""The run store's files: where runs and teachers live, which are complete, damaged or failed,
per-run locks and the writability check.

Nothing here changes a number (it is not in :data:`tsd_lib.provenance.RESULTS_MODULES`): a fix
to how files are read, locked or reported keeps every stored run.
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tsd_lib.experiment.config import RunConfig
from tsd_lib.experiment.datasets import data_fingerprint
from tsd_lib.paths import PROJECT_ROOT
from tsd_lib.utils import atomic_write_json

T = TypeVar("T")

#: The store's sub-folders.
FOLDERS = ("runs", "teachers", "failures", "locks")


class StoreWarning(UserWarning):
    """A damaged file in the run store, named, and what happens to it."""


class StoreError(ValueError):
    """The store cannot be used as asked (not writable, a damaged file that cannot be recomputed)."""


def default_store() -> Path:
    """``$TSD_RUNS`` if set, else ``runs/`` at the project root (or the working directory)."""
    if os.environ.get("TSD_RUNS"):
        return Path(os.environ["TSD_RUNS"])
    return (PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()) / "runs"


def read_json(path: Path, *, what: str = "record", fix: str = "it is retrained by the next `tsd grid`") -> Any:
    """The JSON object in ``path``; ``None`` when the file is missing, or damaged (truncated, not
    JSON, not an object), with a :class:`StoreWarning` naming the file and ``fix``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = f"not valid JSON: {err}"
    else:
        if isinstance(obj, dict):
            return obj
        reason = f"holds a {type(obj).__name__}, not an object"
    warnings.warn(f"damaged {what} {path} ({reason}); {fix}", StoreWarning, stacklevel=2)
    return None


def load_or_none(path: Path, load: Callable[[Path], T], what: str) -> T | None:
    """``load(path)``; ``None`` when the file is missing, or cannot be loaded (a
    :class:`StoreWarning` names it: the caller recomputes and overwrites it)."""
    if not path.exists():
        return None
    try:
        return load(path)
    except Exception as err:  # noqa: BLE001 - any failure to read a cached file means: recompute it
        warnings.warn(f"damaged {what} {path} ({error_line(err)}); recomputing it", StoreWarning, stacklevel=2)
        return None


def error_line(err: BaseException) -> str:
    """``err`` as one short line (torch's unpickling errors run over many)."""
    lines = str(err).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(err).__name__}: {first[:150]}{'...' if len(first) > 150 or len(lines) > 1 else ''}"


_WARNED: set[tuple] = set()


def same_data(record: dict[str, Any], fingerprint: str, what: str) -> bool:
    """Whether ``record`` was computed on the data whose fingerprint is ``fingerprint``
    (:mod:`tsd_lib.experiment.datasets`); when not, a :class:`StoreWarning` says so (once per
    record and change) and the caller retrains it. A record without a fingerprint predates them:
    it is retrained too."""
    stored = record.get("data_fingerprint")
    if stored == fingerprint:
        return True
    if (what, stored, fingerprint) not in _WARNED:
        _WARNED.add((what, stored, fingerprint))
        why = ("was stored before records carried their data's fingerprint" if stored is None else
               f"was computed on other data (fingerprint {stored}, now {fingerprint}: its files changed, or "
               "a data_dir set replaces the shipped one)")
        warnings.warn(f"{what} {why}: it is not used (running it again retrains it)", StoreWarning, stacklevel=3)
    return False


def same_teacher(record: dict[str, Any], config: RunConfig, what: str) -> bool:
    """Whether a student's ``record`` was distilled from one of ``config``'s candidate teachers (its
    ``teacher_key``). A run's key hashes the student's protocol but not the teacher's, so two configs
    that differ only in the teacher's warm-up or schedule share a folder; when the stored run is the
    other config's, a :class:`StoreWarning` says so (once) and the caller trains this one over it."""
    stored = record.get("teacher_key")
    if stored is None or stored in {t.teacher_key() for t in config.teacher_candidates()}:
        return True
    if (what, stored) not in _WARNED:
        _WARNED.add((what, stored))
        warnings.warn(f"{what} was distilled from another teacher (key {stored}: a config that differs only in the "
                      "teacher's warm-up or schedule shares its folder): it is not used (running it again retrains "
                      "it)", StoreWarning, stacklevel=3)
    return False


def _damage_reason(path: Path) -> str | None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return error_line(err)
    return None if isinstance(obj, dict) else f"holds a {type(obj).__name__}, not an object"


class RunStore:
    """A folder of runs: ``runs/<key>/`` and ``teachers/<key>/``; a run is complete when its
    ``record.json`` exists and is a valid JSON object (written last, atomically). A damaged
    record counts as missing: it is named by :meth:`damaged` and retrained by the next grid."""

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(root) if root is not None else default_store()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def run_dir(self, config: RunConfig) -> Path:
        return self.root / "runs" / config.key()

    def teacher_dir(self, config: RunConfig) -> Path:
        return self.root / "teachers" / config.teacher_key()

    def has(self, config: RunConfig) -> bool:
        """True when the run's record is complete (a damaged record is not) and was computed on
        the data the config loads now (:func:`same_data`; data that cannot be loaded here leaves
        nothing to compare with, and the record stands), distilled from one of the config's teachers
        (:func:`same_teacher`)."""
        what = f"run {config.key()} of {config.dataset}"
        return self._current(self.run_dir(config), config, what, student=True)

    def has_teacher(self, config: RunConfig) -> bool:
        """True when the teacher's record is complete and computed on the data the config loads now
        (its weights are checked when loaded)."""
        return self._current(self.teacher_dir(config), config, f"teacher {config.teacher_key()} of {config.dataset}")

    def _current(self, folder: Path, config: RunConfig, what: str, *, student: bool = False) -> bool:
        path = folder / "record.json"
        if not path.exists():
            return False
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(record, dict) or (student and not same_teacher(record, config, what)):
            return False
        try:
            fingerprint = data_fingerprint(config)
        except ValueError:  # the data cannot be loaded here (DatasetNotAvailableError included): nothing newer
            return True  # to compare with; training it would fail on the data with a clear message
        return same_data(record, fingerprint, what)

    def _load(self, path: Path) -> dict[str, Any]:
        obj = read_json(path, fix="delete it, or rerun `tsd grid` to retrain it")
        if obj is None:
            raise FileNotFoundError(f"no complete record {path}: run `tsd grid` (or `run(config)`) to train it")
        return obj

    def load_record(self, config: RunConfig) -> dict[str, Any]:
        return self._load(self.run_dir(config) / "record.json")

    def load_history(self, config: RunConfig) -> dict[str, Any]:
        return self._load(self.run_dir(config) / "history.json")

    def load_teacher_record(self, config: RunConfig) -> dict[str, Any]:
        return self._load(self.teacher_dir(config) / "record.json")

    def load_teacher_history(self, config: RunConfig) -> dict[str, Any]:
        return self._load(self.teacher_dir(config) / "history.json")

    def failure_path(self, key: str) -> Path:
        return self.root / "failures" / f"{key}.json"

    def record_failure(self, key: str, info: dict[str, Any]) -> None:
        """Keep a failed run's config, error and traceback (``failures/<key>.json``)."""
        atomic_write_json(self.failure_path(key), info)

    def clear_failure(self, key: str) -> None:
        self.failure_path(key).unlink(missing_ok=True)

    def failures(self) -> list[dict[str, Any]]:
        """Every recorded failure (a later success clears its failure). A damaged failure file is
        skipped with a :class:`StoreWarning` naming it (its run counts as not failed)."""
        out = []
        for path in sorted((self.root / "failures").glob("*.json")):
            info = read_json(path, what="failure record", fix="skipped (the run counts as not failed)")
            if info is not None:
                out.append({"key": path.stem, **info})
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every complete run record in the store; each damaged one is named in a
        :class:`StoreWarning` (see :meth:`damaged`), not silently dropped."""
        out = []
        for path in sorted((self.root / "runs").glob("*/record.json")):
            record = read_json(path, fix="it is missing from results until `tsd grid` retrains it")
            if record is not None:
                out.append(record)
        return out

    def current_records(self, configs: list[RunConfig]) -> list[dict[str, Any]]:
        """The records of ``configs`` the store holds for the data they load now (:meth:`has`)."""
        return [self.load_record(c) for c in configs if self.has(c)]

    def damaged(self) -> list[Path]:
        """The run and teacher records that exist but cannot be read (truncated, not JSON)."""
        return [p for folder in ("runs", "teachers") for p in sorted((self.root / folder).glob("*/record.json"))
                if _damage_reason(p) is not None]

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold ``locks/<name>.lock`` exclusively (``fcntl.flock``; waits while another process
        holds it). The OS releases it when its process dies, so a killed run leaves no stale lock."""
        path = self.root / "locks" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def check_writable(self) -> None:
        """Raise :class:`StoreError` (one line naming the folder and the fix) unless runs can be
        written here; called before any training."""
        check_writable(self.root, [self.root / f for f in FOLDERS])


def check_writable(folder: Path, inside: list[Path] | None = None, *, what: str = "run store",
                   option: str = "--store") -> None:
    """Raise :class:`StoreError` unless files can be written in ``folder`` (or, when it does not
    exist yet, in the folder that would hold it) and in the existing folders ``inside``."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(f"{what} {folder}: {existing} is a file, not a folder; pass {option} with a folder")
    for path in [existing, *(p for p in inside or [] if p.is_dir())]:
        if not os.access(path, os.W_OK | os.X_OK):
            raise StoreError(f"{what} {folder} is not writable ({path}: permission denied); "
                             f"fix its permissions or pass {option} with a writable folder")
