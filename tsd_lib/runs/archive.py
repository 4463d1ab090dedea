"""A results archive: finished records committed to the repository, read without the data.

``results/<profile>/`` holds one JSON-lines file per dataset (run and teacher records with their
configs; no model weights), a ``manifest.json`` (profile, code digest, versions, machine, dates,
counts) and a generated ``README.md``. :mod:`tsd_lib.runs.archive_making` trains and writes it from a run
store; :class:`Archive` reads it with the lookups chapters use on a :class:`~tsd_lib.experiment.RunStore`
(``has``, ``load_record``, ``has_teacher``, ``load_teacher_record``), so a chapter shows archived
studies that a CPU build does not retrain. A record is found by its config's fields without the
code digest; :attr:`Archive.stale` says whether results-changing code changed since it was made.

Convergence: a profile with ``extend_to`` continues every student run that the epoch cap ended
(:func:`extension`: the same config with twice the cap; the seed fixes the trajectory, so its
first epochs replay the capped run) until early stopping ends it or the cap would pass
``extend_to``. The archive keeps both records; :meth:`Archive.converged_record` follows the chain.
Teachers too: a run whose candidate teachers include one the cap ended learns from them continued
(:func:`teacher_extension`, :func:`resolve_teachers`), and the archive keeps every teacher of the chain.
Each run's faithfulness (deletion/insertion curves, :mod:`tsd_lib.experiment.faithfulness`) is
measured after training and travels with its entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tsd_lib.experiment import RunConfig, RunStore
from tsd_lib.paths import ARCHIVE_ROOT
from tsd_lib.profiles import Profile, load_profile
from tsd_lib.runs.archive_readme import describe_machine, manifest_machines
from tsd_lib.runs.certification import currency, is_current

MANIFEST = "manifest.json"


def archive_dir(name: str) -> Path:
    """``results/<name>/`` at the project root."""
    return ARCHIVE_ROOT / name


def _signature(fields: dict[str, Any]) -> str:
    """The identity of a config across code versions: its hashed fields without the code digest."""
    return json.dumps({k: v for k, v in fields.items() if k != "code"}, sort_keys=True, default=str)


def run_signature(config: RunConfig) -> str:
    return _signature(config.hashed_fields())


def teacher_signature(config: RunConfig) -> str:
    return _signature(config.teacher_fields())


def extension(config: RunConfig) -> RunConfig:
    """The run continued: ``config`` with twice its epoch cap (same seed, so the same first epochs)."""
    return config.replace(epochs=2 * config.epochs)


def extension_chain(config: RunConfig, has: Callable[[RunConfig], bool],
                    load: Callable[[RunConfig], dict[str, Any]]) -> list[RunConfig]:
    """``config`` and its finished extensions, in order: the chain goes on while a finished
    record was ended by the cap and its extension is finished too."""
    chain = [config]
    while has(chain[-1]) and not load(chain[-1])["stopped_early"] and has(extension(chain[-1])):
        chain.append(extension(chain[-1]))
    return chain


def teacher_extension(config: RunConfig) -> RunConfig:
    """``config`` distilled from its teachers continued: their epoch cap doubled (same seeds, so the same
    first epochs)."""
    return config.replace(teacher_epochs=2 * (config.teacher_epochs or config.epochs))


def teachers_capped(config: RunConfig, has_teacher: Callable[[RunConfig], bool],
                    load_teacher: Callable[[RunConfig], dict[str, Any]]) -> bool:
    """Whether every candidate teacher of ``config`` is finished and the epoch cap ended one of them."""
    candidates = config.teacher_candidates()
    return all(map(has_teacher, candidates)) and any(not load_teacher(t)["stopped_early"] for t in candidates)


def teacher_chain(config: RunConfig, has_teacher: Callable[[RunConfig], bool],
                  load_teacher: Callable[[RunConfig], dict[str, Any]]) -> list[RunConfig]:
    """``config`` and its continuations (:func:`teacher_extension`), in order: the chain goes on while the cap
    ended one of the last config's candidate teachers and every candidate at twice the cap is finished."""
    chain = [config]
    while (teachers_capped(chain[-1], has_teacher, load_teacher)
           and all(map(has_teacher, teacher_extension(chain[-1]).teacher_candidates()))):
        chain.append(teacher_extension(chain[-1]))
    return chain


def resolve_teachers(configs: Iterable[RunConfig], has_teacher: Callable[[RunConfig], bool],
                     load_teacher: Callable[[RunConfig], dict[str, Any]]) -> list[RunConfig]:
    """Each config at the end of its :func:`teacher_chain`: the students a profile with ``extend_to``
    trains learn from teachers that early stopping ended (one chain per set of candidate teachers)."""
    caps: dict[tuple[str, ...], int | None] = {}
    out = []
    for config in configs:
        arm = tuple(t.teacher_key() for t in config.teacher_candidates())
        if arm not in caps:
            last = teacher_chain(config, has_teacher, load_teacher)[-1]
            caps[arm] = last.teacher_epochs if last is not config else None
        out.append(config if caps[arm] is None else config.replace(teacher_epochs=caps[arm]))
    return out


