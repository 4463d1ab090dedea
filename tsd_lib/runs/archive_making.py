"""Making a results archive: train a profile, continue the runs its cap ended, export the records.

:func:`make_archive` (``tsd archive``) trains one dataset at a time what the archive at its folder
does not already hold for the current code (:meth:`~tsd_lib.runs.archive.Archive.current_entries`),
measures each run's faithfulness (deletion/insertion curves, :mod:`tsd_lib.experiment.faithfulness`;
an archived run without it, or whose faithfulness older code measured with fewer measures, is trained
again to have a model to measure; so is an archived run distilled from other weights of its teacher than
the archive holds, so that every method on a dataset learns from one teacher) and calls
:func:`export_archive`, which writes the store's finished records into the folder with the entries it
keeps, a ``manifest.json`` and a generated ``README.md``. :func:`write_certificate`
records ``tsd verify --certify``'s outcome in the manifest.

Convergence: a profile with ``extend_to`` continues every student run that the epoch cap ended
(:func:`~tsd_lib.runs.archive.extension`: the same config with twice the cap; the seed fixes the
trajectory, so its first epochs replay the capped run) until early stopping ends it or the cap
would pass ``extend_to`` (:func:`extensions_to_train`). The archive keeps both records. Teachers first: when
the cap ended one of a run's candidate teachers, every candidate is trained again with twice the cap
(:func:`teacher_extensions_to_train`) before any student of that arm trains, and the students learn from the
continued teachers (:func:`~tsd_lib.runs.archive.resolve_teachers`); the archive keeps every teacher of the chain.
A teacher study's teacher the cap ended is continued the same way.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tsd_lib import __version__
from tsd_lib.experiment import RunConfig, RunStore, data_fingerprint
from tsd_lib.experiment.faithfulness import load_faithfulness
from tsd_lib.experiment.store import StoreWarning, same_data
from tsd_lib.profiles import Profile
from tsd_lib.runs.archive import (
    MANIFEST,
    Archive,
    extension,
    extension_chain,
    read_manifest,
    resolve_teachers,
    run_signature,
    teacher_extension,
    teacher_signature,
    teachers_capped,
)
from tsd_lib.runs.archive_readme import dataset_machines, readme, unique
from tsd_lib.runs.grid import GridSummary, measure_faithfulness, run_grid
from tsd_lib.utils import atomic_write_bytes, machine, versions

#: The fields of :func:`tsd_lib.experiment.faithfulness.measure` (without planted truth) that an archived
#: run's faithfulness must hold to count as measured.
FAITHFULNESS_MEASURES = ("areas", "curves", "gradient_agreement")


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def profile_teachers(profile: Profile, configs: list[RunConfig] | None = None) -> list[RunConfig]:
    """Every teacher a profile trains: the candidates of its runs (``configs``, when already expanded) and
    its teacher studies."""
    configs = profile.configs() if configs is None else configs
    teachers = {t.teacher_key(): t for c in configs for t in c.teacher_candidates()}
    teachers.update({t.teacher_key(): t for t in profile.teacher_configs()})
    return list(teachers.values())


def _portable(d: dict[str, Any]) -> dict[str, Any]:
    """A record or config without this machine's paths (``data_dir``: pass ``--data-dir`` to verify)."""
    return {**d, "data_dir": None} if d.get("data_dir") else d


def extensions_to_train(configs: Iterable[RunConfig], store: RunStore | _Known, limit: int | None) -> list[RunConfig]:
    """The next extension of every finished run in ``configs`` whose chain still ends at a cap,
    while the doubled cap stays within ``limit`` (none without a limit)."""
    todo = []
    for config in configs if limit else ():
        last = extension_chain(config, store.has, store.load_record)[-1]
        if store.has(last) and not store.load_record(last)["stopped_early"] and 2 * last.epochs <= limit:
            todo.append(extension(last))
    return todo


