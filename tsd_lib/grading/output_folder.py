"""``tsd grade``'s output folder: checked before any grading, written only once every submission ended.

:func:`check_output_folder` refuses a folder that is a file, not writable, has a symbolic link on
its path or holds anything but the grader's files. :func:`publish_reports` writes the reports into a
private staging folder made inside the output folder only when no submission runs any more, removes
whatever else appeared there meanwhile (a forged ``*.results.json``) and moves the reports into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from tsd_lib.grading.reports import GradeReport, write_summary

#: The names of the files :func:`~tsd_lib.grading.grader.grade` writes (anything else in its output
#: folder is not its own).
_SUFFIXES = (".grade.json", ".results.json", ".executed.ipynb")
_SUMMARIES = ("summary.csv", "summary.json")
_STAGING = ".tsd-grade-staging-"


def _grader_file(name: str) -> bool:
    return name.endswith(_SUFFIXES) or name in _SUMMARIES


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _symlink_on(out: Path) -> Path | None:
    """The first symbolic link on the path ``out`` (as given), if any."""
    for part in [*reversed(out.parents), out]:
        if str(part) not in ("", ".", os.sep) and part.is_symlink():
            return part
    return None


def check_output_folder(out: str | os.PathLike) -> dict[str, str]:
    """Check ``tsd grade``'s output folder before any grading; ``{name: sha256}`` of the reports
    the grader wrote there before (kept unless changed while submissions run).

    ``ValueError`` (one line naming ``--out``) when it is a file, not writable, has a symbolic link
    on its path, or holds anything but the grader's files (which
    :func:`~tsd_lib.grading.grader.grade` would remove).
    """
    out = Path(out)
    link = _symlink_on(out)
    if link is not None:
        raise ValueError(f"--out {out}: {link} is a symbolic link; pass a real folder (tsd grade does not write "
                         "through links)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out} is not writable ({existing}: permission denied)")
    if not out.is_dir():
        return {}
    foreign = sorted(e.name for e in out.iterdir() if not e.name.startswith(_STAGING)
                     and (e.is_symlink() or not e.is_file() or not _grader_file(e.name)))
    if foreign:
        raise ValueError(f"--out {out} holds files tsd grade did not write ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); pass a new folder, or one with only its reports")
    return {e.name: _digest(e) for e in out.iterdir() if e.is_file() and _grader_file(e.name)}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def publish_reports(graded: list[tuple[str, GradeReport]], out: Path, previous: dict[str, str], *,
             summary: bool) -> list[str]:
    """Write the reports into a private folder inside ``out`` (made now, when no submission runs any
    more), remove what the grader did not write, move the reports into place; the removed names."""
    link = _symlink_on(out)
    if link == out:  # made a link while submissions ran: replace it by a real folder
        link.unlink()
    elif link is not None:
        raise ValueError(f"--out {out}: {link} became a symbolic link while grading; reports not written")
    if out.exists() and not out.is_dir():
        out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=out))
    try:
        for name, report in graded:
            if report.executed is not None:
                (staging / f"{name}.executed.ipynb").write_bytes(report.executed)
                report.executed_notebook = str(out / f"{name}.executed.ipynb")
            (staging / f"{name}.grade.json").write_text(json.dumps(report.to_dict(), indent=2, default=str))
            (staging / f"{name}.results.json").write_text(json.dumps(report.results_json(), indent=2))
        if summary:
            write_summary([r for _, r in graded], staging)
        written = {p.name for p in staging.iterdir()}
        removed = []
        for entry in sorted(out.iterdir()):
            if entry == staging:
                continue
            kept = (entry.name not in written and entry.is_file() and not entry.is_symlink()
                    and previous.get(entry.name) == _digest(entry))
            if not kept:
                _remove(entry)
                if entry.name not in written and not entry.name.startswith(_STAGING):
                    removed.append(entry.name)
        for name in sorted(written):
            os.replace(staging / name, out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return removed