def read_manifest(path: Path) -> dict[str, Any]:
    """The archive's manifest at ``path`` (empty when missing or unreadable)."""
    try:
        return json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _require(folder: Path) -> Path:
    if not (folder / MANIFEST).exists():
        raise FileNotFoundError(f"no results archive at {folder} (no {MANIFEST}); "
                                "make one with `tsd archive --profile NAME`")
    return folder


def files_digest(folder: str | os.PathLike) -> str:
    """A digest of an archive folder's record files, read as bytes (nothing parsed)."""
    _require(Path(folder))
    h = hashlib.sha256()
    for file in sorted(Path(folder).glob("*.jsonl")):
        h.update(file.name.encode() + file.read_bytes())
    return h.hexdigest()


class Archive:
    """A results archive folder, read-only, with :class:`RunStore`'s record lookups."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = _require(Path(path))
        self.manifest = read_manifest(self.path)
        self._runs: dict[str, dict[str, Any]] = {}
        self._teachers: dict[str, dict[str, Any]] = {}
        self._faithfulness: dict[str, dict[str, Any]] = {}
        self.entries: list[dict[str, Any]] = []
        for file in sorted(self.path.glob("*.jsonl")):
            try:
                text = file.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{file}: not an archive file (byte {err.start} is not UTF-8 text)") from None
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self._check_entry(entry)
                    config = RunConfig.from_dict(entry["config"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                    raise ValueError(f"{file}, line {n}: not an archive entry ({err})") from None
                self.entries.append(entry)
                if entry["kind"] == "run":
                    self._runs[run_signature(config)] = entry["record"]
                    if "faithfulness" in entry:
                        self._faithfulness[run_signature(config)] = entry["faithfulness"]
                else:
                    self._teachers[teacher_signature(config)] = entry["record"]

    #: Record fields read as numbers (``None`` allowed: a metric without data).
    _NUMBERS = ("accuracy", "auc_pr", "roc_auc", "agreement", "saliency_spearman", "saliency_cosine",
                "teacher_accuracy", "val_accuracy", "val_auc_pr", "val_loss", "test_accuracy", "test_auc_pr",
                "epochs_run", "best_epoch")

    @classmethod
    def _check_entry(cls, entry: Any) -> None:
        """``ValueError`` naming what an archive line lacks: ``kind`` (run or teacher), ``key``, a
        ``config`` and a ``record`` object whose metrics are numbers."""
        if not isinstance(entry, dict):
            raise ValueError(f"a JSON {type(entry).__name__}, not an object")
        missing = [k for k in ("kind", "key", "config", "record") if k not in entry]
        if missing:
            raise ValueError(f"missing {', '.join(repr(k) for k in missing)}")
        if entry["kind"] not in ("run", "teacher"):
            raise ValueError(f"'kind' must be 'run' or 'teacher', got {entry['kind']!r}")
        for name in ("config", "record"):
            if not isinstance(entry[name], dict):
                raise ValueError(f"{name!r} must be an object, got {type(entry[name]).__name__}")
        record = entry["record"]
        for name in cls._NUMBERS:
            value = record.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"record field {name!r} is {value!r}, not a number")
        if not isinstance(record.get("stopped_early", False), (bool, type(None))):
            raise ValueError(f"record field 'stopped_early' is {record['stopped_early']!r}, not true or false")

    @classmethod
    def load(cls, name_or_path: str | os.PathLike) -> Archive:
        """An archive by profile name (``results/<name>``) or by folder."""
        path = Path(name_or_path)
        return cls(path if path.exists() or path.is_absolute() or len(path.parts) > 1 else archive_dir(str(path)))

    def __repr__(self) -> str:
        return f"Archive({str(self.path)!r}: {len(self._runs)} runs, {len(self._teachers)} teachers)"

    def has(self, config: RunConfig) -> bool:
        return run_signature(config) in self._runs

    def load_record(self, config: RunConfig) -> dict[str, Any]:
        try:
            return self._runs[run_signature(config)]
        except KeyError:
            raise FileNotFoundError(f"run {config.dataset} {config.method} seed {config.seed} is not in the archive "
                                    f"{self.path}; rerun `tsd archive --profile {self.profile}`") from None

    def converged_record(self, config: RunConfig) -> dict[str, Any]:
        """The record of ``config``, or, when the epoch cap ended it, of its last archived
        :func:`extension` (which early stopping ended, unless the chain reached ``extend_to``)."""
        return self.load_record(extension_chain(config, self.has, self.load_record)[-1])

    def faithfulness(self, config: RunConfig) -> dict[str, Any] | None:
        """The run's deletion/insertion areas and curves (:mod:`tsd_lib.experiment.faithfulness`), if archived."""
        return self._faithfulness.get(run_signature(config))

    def has_teacher(self, config: RunConfig) -> bool:
        return teacher_signature(config) in self._teachers

    def load_teacher_record(self, config: RunConfig) -> dict[str, Any]:
        try:
            return self._teachers[teacher_signature(config)]
        except KeyError:
            raise FileNotFoundError(f"teacher {config.dataset} {config.teacher} seed {config.teacher_seed} is not in "
                                    f"the archive {self.path}; rerun `tsd archive --profile {self.profile}`") from None

    def records(self) -> list[dict[str, Any]]:
        """Every archived run record."""
        return list(self._runs.values())

    def teacher_records(self) -> list[dict[str, Any]]:
        return list(self._teachers.values())

    @property
    def profile(self) -> str:
        return self.manifest.get("profile", self.path.name)

    @property
    def codes(self) -> set[str]:
        return {e["record"]["code"] for e in self.entries}

    @property
    def stale(self) -> bool:
        """Whether some record was made by results-changing code other than the current one and not
        certified equal to it (:mod:`tsd_lib.runs.certification`)."""
        return not all(is_current(e["record"], self.manifest) for e in self.entries)

    def current_entries(self) -> list[dict[str, Any]]:
        """The entries the current code would reproduce (its own, or certified)."""
        return [e for e in self.entries if is_current(e["record"], self.manifest)]

    def digest(self) -> str:
        """A digest of the archive's files (a chapter that reads it re-executes when it changes)."""
        return files_digest(self.path)

    def facts(self) -> dict[str, Any]:
        """What the archive holds and which code made it, as plain values for a chapter's ``glue``: its
        ``profile``, ``runs`` and ``teachers``, the ``machine`` and the date it was last ``updated``, and how
        the current code stands to its records (:func:`~tsd_lib.runs.certification.currency`: ``code``,
        ``earlier``, ``own``, ``certified``, ``stale``, ``stale_methods``; the next ``tsd archive`` retrains
        the stale ones)."""
        machine = " and ".join(describe_machine(m, short=True) for m in manifest_machines(self.manifest) or [{}])
        return {"profile": self.profile, "runs": len(self._runs), "teachers": len(self._teachers),
                "machine": machine, "updated": str(self.manifest.get("updated", "an unrecorded date"))[:10],
                **currency((e["record"] for e in self.entries), self.manifest)}


