"""Small helpers shared by every layer: progress bars, atomic writes, strict JSON, library versions,
the machine.

None of them changes a number, so this module is outside :data:`tsd_lib.provenance.RESULTS_MODULES`
(seeding and devices, which do, are in :mod:`tsd_lib.runtime`)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm


def progress_enabled(flag: bool | None = None) -> bool:
    """Progress bars are on unless ``flag`` is False or ``TSD_PROGRESS=0``."""
    if flag is not None:
        return flag
    return os.environ.get("TSD_PROGRESS", "1") not in {"0", "false", "False", "no"}


def progress(iterable: Iterable | None = None, *, enabled: bool | None = None, **kw: Any) -> tqdm:
    """A tqdm bar that respects ``TSD_PROGRESS=0`` and ``enabled=False``."""
    return tqdm(iterable, disable=not progress_enabled(enabled), dynamic_ncols=True, **kw)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf) replaced by None, in nested dicts and lists:
    strict JSON has no NaN."""
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty, strict JSON atomically (non-finite floats become ``null``)."""
    text = json.dumps(json_safe(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, (text + "\n").encode())


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> None:
    """``torch.save`` atomically."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def versions() -> dict[str, str]:
    """Versions of Python and the libraries that change results."""
    import platform

    import numpy
    import sklearn

    import tsd_lib

    out = {"python": platform.python_version(), "tsd_lib": tsd_lib.__version__,
           "torch": torch.__version__, "numpy": numpy.__version__, "sklearn": sklearn.__version__}
    try:
        import aeon

        out["aeon"] = aeon.__version__
    except ImportError:  # pragma: no cover - aeon is a hard dependency
        pass
    return out


def machine() -> dict[str, Any]:
    """This machine: CPU model, core count, GPU (``None`` without one) and operating system."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "system": platform.system()}
