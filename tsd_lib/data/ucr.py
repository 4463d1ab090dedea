"""UCR/UEA archives offline first: locating and reading the files, listing and naming the sets.

Where data comes from, in order:

1. ``data_dir`` (a local copy of the archives), in either official layout:
   ``DIR/NAME/NAME_TRAIN.tsv`` + ``NAME_TEST.tsv`` (UCR 2018 download: label first, tab separated)
   or ``DIR/NAME/NAME_TRAIN.ts`` + ``NAME_TEST.ts`` (UEA/aeon ``.ts`` format). Files directly in
   ``DIR`` (``DIR/NAME_TRAIN.ts``) work too.
2. The classification sets shipped inside the installed ``aeon`` package (GunPoint, ...).
3. aeon's download cache (``$AEON_DATA`` or ``~/aeon_data``), if it exists.
4. Only with ``allow_download=True``: aeon's downloader (Zenodo). Connectivity is probed first
   with a short timeout so that an offline machine fails in a few seconds, not minutes.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tsd_lib.data.arrays import MIN_SERIES_LENGTH, NORMALISATIONS, Dataset, build_dataset, check_series_length
from tsd_lib.data.download import ALIASES, DatasetNotAvailableError, archive_name, download, fold_name

# --------------------------------------------------------------------------- locating files


def _aeon_data_root() -> Path | None:
    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return root if root.is_dir() else None


def _aeon_cache_root() -> Path | None:
    root = Path(os.environ.get("AEON_DATA", "~/aeon_data")).expanduser()
    return root if root.is_dir() else None  # never create it


def _is_classification_ts(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                low = line.strip().lower()
                if low.startswith("@data"):
                    return False
                if low.startswith("@classlabel"):
                    return low.split()[1:2] == ["true"]
    except OSError:
        return False
    return False


def _scan_dir(root: Path, *, ts_only: bool = False, classification_only: bool = False) -> dict[str, Path]:
    """Map ``name -> folder`` of every ``NAME_TRAIN.{ts,tsv}`` + ``NAME_TEST.*`` pair under ``root``."""
    found: dict[str, Path] = {}
    exts = (".ts",) if ts_only else (".ts", ".tsv")
    if not root.is_dir():
        return found
    folders = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    for folder in folders:
        if folder == root:  # flat layout: DIR/NAME_TRAIN.ts
            names = [p.name[: -len("_TRAIN" + p.suffix)] for p in root.glob("*_TRAIN.*")]
        else:  # archive layout: DIR/NAME/NAME_TRAIN.ts
            names = [folder.name]
        for name in names:
            for ext in exts:
                train, test = folder / f"{name}_TRAIN{ext}", folder / f"{name}_TEST{ext}"
                if train.is_file() and test.is_file():
                    if classification_only and ext == ".ts" and not _is_classification_ts(train):
                        break
                    found.setdefault(name, folder)
                    break
    return found


@functools.lru_cache(maxsize=8)
def _shipped() -> dict[str, Path]:
    root = _aeon_data_root()
    return _scan_dir(root, ts_only=True, classification_only=True) if root else {}


def _sources(data_dir: str | os.PathLike | None) -> list[tuple[str, dict[str, Path]]]:
    out = []
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        if not d.is_dir():
            raise ValueError(f"data_dir {str(d)!r} is not a directory")
        out.append(("data_dir", _scan_dir(d)))
    out.append(("aeon", _shipped()))
    cache = _aeon_cache_root()
    if cache is not None:
        out.append(("cache", _scan_dir(cache, ts_only=True, classification_only=True)))
    return out


def available_datasets(data_dir: str | os.PathLike | None = None) -> list[str]:
    """Names of the classification sets that load offline: shipped with aeon, in aeon's download
    cache, and in ``data_dir`` (either layout). Sorted case-insensitively."""
    names: set[str] = set()
    for _, found in _sources(data_dir):
        names.update(found)
    return sorted(names, key=str.lower)


def _resolve(name: str, data_dir: str | os.PathLike | None) -> tuple[str, Path, str] | None:
    """``(canonical name, folder, source)`` of the first source holding ``name``, matched loosely.

    ``source`` is ``"data_dir"``, ``"aeon"`` (shipped with the package) or ``"cache"`` (aeon's
    download cache).
    """
    wanted = {fold_name(name)}
    if fold_name(name) in ALIASES:
        wanted.add(fold_name(ALIASES[fold_name(name)]))
    for source, found in _sources(data_dir):
        if name in found:
            return name, found[name], source
        for cand, folder in found.items():
            if fold_name(cand) in wanted:
                return cand, folder, source
    return None


class ShadowedDatasetWarning(UserWarning):
    """A ``data_dir`` set has the name of a set shipped with aeon and is loaded in its place."""


def _warn_if_shadowing(canon: str, folder: Path, source: str) -> None:
    shipped = [n for n in _shipped() if fold_name(n) == fold_name(canon)]
    if source == "data_dir" and shipped:
        warnings.warn(f"{canon}: the files in {folder} are loaded in place of the {shipped[0]} shipped with aeon "
                      "(runs are tied to the data they were trained on, so neither is served for the other)",
                      ShadowedDatasetWarning, stacklevel=3)


def source_stamp(name: str, data_dir: str | os.PathLike | None = None) -> tuple[Any, ...]:
    """Which files :func:`load_dataset` would read for ``name`` (source, folder, canonical name) and
    their sizes and modification times; ``()`` when no offline source holds it. It changes when the
    files change or another source takes their place (a ``data_dir`` set shadowing a shipped one)."""
    if not isinstance(name, str) or not name.strip():
        return ()
    roots = [Path(data_dir).expanduser() if data_dir is not None else None, _aeon_cache_root()]
    hit = _resolve_while(name.strip(), data_dir, tuple(r.stat().st_mtime_ns if r and r.is_dir() else None
                                                       for r in roots))
    if hit is None:
        return ()
    canon, folder, source = hit
    files = sorted(p for p in folder.glob(f"{canon}_T*.ts*") if p.is_file())
    return (source, str(folder), canon, tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=256)
def _resolve_while(name: str, data_dir: str | os.PathLike | None, _roots: tuple) -> tuple[str, Path, str] | None:
    """:func:`_resolve`, again only when a searched folder's modification time changes (a set added or removed)."""
    return _resolve(name, data_dir)