class Records:
    """Records from a run store, else from a results archive: what the current code trained here
    comes first; the archive supplies the runs a CPU build does not train."""

    def __init__(self, store: RunStore, archive: Archive) -> None:
        self.store, self.archive = store, archive

    def __repr__(self) -> str:
        return f"Records({self.store!r}, then {self.archive!r})"

    def has(self, config: RunConfig) -> bool:
        return self.store.has(config) or self.archive.has(config)

    def load_record(self, config: RunConfig) -> dict[str, Any]:
        return self.store.load_record(config) if self.store.has(config) else self.archive.load_record(config)

    def has_teacher(self, config: RunConfig) -> bool:
        return self.store.has_teacher(config) or self.archive.has_teacher(config)

    def load_teacher_record(self, config: RunConfig) -> dict[str, Any]:
        if self.store.has_teacher(config):
            return self.store.load_teacher_record(config)
        return self.archive.load_teacher_record(config)

    def from_archive(self, configs: Iterable[RunConfig]) -> list[RunConfig]:
        """The configs whose records come from the archive (not in the store)."""
        return [c for c in configs if not self.store.has(c) and self.archive.has(c)]


def study_source(profile: Profile, store: RunStore) -> tuple[Profile, RunStore | Records]:
    """Where a profile's studies (teacher seeds, baselines over seeds, ablations) come from: its
    own store, or, for a profile with ``archive: NAME``, the profile ``NAME`` with the store's
    records first and the committed archive ``results/NAME`` for the rest."""
    if not profile.archive:
        return profile, store
    return load_profile(profile.archive, data_dir=profile.data_dir), Records(store, Archive.load(profile.archive))


def sample_entries(archive: Archive, n: int | None = None, *, keys: Iterable[str] = (), seed: int = 0,
                   datasets: Iterable[str] | None = None) -> list[dict]:
    """Archived run entries named by ``keys`` (key prefixes), else ``n`` chosen at random with ``seed``
    (among the runs of ``datasets`` when given)."""
    import random

    wanted = None if datasets is None else set(datasets)
    runs = [e for e in archive.entries if e["kind"] == "run" and (wanted is None or e["config"]["dataset"] in wanted)]
    keys = list(keys)
    if keys:
        chosen = [e for e in runs if any(e["key"].startswith(k) for k in keys)]
        unknown = [k for k in keys if not any(e["key"].startswith(k) for e in runs)]
        if unknown:
            raise ValueError(f"no archived run with key {', '.join(unknown)} in {archive.path}")
        return chosen
    if n is None or n < 1:
        raise ValueError("give --sample N (N >= 1) or --key KEY")
    return random.Random(seed).sample(runs, min(n, len(runs)))