def _arms(configs: Iterable[RunConfig]) -> list[RunConfig]:
    """One config per set of candidate teachers among ``configs``."""
    return list({tuple(t.teacher_key() for t in c.teacher_candidates()): c for c in configs}.values())


def teacher_extensions_to_train(configs: Iterable[RunConfig], known: _Known, limit: int | None) -> list[RunConfig]:
    """The candidate teachers, with twice the cap, of every arm among ``configs`` whose last finished candidates
    include one the cap ended, while the doubled cap stays within ``limit`` (none without a limit)."""
    todo = {}
    arms = resolve_teachers(_arms(configs), known.has_teacher, known.load_teacher_record) if limit else []
    for config in arms:
        if teachers_capped(config, known.has_teacher, known.load_teacher_record) \
                and 2 * (config.teacher_epochs or config.epochs) <= limit:
            todo.update({t.teacher_key(): t for t in teacher_extension(config).teacher_candidates()
                         if not known.has_teacher(t)})
    return list(todo.values())


def _plan(profile: Profile, known: _Known) -> tuple[list[RunConfig], list[RunConfig]]:
    """The profile's runs, each distilled from its teachers continued as far as they are finished
    (:func:`~tsd_lib.runs.archive.resolve_teachers`), and every teacher they and the teacher studies use,
    each continuation's included (a study's teacher the cap ended is continued too)."""
    configs = profile.configs()  # expanded once: thousands of configs
    base = [*configs, *profile.teacher_configs()]
    resolved = resolve_teachers(base, known.has_teacher, known.load_teacher_record)
    teachers = {t.teacher_key(): t for t in profile_teachers(profile, configs)}
    for arm, last in {tuple(t.teacher_key() for t in c.teacher_candidates()): (c, r)
                      for c, r in zip(base, resolved, strict=True)}.values():
        while (arm.teacher_epochs or arm.epochs) < (last.teacher_epochs or last.epochs):
            arm = teacher_extension(arm)
            teachers.update({t.teacher_key(): t for t in arm.teacher_candidates()})
    return resolved[:len(configs)], list(teachers.values())


def _possible_extensions(config: RunConfig, limit: int | None) -> list[RunConfig]:
    """Every continuation of ``config`` a profile with ``extend_to`` = ``limit`` may train."""
    out = []
    while limit and 2 * config.epochs <= limit:
        config = extension(config)
        out.append(config)
    return out


def _entry_signature(entry: dict[str, Any]) -> str:
    config = RunConfig.from_dict(entry["config"])
    return run_signature(config) if entry["kind"] == "run" else teacher_signature(config)