def canonical_dataset_name(name: str, data_dir: str | os.PathLike | None = None) -> str:
    """The official spelling of a known dataset (``"gunpoint"`` -> ``"GunPoint"``), else ``name``.

    Matches like :func:`load_dataset`: case, ``_``, ``-`` and spaces are ignored and UCR-2015
    spellings are accepted (``"50words"`` -> ``"FiftyWords"``). A set available offline (in
    ``data_dir`` first, as loading would pick it) gives its folder's spelling, so
    ``load_dataset(name).name == canonical_dataset_name(name)``; otherwise a UCR/UEA archive
    name gives aeon's spelling. Unknown names (a synthetic set, a typo) come back unchanged.
    Never downloads; raises ``ValueError`` if ``data_dir`` is not a directory.
    """
    if not isinstance(name, str) or not name.strip():
        return name
    hit = _resolve(name.strip(), data_dir)
    if hit is not None:
        return hit[0]
    return archive_name(name.strip()) or name


# --------------------------------------------------------------------------- reading


def _read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X (n, 1, L), labels)`` of a UCR 2018 file: per line a label, then the values, tab separated."""
    try:
        df = pd.read_csv(path, sep="\t", header=None, dtype={0: str})
    except Exception as e:
        raise ValueError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    y = df.pop(0).to_numpy(dtype=str)
    try:
        X = df.to_numpy(dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric values ({e})") from None
    if X.shape[1] == 0 or np.isnan(X).all(axis=1).any():
        _raise_empty_line(path)
    return X[:, None, :], y


def _raise_empty_line(path: Path) -> None:
    """Raise a ``ValueError`` naming the first line of ``path`` that holds no value after its label."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, 1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip() or any(f.strip() and f.strip().lower() != "nan" for f in fields[1:]):
                continue
            if "," in fields[0] or ";" in fields[0]:
                raise ValueError(
                    f"{path}, line {number}: no tab after the label, the values look comma-separated; "
                    "UCR .tsv files hold a label, then the values, separated by tabs"
                )
            raise ValueError(f"{path}, line {number}: a series of length 0 (no values after the label)")
    raise ValueError(f"{path}: a series of length 0 (no values after the label)")


