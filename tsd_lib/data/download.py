"""The UCR/UEA archive as aeon knows it: its spellings, and the guarded download.

Nothing here downloads unless :func:`tsd_lib.data.load_dataset` is called with
``allow_download=True``; even then the host is probed first with a short timeout, so an
offline machine fails in seconds with :class:`DatasetNotAvailableError`.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import numpy as np

#: Host aeon 1.x downloads classification archives from (``_download_all_zenodo_files``).
DOWNLOAD_HOST = "zenodo.org"
PROBE_TIMEOUT_S = 3.0

#: UCR-2015 spellings that do not reduce to the 2018 names by case/underscore folding.
ALIASES = {
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


def fold_name(name: str) -> str:
    """``name`` lower-cased without ``_``, ``-`` and spaces: how names are matched."""
    return "".join(ch for ch in name.lower() if ch not in "_- ")


def archive_name(name: str) -> str | None:
    """The spelling aeon's downloader knows for ``name``, or None."""
    try:
        from aeon.datasets.tsc_datasets import tsc_zenodo
    except Exception:  # pragma: no cover - aeon layout changed
        return None
    folded = ALIASES.get(fold_name(name), name)
    for cand in tsc_zenodo:
        if fold_name(cand) == fold_name(folded):
            return cand
    return None


def is_downloadable(name: str) -> bool:
    """True when ``name`` is a UCR/UEA archive set that aeon can download (the network is not checked)."""
    return archive_name(name) is not None


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


def download(name: str, data_dir: str | os.PathLike | None, hint: str) -> tuple[Any, np.ndarray, Any, np.ndarray]:
    """Download ``name`` with aeon (into ``data_dir`` or aeon's cache) and return raw arrays.

    Fails within :data:`PROBE_TIMEOUT_S` when the host cannot be reached; ``hint`` (what loads
    offline) ends every error message.
    """
    if not _probe():
        raise DatasetNotAvailableError(
            f"no network: cannot reach {DOWNLOAD_HOST} to download {name!r}. {hint}"
        )
    from aeon.datasets import load_classification

    extract = None if data_dir is None else str(data_dir)
    try:
        X_tr, y_tr = load_classification(name, split="train", extract_path=extract)
        X_te, y_te = load_classification(name, split="test", extract_path=extract)
    except Exception as e:
        raise DatasetNotAvailableError(
            f"downloading {name!r} failed ({type(e).__name__}: {e}). {hint}"
        ) from e

    def conv(X: Any) -> Any:
        return X.astype(np.float64) if isinstance(X, np.ndarray) else [np.asarray(x, float) for x in X]

    return conv(X_tr), np.asarray(y_tr).astype(str), conv(X_te), np.asarray(y_te).astype(str)
