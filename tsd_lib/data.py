"""Datasets: UCR/UEA loading (offline first), preprocessing, splits and a synthetic benchmark.

Every loader returns a :class:`Dataset` holding ``float32`` arrays shaped ``(n, channels, length)``
and ``int64`` labels in ``0..k-1``.

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
import math
import os
import socket
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "Dataset",
    "DatasetNotAvailableError",
    "available_datasets",
    "dataset_info",
    "encode_labels",
    "is_downloadable",
    "load_dataset",
    "make_synthetic",
    "normalize_series",
    "resample",
    "shorten",
    "stratified_split",
    "validate_arrays",
]

NORMALIZATIONS = ("znorm", "minmax", "none")

#: Host aeon 1.x downloads classification archives from (``_download_all_zenodo_files``).
DOWNLOAD_HOST = "zenodo.org"
PROBE_TIMEOUT_S = 3.0

# UCR-2015 spellings that do not reduce to the 2018 names by case/underscore folding.
_ALIASES = {
    "50words": "FiftyWords",
    "lighting2": "Lightning2",
    "lighting7": "Lightning7",
    "noninvasivefatalecgthorax1": "NonInvasiveFetalECGThorax1",
    "noninvasivefatalecgthorax2": "NonInvasiveFetalECGThorax2",
    "sonyaiborobotsurface": "SonyAIBORobotSurface1",
    "sonyaiborobotsurfaceii": "SonyAIBORobotSurface2",
}


class DatasetNotAvailableError(ValueError):
    """The requested dataset cannot be loaded offline (and was not, or could not be, downloaded)."""


# --------------------------------------------------------------------------- Dataset


@dataclass(repr=False)
class Dataset:
    """A train/validation/test classification set.

    ``X_*`` are ``float32`` arrays ``(n, channels, length)``; ``y_*`` are ``int64`` in ``0..k-1``;
    ``class_names[i]`` is the original label of class ``i``. ``masks`` (synthetic sets only) maps
    ``"train"/"val"/"test"`` to ground-truth saliency masks ``(n, length)``.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    masks: dict[str, np.ndarray] | None = None

    @property
    def n_channels(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def length(self) -> int:
        return int(self.X_train.shape[2])

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(X, y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if which not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {which!r}")
        return getattr(self, f"X_{which}"), getattr(self, f"y_{which}")

    def summary(self) -> dict[str, Any]:
        """Sizes and shapes as a plain dict (JSON friendly)."""
        return {
            "name": self.name,
            "n_train": int(len(self.y_train)),
            "n_val": int(len(self.y_val)),
            "n_test": int(len(self.y_test)),
            "n_channels": self.n_channels,
            "length": self.length,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"Dataset({s['name']!r}, train={s['n_train']}, val={s['n_val']}, test={s['n_test']}, "
            f"channels={s['n_channels']}, length={s['length']}, classes={s['n_classes']})"
        )


# --------------------------------------------------------------------------- array helpers


def validate_arrays(
    X: Any, y: Any = None, name: str = "data", *, allow_2d: bool = False, min_classes: int = 2
) -> tuple[np.ndarray, np.ndarray | None]:
    """Check series (and labels) and return them as ``(float32 (n, C, L) array, 1-D label array)``.

    Raises a ``ValueError`` naming ``name`` for: non-numeric data, a non 3-D ``X`` (2-D is read as
    univariate when ``allow_2d``), empty arrays, NaN/inf values, ``len(y) != len(X)`` and fewer than
    ``min_classes`` distinct labels. Labels are not re-encoded (see :func:`encode_labels`).
    """
    if isinstance(X, list | tuple) and X and any(np.shape(x) != np.shape(X[0]) for x in X):
        raise ValueError(f"{name}: series have unequal shapes; resample them to one length first")
    try:
        Xa = np.asarray(X, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: X is not a numeric array ({e})") from None
    if Xa.ndim == 2 and allow_2d:
        Xa = Xa[:, None, :]
    if Xa.ndim != 3:
        raise ValueError(f"{name}: X must be 3-D (n, channels, length), got shape {Xa.shape}")
    if min(Xa.shape) == 0:
        raise ValueError(f"{name}: X is empty, shape {Xa.shape}")
    finite = np.isfinite(Xa)
    if not finite.all():
        bad = int((~finite.all(axis=(1, 2))).sum())
        raise ValueError(
            f"{name}: X contains NaN or infinite values in {bad} of {len(Xa)} series "
            "(variable-length series padded with NaN are not supported)"
        )
    if y is None:
        return np.ascontiguousarray(Xa), None
    ya = np.asarray(y)
    if ya.ndim != 1:
        raise ValueError(f"{name}: y must be 1-D, got shape {ya.shape}")
    if len(ya) != len(Xa):
        raise ValueError(f"{name}: X has {len(Xa)} series but y has {len(ya)} labels")
    n_cls = len(np.unique(ya))
    if n_cls < min_classes:
        raise ValueError(f"{name}: found {n_cls} class(es); classification needs at least {min_classes}")
    return np.ascontiguousarray(Xa), ya


def _label_key(values: np.ndarray) -> tuple[list[Any], bool]:
    strs = [str(v).strip() for v in values]
    try:
        return [float(s) for s in strs], True
    except ValueError:
        return strs, False


def encode_labels(y_train: Any, *others: Any, name: str = "data") -> tuple[list[np.ndarray], list[str]]:
    """Map labels of any type to ``int64`` ``0..k-1`` using the classes of ``y_train``.

    Classes are sorted numerically when every label parses as a number, else as strings. Returns
    ``([y_train, *others] encoded, class_names)``; a label in ``others`` unseen in ``y_train`` is a
    ``ValueError``.
    """
    arrays = [np.asarray(y_train).ravel(), *(np.asarray(o).ravel() for o in others)]
    keys = [_label_key(a) for a in arrays]
    numeric = all(k[1] for k in keys)
    if not numeric:  # fall back to string keys everywhere
        keys = [([str(v).strip() for v in a], False) for a in arrays]
    train_keys = keys[0][0]
    names: dict[Any, str] = {}
    for k, v in zip(train_keys, arrays[0], strict=True):
        names.setdefault(k, str(v).strip())
    classes = sorted(names)
    index = {k: i for i, k in enumerate(classes)}
    encoded = []
    for which, (ks, _) in enumerate(keys):
        unseen = sorted({str(k) for k in ks if k not in index})
        if unseen:
            raise ValueError(
                f"{name}: labels {unseen[:5]} of split {which} do not occur in the training split"
            )
        encoded.append(np.fromiter((index[k] for k in ks), dtype=np.int64, count=len(ks)))
    return encoded, [names[k] for k in classes]


def resample(X: np.ndarray | list[np.ndarray], length: int) -> np.ndarray:
    """Linearly resample every series (per channel) to ``length`` points over a [0, 1] grid.

    ``X`` is ``(n, C, L)`` or a list of ``(C, L_i)`` arrays (unequal lengths). Returns ``float32``.
    """
    if int(length) < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    length = int(length)
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return _resample_equal(X, length)
    return np.stack([_resample_equal(np.asarray(x, dtype=np.float64)[None], length)[0] for x in X])


def _resample_equal(X: np.ndarray, length: int) -> np.ndarray:
    old = X.shape[-1]
    if old == length:
        return X.astype(np.float32, copy=True)
    if old == 1:
        return np.repeat(X, length, axis=-1).astype(np.float32)
    # np.interp on a [0, 1] grid, vectorised: positions in old-index units.
    pos = np.linspace(0.0, 1.0, length) * (old - 1)
    lo = np.clip(np.floor(pos).astype(np.int64), 0, old - 2)
    w = pos - lo
    Xd = X.astype(np.float64, copy=False)
    out = Xd[..., lo] * (1.0 - w) + Xd[..., lo + 1] * w
    return out.astype(np.float32)


def shorten(X: np.ndarray | list[np.ndarray], length: int) -> np.ndarray:
    """Resample only the series longer than ``length`` down to it (:func:`resample`); keep the others.

    The TSD authors' preprocessing: series longer than 100 points are linearly interpolated to
    100 (endpoints aligned), shorter ones are not stretched. ``X`` is ``(n, C, L)`` or a list of
    ``(C, L_i)`` arrays. Returns ``float32``; raises ``ValueError`` if the kept series are not
    all of one length.
    """
    if int(length) < 2:
        raise ValueError(f"length must be >= 2, got {length}")
    length = int(length)
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return _resample_equal(X, length) if X.shape[-1] > length else X.astype(np.float32)
    out = [np.asarray(x, dtype=np.float64) for x in X]
    out = [_resample_equal(x[None], length)[0] if x.shape[-1] > length else x.astype(np.float32) for x in out]
    lengths = sorted({x.shape[-1] for x in out})
    if len(lengths) > 1:
        raise ValueError(
            f"series shorter than length={length} keep their own lengths ({lengths[0]}..{lengths[-1]}) without "
            "stretching; pass stretch=True to resample every series to one length"
        )
    return np.stack(out)


def normalize_series(X: np.ndarray, method: str | None = "znorm") -> np.ndarray:
    """Normalise each series and channel: ``"znorm"`` (mean 0, std 1), ``"minmax"`` ([0, 1]) or
    ``"none"``/``None``. Constant series map to 0 (no division by zero)."""
    method = "none" if method is None else str(method).lower()
    if method not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS} or None, got {method!r}")
    X = np.asarray(X, dtype=np.float32)
    if method == "none":
        return X.copy()
    Xd = X.astype(np.float64)
    if method == "znorm":
        mu = Xd.mean(axis=-1, keepdims=True)
        sd = Xd.std(axis=-1, keepdims=True)
        out = (Xd - mu) / np.where(sd > 1e-8, sd, 1.0)
    else:
        lo = Xd.min(axis=-1, keepdims=True)
        rng = Xd.max(axis=-1, keepdims=True) - lo
        out = (Xd - lo) / np.where(rng > 1e-8, rng, 1.0)
    return out.astype(np.float32)


def stratified_split(y: np.ndarray, val_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train_idx, val_idx)`` of a stratified split of ``y``, fixed by ``seed`` alone.

    Uses sklearn's ``train_test_split(stratify=y)``; when a class is too small for that, falls back
    to a per-class split that keeps at least one sample of each class in train (with a warning).
    """
    y = np.asarray(y)
    n = len(y)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0 or n == 0:
        return np.arange(n), np.arange(0)
    classes, counts = np.unique(y, return_counts=True)
    n_val = math.ceil(round(val_fraction * n, 6))  # round: 0.1 * 30 must give 3, not 4
    if counts.min() >= 2 and len(classes) <= n_val <= n - len(classes):
        from sklearn.model_selection import train_test_split

        tr, va = train_test_split(np.arange(n), test_size=n_val, stratify=y, random_state=seed)
        return np.sort(tr), np.sort(va)
    warnings.warn(
        f"too few samples per class for a stratified split with val_fraction={val_fraction} "
        f"(class counts {counts.tolist()}); using a per-class split that keeps >= 1 train sample per class",
        stacklevel=2,
    )
    rng = np.random.default_rng(seed)
    tr_parts, va_parts = [], []
    for c, cnt in zip(classes, counts, strict=True):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = min(round(val_fraction * cnt), cnt - 1)
        va_parts.append(idx[:k])
        tr_parts.append(idx[k:])
    return np.sort(np.concatenate(tr_parts)), np.sort(np.concatenate(va_parts)).astype(np.int64)


# --------------------------------------------------------------------------- locating files


def _fold(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch not in "_- ")


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
    wanted = {_fold(name)}
    if _fold(name) in _ALIASES:
        wanted.add(_fold(_ALIASES[_fold(name)]))
    for source, found in _sources(data_dir):
        if name in found:
            return name, found[name], source
        for cand, folder in found.items():
            if _fold(cand) in wanted:
                return cand, folder, source
    return None


def _archive_name(name: str) -> str | None:
    """The spelling aeon's downloader knows for ``name``, or None."""
    try:
        from aeon.datasets.tsc_datasets import tsc_zenodo
    except Exception:  # pragma: no cover - aeon layout changed
        return None
    folded = _ALIASES.get(_fold(name), name)
    for cand in tsc_zenodo:
        if _fold(cand) == _fold(folded):
            return cand
    return None


def is_downloadable(name: str) -> bool:
    """True when ``name`` is a UCR/UEA archive set that aeon can download (the network is not checked)."""
    return _archive_name(name) is not None


# --------------------------------------------------------------------------- reading


def _read_tsv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        df = pd.read_csv(path, sep="\t", header=None, dtype={0: str})
    except Exception as e:
        raise ValueError(f"cannot read {path}: {type(e).__name__}: {e}") from None
    y = df.pop(0).to_numpy(dtype=str)
    try:
        X = df.to_numpy(dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: non-numeric values ({e})") from None
    return X[:, None, :], y


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


def _probe(host: str = DOWNLOAD_HOST, port: int = 443, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``host`` opens within ``timeout`` s (DNS included)."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=attempt, daemon=True)
    t.start()
    t.join(timeout)  # DNS lookups ignore socket timeouts; the thread bounds the wait
    return bool(result and result[0])


def _download(name: str, data_dir: str | os.PathLike | None) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Download ``name`` with aeon (into ``data_dir`` or aeon's cache) and return raw arrays."""
    if not _probe():
        raise DatasetNotAvailableError(
            f"no network: cannot reach {DOWNLOAD_HOST} to download {name!r}. {_offline_hint(data_dir)}"
        )
    from aeon.datasets import load_classification

    extract = None if data_dir is None else str(data_dir)
    try:
        X_tr, y_tr = load_classification(name, split="train", extract_path=extract)
        X_te, y_te = load_classification(name, split="test", extract_path=extract)
    except Exception as e:
        raise DatasetNotAvailableError(
            f"downloading {name!r} failed ({type(e).__name__}: {e}). {_offline_hint(data_dir)}"
        ) from e

    def conv(X: Any) -> Any:
        return X.astype(np.float64) if isinstance(X, np.ndarray) else [np.asarray(x, float) for x in X]

    return conv(X_tr), np.asarray(y_tr).astype(str), conv(X_te), np.asarray(y_te).astype(str)


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
    normalize: str | None = "znorm",
    data_dir: str | os.PathLike | None = None,
    allow_download: bool = False,
    stretch: bool = True,
) -> Dataset:
    """Load a UCR/UEA classification set as a :class:`Dataset`.

    Args:
        name: dataset name; case-insensitive, UCR-2015 spellings accepted (``"Gun_Point"``).
        length: resample every series linearly to this many points (the paper uses 100);
            ``None`` keeps the original length (series must then share one length). See
            ``stretch`` for series shorter than ``length``.
        val_fraction: share of the official TRAIN split held out, stratified, as validation.
        split_seed: seed of the validation split only (independent of any global seed).
        normalize: ``"znorm"`` (per series and channel), ``"minmax"`` or ``"none"``/``None``.
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
        ValueError: bad arguments or bad data (NaN/inf, wrong shapes, a single class, ...).
    """
    norm = "none" if normalize is None else str(normalize).lower()
    if norm not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS} or None, got {normalize!r}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if length is not None and int(length) < 2:
        raise ValueError(f"length must be >= 2 or None, got {length}")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    name = name.strip()

    hit = _resolve(name, data_dir)
    if hit is not None:
        canon, folder, _ = hit
        X_tr, y_tr, X_te, y_te = _load_raw(canon, folder, equal_length_needed=length is None)
    else:
        canon = _archive_name(name) or name
        if not allow_download:
            known = "" if _archive_name(name) else " It is not a UCR/UEA archive name either."
            raise DatasetNotAvailableError(
                f"dataset {name!r} is not available offline.{known} {_offline_hint(data_dir)}"
            )
        if _archive_name(name) is None:
            raise DatasetNotAvailableError(
                f"dataset {name!r} is neither available offline nor a UCR/UEA archive name aeon can "
                f"download. {_offline_hint(data_dir)}"
            )
        X_tr, y_tr, X_te, y_te = _download(canon, data_dir)
        if length is None and not (isinstance(X_tr, np.ndarray) and isinstance(X_te, np.ndarray)):
            raise ValueError(f"{canon}: series have unequal lengths; pass length=... to resample them")

    return _build(canon, X_tr, y_tr, X_te, y_te, length, float(val_fraction), split_seed, norm, stretch)


def _build(
    name: str,
    X_tr: Any,
    y_tr: np.ndarray,
    X_te: Any,
    y_te: np.ndarray,
    length: int | None,
    val_fraction: float,
    split_seed: int,
    norm: str,
    stretch: bool = True,
) -> Dataset:
    for part, X in (("train", X_tr), ("test", X_te)):
        if isinstance(X, np.ndarray) and X.ndim != 3:
            raise ValueError(f"{name} ({part}): X must be 3-D (n, channels, length), got shape {X.shape}")
        if not isinstance(X, np.ndarray) and any(np.ndim(x) != 2 for x in X):
            raise ValueError(f"{name} ({part}): every series must be 2-D (channels, length)")
        if any(not np.isfinite(np.asarray(x)).all() for x in (X if not isinstance(X, np.ndarray) else [X])):
            raise ValueError(
                f"{name} ({part}): X contains NaN or infinite values "
                "(missing values or NaN-padded variable-length series are not supported)"
            )
    if length is not None:
        fit = resample if stretch else shorten
        X_tr, X_te = fit(X_tr, int(length)), fit(X_te, int(length))
    X_tr, y_tr_raw = validate_arrays(X_tr, y_tr, f"{name} (train)")
    X_te, y_te_raw = validate_arrays(X_te, y_te, f"{name} (test)", min_classes=1)
    if X_tr.shape[1] != X_te.shape[1]:
        raise ValueError(f"{name}: train has {X_tr.shape[1]} channels but test has {X_te.shape[1]}")
    if X_tr.shape[2] != X_te.shape[2]:
        raise ValueError(
            f"{name}: train length {X_tr.shape[2]} differs from test length {X_te.shape[2]}; pass length=..."
        )
    (y_tr_enc, y_te_enc), class_names = encode_labels(y_tr_raw, y_te_raw, name=name)
    X_tr, X_te = normalize_series(X_tr, norm), normalize_series(X_te, norm)
    tr, va = stratified_split(y_tr_enc, val_fraction, split_seed)
    return Dataset(
        name=name,
        X_train=X_tr[tr],
        y_train=y_tr_enc[tr],
        X_val=X_tr[va],
        y_val=y_tr_enc[va],
        X_test=X_te,
        y_test=y_te_enc,
        class_names=class_names,
    )


def dataset_info(name: str, data_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Sizes of an offline set: ``name, n_train, n_test, n_channels, length, n_classes, source``.

    ``length`` is None for variable-length sets; ``source`` says where the files are
    (``"data_dir"``, ``"aeon"`` for a set shipped with aeon, ``"cache"`` for aeon's download
    cache). Raises :class:`DatasetNotAvailableError` when the set is not available offline
    (never downloads).
    """
    hit = _resolve(name, data_dir)
    if hit is None:
        raise DatasetNotAvailableError(
            f"dataset {name!r} is not available offline. {_offline_hint(data_dir)}"
        )
    canon, folder, source = hit
    X_tr, y_tr, X_te, y_te = _read_pair(str(folder), canon)

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


# --------------------------------------------------------------------------- synthetic benchmark


def _class_shape(c: int, window: int) -> np.ndarray:
    """Pattern of class ``c`` over ``window`` points: ``sin((c + 1) * pi * t)``, ``t`` in [0, 1]."""
    t = np.linspace(0.0, 1.0, window)
    return np.sin((c + 1) * np.pi * t)


def make_synthetic(
    n_train: int = 200,
    n_test: int = 100,
    length: int = 100,
    n_classes: int = 2,
    window: int = 10,
    noise: float = 1.0,
    amplitude: float = 3.0,
    n_channels: int = 1,
    seed: int = 0,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    random_position: bool = True,
) -> tuple[Dataset, np.ndarray]:
    """A saliency benchmark: classes differ only inside a known window ("planted patterns").

    Every series is i.i.d. Gaussian noise (std ``noise``, all channels). Inside a window of
    ``window`` points -- at a uniformly random start per series when ``random_position`` (a model
    must locate it), else centred -- ``amplitude * sin((c + 1) * pi * t)`` is added to all channels
    for class ``c`` (class 0: one bump, class 1: up-and-down, ...). Outside the window the classes
    share one distribution. Labels are balanced and shuffled. ``n_train`` series are generated for
    the official train part, from which ``val_fraction`` is held out (stratified, ``split_seed``).
    Deterministic given ``seed``; no normalisation is applied.

    Returns:
        ``(dataset, test_mask)``: ``test_mask`` is a ``float32`` ``(n_test, length)`` array, 1 on the
        planted window and 0 elsewhere. ``dataset.masks`` holds the masks of all three splits.
    """
    if not 2 <= window <= length:
        raise ValueError(f"window must be in [2, length={length}], got {window}")
    if n_classes < 2:
        raise ValueError(f"n_classes must be >= 2, got {n_classes}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if n_train < n_classes or n_test < 1:
        raise ValueError(f"need n_train >= n_classes and n_test >= 1, got {n_train}, {n_test}")
    rng = np.random.default_rng(seed)
    shapes = np.stack([_class_shape(c, window) for c in range(n_classes)])

    def generate(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % n_classes).astype(np.int64)
        X = rng.normal(0.0, noise, size=(n, n_channels, length))
        if random_position:
            starts = rng.integers(0, length - window + 1, size=n)
        else:
            starts = np.full(n, (length - window) // 2)
        cols = starts[:, None] + np.arange(window)[None, :]
        rows = np.arange(n)[:, None]
        X[rows, :, cols] += (amplitude * shapes[y])[:, :, None]  # broadcast over channels
        mask = np.zeros((n, length), dtype=np.float32)
        mask[rows, cols] = 1.0
        return X.astype(np.float32), y, mask

    X_tr, y_tr, m_tr = generate(n_train)
    X_te, y_te, m_te = generate(n_test)
    tr, va = stratified_split(y_tr, val_fraction, split_seed)
    ds = Dataset(
        name="Synthetic",
        X_train=X_tr[tr],
        y_train=y_tr[tr],
        X_val=X_tr[va],
        y_val=y_tr[va],
        X_test=X_te,
        y_test=y_te,
        class_names=[f"pattern{c}" for c in range(n_classes)],
        masks={"train": m_tr[tr], "val": m_tr[va], "test": m_te},
    )
    return ds, m_te.copy()