def _read_ts(path: Path) -> tuple[np.ndarray | list[np.ndarray], np.ndarray]:
    from aeon.datasets import load_from_ts_file

    try:
        X, y = load_from_ts_file(str(path))
    except Exception as e:
        raise ValueError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    if isinstance(X, np.ndarray):
        X = X.astype(np.float64, copy=False)
    else:
        X = [np.asarray(x, dtype=np.float64) for x in X]
    return X, np.asarray(y).astype(str)


def _read_pair(folder: str, name: str) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Raw ``(X_train, y_train, X_test, y_test)`` of ``folder/NAME_{TRAIN,TEST}.{ts,tsv}`` (cached;
    the cache key includes the files' modification times). Callers must not modify the result."""
    f = Path(folder)
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(f.glob(f"{name}_T*.ts*")) if p.is_file())
    return _read_pair_cached(folder, name, stamp)


@functools.lru_cache(maxsize=32)
def _read_pair_cached(folder: str, name: str, _stamp: tuple) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    f = Path(folder)
    for ext, reader in ((".ts", _read_ts), (".tsv", _read_tsv)):
        if (f / f"{name}_TRAIN{ext}").is_file() and (f / f"{name}_TEST{ext}").is_file():
            X_tr, y_tr = reader(f / f"{name}_TRAIN{ext}")
            X_te, y_te = reader(f / f"{name}_TEST{ext}")
            return X_tr, y_tr, X_te, y_te
    raise DatasetNotAvailableError(f"{name}: no {name}_TRAIN/_TEST .ts or .tsv files in {folder}")


def _copy(X: Any) -> Any:
    return X.copy() if isinstance(X, np.ndarray) else [x.copy() for x in X]


def _load_raw(name: str, folder: Path, equal_length_needed: bool) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    X_tr, y_tr, X_te, y_te = _read_pair(str(folder), name)
    unequal = not (isinstance(X_tr, np.ndarray) and isinstance(X_te, np.ndarray))
    if unequal and equal_length_needed:
        eq = f"{name}_eq"
        if (folder / f"{eq}_TRAIN.ts").is_file() and (folder / f"{eq}_TEST.ts").is_file():
            X_tr, y_tr, X_te, y_te = _read_pair(str(folder), eq)
        else:
            raise ValueError(f"{name}: series have unequal lengths; pass length=... to resample them")
    return _copy(X_tr), y_tr.copy(), _copy(X_te), y_te.copy()


def _offline_hint(data_dir: str | os.PathLike | None) -> str:
    offline = ", ".join(available_datasets(data_dir))
    return (
        f"Datasets available offline: {offline}. To use another UCR/UEA set, download the archive "
        "and pass data_dir=DIR holding DIR/NAME/NAME_TRAIN.tsv (UCR 2018 layout) or "
        "DIR/NAME/NAME_TRAIN.ts, or pass allow_download=True on a machine with internet access."
    )


# --------------------------------------------------------------------------- public loaders


