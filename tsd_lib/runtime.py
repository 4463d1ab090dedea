"""Where code runs and from which seed: seeding and the device every trained number depends on.

Part of :data:`tsd_lib.provenance.RESULTS_MODULES` (a change here changes results); the other
small helpers (progress bars, atomic writes) live in :mod:`tsd_lib.utils`, outside the digest.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) so runs are repeatable."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Return a torch device; ``"auto"`` picks CUDA when available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: Any, *, option: str = "device") -> None:
    """``ValueError`` (one line naming ``option``: ``"device"``, ``"--device"``) unless ``device`` is
    ``"auto"``, ``"cpu"``, an available ``"cuda"``/``"cuda:N"`` (or ``"mps"``) or a ``torch.device``."""
    if isinstance(device, torch.device) or device in ("auto", "cpu"):
        return
    if isinstance(device, str) and (device == "cuda" or device.startswith("cuda:")):
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {device!r}: PyTorch sees no CUDA GPU here; use 'cpu' (or 'auto')")
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise ValueError(f"{option} {device!r}: there are {torch.cuda.device_count()} CUDA device(s)")
        return
    if device == "mps" and torch.backends.mps.is_available():
        return
    raise ValueError(f"{option} must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