def _kept_entries(out: Path, planned: set[str], exported: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries of the archive already at ``out`` that the store does not replace (``exported``: the store's
    entries), among the profile's ``planned`` runs, continuations and teachers (signatures): a session on a
    fresh machine retrains none of them and loses none of them. An entry the profile no longer plans (its
    settings changed), or a run distilled from other weights of its teacher than the archive now holds
    (:func:`_same_teacher`: it is to be retrained), is dropped; git history keeps it."""
    if not (out / MANIFEST).exists():
        return []
    done = {_entry_signature(e) for e in exported}
    kept = [e for e in Archive(out).entries if _entry_signature(e) in planned - done]
    teachers = {_entry_signature(e): e["record"] for e in [*kept, *exported] if e["kind"] == "teacher"}
    return [e for e in kept if e["kind"] == "teacher" or _same_teacher(e, teachers)]


def export_archive(profile: Profile, store: RunStore, out: str | os.PathLike, *, command: str = "") -> dict[str, Any]:
    """Write the profile's finished records in ``store`` to the archive folder ``out``; return the
    manifest. The profile's runs and teachers finished nowhere (store or archive) are counted as
    missing; exporting again adds them."""
    out = Path(out)
    lines: dict[str, list[str]] = defaultdict(list)
    codes, counts = set(), {"run": 0, "extension": 0, "teacher": 0}
    archived = _current_entries(out, profile.data_dir)
    known = _Known(store, archived)  # a chain may start in the archive (older, certified code)
    teachers = {_entry_signature(e) for e in archived if e["kind"] == "teacher"}
    configs, planned_teachers = _plan(profile, known)
    missing = (sum(not known.has(c) for c in configs)
               + sum(not (store.has_teacher(t) or teacher_signature(t) in teachers) for t in planned_teachers))
    chains = [extension_chain(c, known.has, known.load_record) for c in configs]
    runs, extends = [e for chain in chains for e in chain], {e.key(): ch[0].key() for ch in chains for e in ch[1:]}
    kinds = [("run", runs, store.has, store.load_record, RunConfig.key),
             ("teacher", planned_teachers, store.has_teacher, store.load_teacher_record,
              RunConfig.teacher_key)]
    for kind, candidates, has, load, key in kinds:
        for config in candidates:
            if not has(config):
                continue
            record = _portable(load(config))
            codes.add(record["code"])
            entry = {"kind": kind, "key": key(config), "config": _portable(config.to_dict()), "record": record}
            if kind == "run" and key(config) in extends:
                entry["extends"] = extends[key(config)]
                counts["extension"] += 1
            if kind == "run" and (faith := load_faithfulness(config, store)) is not None:
                entry["faithfulness"] = faith
            lines[config.dataset].append(json.dumps(entry, sort_keys=True))
            counts[kind] += 1
    exported = [json.loads(line) for rows in lines.values() for line in rows]
    planned = ({run_signature(c) for c in runs} | {teacher_signature(t) for t in planned_teachers}
               | {run_signature(e) for c in configs for e in _possible_extensions(c, profile.extend_to)})
    fresh, kept = {e["config"]["dataset"] for e in exported}, set()
    for entry in _kept_entries(out, planned, exported):
        kept.add(entry["config"]["dataset"])
        lines[entry["config"]["dataset"]].append(json.dumps(entry, sort_keys=True))
        codes.add(entry["record"]["code"])
        kind = entry["kind"]
        counts[kind] += 1
        counts["extension"] += "extends" in entry
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.jsonl"):
        if old.stem not in lines:
            old.unlink()
    for dataset, rows in lines.items():
        atomic_write_bytes(out / f"{dataset}.jsonl", ("\n".join(sorted(rows)) + "\n").encode())
    previous, here = read_manifest(out), machine()
    planned = Counter(c.dataset for c in configs)
    per_dataset = {}
    for dataset, rows in sorted(lines.items()):
        entries = [json.loads(line) for line in rows]
        per_dataset[dataset] = {
            "runs": sum(e["kind"] == "run" and "extends" not in e for e in entries), "of": planned[dataset],
            "continuations": sum("extends" in e for e in entries),
            "teachers": sum(e["kind"] == "teacher" for e in entries),
            "machines": unique([*(dataset_machines(previous, dataset) if dataset in kept else []),
                                 *([here] if dataset in fresh else [])])}
    manifest = {
        "profile": profile.name, "description": profile.description, "command": command,
        "code": sorted(codes), "tsd_lib": __version__, "versions": versions(), "machine": here,
        "machines": unique([m for d in per_dataset.values() for m in d["machines"]]),
        "created": previous.get("created", _now()), "updated": _now(),
        "runs": counts["run"] - counts["extension"], "extensions": counts["extension"], "teachers": counts["teacher"],
        "missing": missing, "datasets": per_dataset,
        **({"certified": previous["certified"]} if previous.get("certified") else {}),
    }
    atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    atomic_write_bytes(out / "README.md", readme(manifest).encode())
    return manifest


def make_archive(profile: Profile, store: RunStore, out: str | os.PathLike, *, n_jobs: int = 1,
                 command: str = "", show_progress: bool | None = None,
                 datasets: Iterable[str] | None = None, remeasure: bool = True) -> GridSummary:
    """Train the profile one dataset at a time, in the profile's order (put the smallest first; or only
    ``datasets``, in their order), its teachers before its runs, and export the archive after each dataset:
    a stopped archive keeps what finished, and running it again resumes (the store keeps every finished run).
    The export always keeps every dataset of the profile. An archived run whose faithfulness older code
    measured without a measure the current code takes is trained again and measured, unless ``remeasure``
    is false (then only what the archive lacks is trained: coverage first, the remeasuring on a later run)."""
    total = GridSummary()
    configs = profile.configs()
    teachers = profile_teachers(profile)
    order = _dataset_order(profile, [*configs, *teachers], datasets)
    entries = _current_entries(Path(out), profile.data_dir)
    current = {_entry_signature(e) for e in entries}
    known = _Known(store, entries)
    measured = {run_signature(RunConfig.from_dict(e["config"])) for e in entries if _fully_measured(e)}
    for dataset in order:
        needed = [t for t in teachers if t.dataset == dataset and teacher_signature(t) not in current]
        _add(total, run_grid([], store, n_jobs=n_jobs, show_progress=show_progress, teachers=needed))
        planned = [c for c in configs if c.dataset == dataset]
        studied = [t for t in profile.teacher_configs() if t.dataset == dataset]
        tried: set[str] = set()
        while (more := teacher_extensions_to_train([*planned, *studied], known, profile.extend_to)) \
                and not tried >= {t.teacher_key() for t in more}:  # a teacher that failed is not tried again
            tried |= {t.teacher_key() for t in more}
            _add(total, run_grid([], store, n_jobs=n_jobs, show_progress=show_progress, teachers=more))
        planned = resolve_teachers(planned, known.has_teacher, known.load_teacher_record)
        todo = [c for c in planned if run_signature(c) not in current]
        _add(total, run_grid(todo, store, n_jobs=n_jobs, show_progress=show_progress))
        while todo := extensions_to_train(planned, known, profile.extend_to):
            if _add(total, run_grid(todo, store, n_jobs=n_jobs, show_progress=show_progress)).failed:
                break
        final = [extension_chain(c, known.has, known.load_record)[-1] for c in planned]
        unmeasured = [c for c in final if known.has(c) and not store.has(c) and run_signature(c) not in measured]
        if unmeasured and remeasure:  # archived by older (certified) code, or measured by older code: remade
            _add(total, run_grid(unmeasured, store, n_jobs=n_jobs, show_progress=show_progress))
        faith = measure_faithfulness([c for c in final if store.has(c)], store, n_jobs=n_jobs,
                                     show_progress=show_progress)
        total.failed += faith.failed
        total.errors += faith.errors
        export_archive(profile, store, out, command=command)
    return total


def _dataset_order(profile: Profile, configs: list[RunConfig], datasets: Iterable[str] | None) -> list[str]:
    """The profile's datasets in its order, or ``datasets`` in theirs (each must be one of the profile's)."""
    order = list(dict.fromkeys(c.dataset for c in configs))
    if datasets is None:
        return order
    wanted = list(dict.fromkeys(datasets))
    unknown = [d for d in wanted if d not in order]
    if unknown or not wanted:
        raise ValueError(f"{', '.join(unknown) or 'no dataset given'}: not a dataset of profile {profile.name} "
                         f"(its datasets: {', '.join(order)})")
    return wanted


def _fully_measured(entry: dict[str, Any]) -> bool:
    """Whether an archived run's faithfulness holds every measure the current code takes (older code took
    fewer: such a run is trained again and measured)."""
    return all(name in (entry.get("faithfulness") or {}) for name in FAITHFULNESS_MEASURES)


def _add(total: GridSummary, part: GridSummary) -> GridSummary:
    """Add ``part``'s counts and errors to ``total``; return ``part``."""
    for name in ("total", "skipped", "done", "failed", "seconds"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.errors += part.errors
    return part


def _current_entries(out: Path, data_dir: str | None) -> list[dict[str, Any]]:
    """The entries of the archive at ``out`` the current code stands behind, on the data they were made on,
    each run distilled from the weights of the teacher the archive holds (:func:`_same_teacher`)."""
    archived = Archive(out) if (out / MANIFEST).exists() else None
    entries = [e for e in (archived.current_entries() if archived else []) if _same_data(e, data_dir)]
    teachers = {_entry_signature(e): e["record"] for e in entries if e["kind"] == "teacher"}
    kept, other = [], []
    for e in entries:
        (kept if e["kind"] == "teacher" or _same_teacher(e, teachers) else other).append(e)
    for dataset, n in Counter(e["config"]["dataset"] for e in other).items():
        warnings.warn(f"{n} archived runs of {dataset} were distilled from other weights of their teacher than the "
                      "archive's teacher (code certified equal can train other weights elsewhere): they are not used, "
                      "and tsd archive trains them again", StoreWarning, stacklevel=2)
    return kept


def _same_teacher(entry: dict[str, Any], teachers: dict[str, dict[str, Any]]) -> bool:
    """Whether an archived run was distilled from the teacher the archive holds for it (``teachers``: teacher
    records by signature): its record's teacher test accuracy and AUC-PR are the teacher's. Code certified
    equal can still train other weights on another machine; a run distilled from those is retrained, so that
    every method on a dataset learns from one teacher. A run whose teacher is not archived is kept."""
    record = entry["record"]
    config = RunConfig.from_dict(entry["config"])
    chosen = next((t for t in config.teacher_candidates() if t.teacher_seed == record.get("teacher_seed_chosen")),
                  config)
    teacher = teachers.get(teacher_signature(chosen))
    return teacher is None or (record.get("teacher_accuracy"), record.get("teacher_auc_pr")) == (
        teacher["test_accuracy"], teacher["test_auc_pr"])


def _by_signature(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run records among ``entries`` by :func:`~tsd_lib.runs.archive.run_signature` (code-free)."""
    return {run_signature(RunConfig.from_dict(e["config"])): e["record"] for e in entries if e["kind"] == "run"}


def _same_data(entry: dict[str, Any], data_dir: str | None) -> bool:
    """Whether an archived record was computed on the data its config loads here (``data_dir``: the
    profile's); a record of other data is retrained, one whose data cannot be loaded here is kept."""
    config = RunConfig.from_dict({**entry["config"], "data_dir": data_dir})
    try:
        fingerprint = data_fingerprint(config)
    except ValueError:
        return True
    return same_data(entry["record"], fingerprint, f"archived {entry['kind']} {entry['key']} of {config.dataset}")


def write_certificate(archive: Archive, entry: dict[str, Any]) -> dict[str, Any]:
    """Record ``entry`` (:func:`tsd_lib.runs.verify.certify`) in the archive's manifest under its digest."""
    manifest = read_manifest(archive.path)
    entry = {**entry, "date": _now()}
    manifest.setdefault("certified", {})[entry["digest"]] = entry
    atomic_write_bytes(archive.path / MANIFEST, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
    archive.manifest = manifest
    return entry


class _Known:
    """Finished runs and teachers: the store's, then the archive's current ``entries`` (by signature)."""

    def __init__(self, store: RunStore, entries: list[dict[str, Any]]) -> None:
        self.store, self.archived = store, _by_signature(entries)
        self.teachers = {_entry_signature(e): e["record"] for e in entries if e["kind"] == "teacher"}

    def has(self, config: RunConfig) -> bool:
        return self.store.has(config) or run_signature(config) in self.archived

    def load_record(self, config: RunConfig) -> dict[str, Any]:
        return self.store.load_record(config) if self.store.has(config) else self.archived[run_signature(config)]

    def has_teacher(self, config: RunConfig) -> bool:
        return self.store.has_teacher(config) or teacher_signature(config) in self.teachers

    def load_teacher_record(self, config: RunConfig) -> dict[str, Any]:
        if self.store.has_teacher(config):
            return self.store.load_teacher_record(config)
        return self.teachers[teacher_signature(config)]