def load_dataset(
    name: str,
    *,
    length: int | None = None,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    normalise: str | None = "znorm",
    data_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
    stretch: bool = True,
) -> Dataset:
    """Load a UCR/UEA classification set as a :class:`Dataset`.

    Args:
        name: dataset name; case-insensitive, UCR-2015 spellings accepted (``"Gun_Point"``).
        length: resample every series linearly to this many points (the paper uses 100, at
            least :data:`MIN_SERIES_LENGTH`); ``None`` keeps the original length (series must
            then share one length). See ``stretch`` for series shorter than ``length``. Series
            shorter than :data:`MIN_SERIES_LENGTH` are rejected either way.
        val_fraction: share of the official TRAIN split held out, stratified, as validation.
        split_seed: seed of the validation split only (independent of any global seed).
        normalise: ``"znorm"`` (per series and channel), ``"minmax"`` or ``"none"``/``None``.
            Applied after resampling.
        data_dir: folder with a local copy of the archives (see module docstring).
        allow_download: let aeon download sets that are not available offline.
        stretch: with ``length``, also stretch *shorter* series up to ``length`` (``True``, the
            default, kept for backwards compatibility). ``False`` does what the TSD authors do:
            only series longer than ``length`` are resampled down (linear interpolation,
            endpoints aligned); shorter ones (ItalyPowerDemand, 24 points) keep their length.
            A variable-length set whose series straddle ``length`` then fails (unequal lengths).

    Raises:
        DatasetNotAvailableError: the set is not available offline (and cannot be downloaded).
        ValueError: bad arguments or bad data (a malformed file, named with its line; NaN/inf,
            wrong shapes, series that are too short, a single class, ...).
    """
    norm = "none" if normalise is None else str(normalise).lower()
    if norm not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS} or None, got {normalise!r}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if length is not None and int(length) < MIN_SERIES_LENGTH:
        raise ValueError(f"length must be >= {MIN_SERIES_LENGTH} or None, got {length}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    name = name.strip()

    hit = _resolve(name, data_dir)
    if hit is not None:
        canon, folder, source = hit
        _warn_if_shadowing(canon, folder, source)
        X_tr, y_tr, X_te, y_te = _load_raw(canon, folder, equal_length_needed=length is None)
    else:
        canon = archive_name(name) or name
        if not allow_download:
            known = "" if archive_name(name) else " It is not a UCR/UEA archive name either."
            raise DatasetNotAvailableError(
                f"dataset {name!r} is not available offline.{known} {_offline_hint(data_dir)}"
            )
        if archive_name(name) is None:
            raise DatasetNotAvailableError(
                f"dataset {name!r} is neither available offline nor a UCR/UEA archive name aeon can "
                f"download. {_offline_hint(data_dir)}"
            )
        X_tr, y_tr, X_te, y_te = download(canon, data_dir, _offline_hint(data_dir))
        if length is None and not (isinstance(X_tr, np.ndarray) and isinstance(X_te, np.ndarray)):
            raise ValueError(f"{canon}: series have unequal lengths; pass length=... to resample them")

    return build_dataset(canon, X_tr, y_tr, X_te, y_te, length, float(val_fraction), split_seed, norm, stretch)


def dataset_info(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Sizes of an offline set: ``name, n_train, n_test, n_channels, length, n_classes, source``.

    ``length`` is None for variable-length sets; ``source`` says where the files are
    (``"data_dir"``, ``"aeon"`` for a set shipped with aeon, ``"cache"`` for aeon's download
    cache). Raises :class:`DatasetNotAvailableError` when the set is not available offline
    (never downloads), ``ValueError`` when its files cannot be loaded (malformed, series too
    short).
    """
    hit = _resolve(name, data_dir)
    if hit is None:
        raise DatasetNotAvailableError(
            f"dataset {name!r} is not available offline. {_offline_hint(data_dir)}"
        )
    canon, folder, source = hit
    X_tr, y_tr, X_te, y_te = _read_pair(str(folder), canon)
    check_series_length(X_tr, f"{canon} (train)")
    check_series_length(X_te, f"{canon} (test)")

    def shape(X: Any) -> tuple[int, int | None]:
        if isinstance(X, np.ndarray):
            return int(X.shape[1]), int(X.shape[2])
        lengths = {np.shape(x)[-1] for x in X}
        return int(np.shape(X[0])[0]), (lengths.pop() if len(lengths) == 1 else None)

    c_tr, l_tr = shape(X_tr)
    _, l_te = shape(X_te)
    return {
        "name": canon,
        "n_train": len(y_tr),
        "n_test": len(y_te),
        "n_channels": c_tr,
        "length": l_tr if l_tr == l_te else None,
        "n_classes": len(np.unique(y_tr)),
        "source": source,
    }
