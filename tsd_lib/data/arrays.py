"""The :class:`Dataset` container and the preprocessing every loader shares.

Validation of user arrays, label encoding, resampling (:func:`resample`) and shortening
(:func:`shorten`), per-series normalisation, the stratified validation split, and
:func:`build_dataset`, which turns raw train/test arrays into a :class:`Dataset` in that order.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

NORMALISATIONS = ("znorm", "minmax", "none")

#: Fewest points a series may have. Linear interpolation needs two points, and a z-normalised
#: series of ``L`` points keeps ``L - 2`` degrees of freedom (its mean and scale are fixed): with
#: two points only the sign of the difference survives (every series becomes ``(-1, 1)`` or
#: ``(1, -1)``); three is the least length that still has a shape to classify.
MIN_SERIES_LENGTH = 3

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

    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of every split (shapes, dtypes, values) and the class
        names: what a run computed on this data is tied to (the run store retrains on a change)."""
        h = hashlib.sha256(repr(list(self.class_names)).encode())
        for which in ("train", "val", "test"):
            for a in self.split(which):
                a = np.ascontiguousarray(a)
                h.update(f"{which}{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
        return h.hexdigest()[:16]

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
    univariate when ``allow_2d``), empty arrays, series shorter than :data:`MIN_SERIES_LENGTH`,
    NaN/inf values, ``len(y) != len(X)`` and fewer than ``min_classes`` distinct labels. Labels
    are not re-encoded (see :func:`encode_labels`).
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
    check_series_length(Xa, name)
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
    if old < 2:
        raise ValueError(f"cannot resample a series of {old} point(s): linear interpolation needs at least 2")
    if old == length:
        return X.astype(np.float32, copy=True)
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


def normalise_series(X: np.ndarray, method: str | None = "znorm") -> np.ndarray:
    """Normalise each series and channel: ``"znorm"`` (mean 0, std 1), ``"minmax"`` ([0, 1]) or
    ``"none"``/``None``. Constant series map to 0 (no division by zero)."""
    method = "none" if method is None else str(method).lower()
    if method not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS} or None, got {method!r}")
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


def check_series_length(X: np.ndarray | list[np.ndarray], name: str = "data") -> None:
    """Raise a ``ValueError`` naming ``name`` when a series of ``X`` (``(n, C, L)`` or a list of
    ``(C, L_i)`` arrays) has fewer than :data:`MIN_SERIES_LENGTH` points."""
    lengths = [X.shape[-1]] if isinstance(X, np.ndarray) else [np.shape(x)[-1] for x in X]
    if lengths and min(lengths) < MIN_SERIES_LENGTH:
        raise ValueError(
            f"{name}: a series has {min(lengths)} point(s); series need at least {MIN_SERIES_LENGTH} "
            "(shorter ones cannot be resampled or z-normalised into a shape)"
        )


# --------------------------------------------------------------------------- raw arrays -> Dataset


def build_dataset(
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
    """The :class:`Dataset` of raw official splits: checks, resampling, encoding, normalisation, split.

    ``X_tr``/``X_te`` are ``(n, C, L)`` arrays or lists of ``(C, L_i)`` arrays, ``y_*`` raw labels.
    In order: shapes and finiteness are checked, series shorter than :data:`MIN_SERIES_LENGTH`
    are rejected, ``length`` resamples (:func:`resample`, or :func:`shorten` without
    ``stretch``), labels are encoded on the train classes, ``norm`` (one of
    :data:`NORMALISATIONS`) is applied per series, and ``val_fraction`` of train is held out
    (:func:`stratified_split`, ``split_seed``). Raises ``ValueError`` naming ``name``.
    """
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
        check_series_length(X, f"{name} ({part})")
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
    X_tr, X_te = normalise_series(X_tr, norm), normalise_series(X_te, norm)
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
