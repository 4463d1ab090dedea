"""What every benchmark does first and last: threads and load at the start; the machine's facts,
then the JSON result written and printed as the last stdout line."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from tsd_lib.utils import atomic_write_json


def begin(threads: int) -> tuple[float, float | None]:
    """Start a benchmark: set torch's threads; return the start time and the 1-minute load average."""
    torch.set_num_threads(threads)
    return time.perf_counter(), (os.getloadavg()[0] if hasattr(os, "getloadavg") else None)


def finish(path: Path, result: dict[str, Any], t_start: float, load: float | None) -> dict[str, Any]:
    """Add the machine's facts and the run time to ``result``, write it to ``path``, print it."""
    result.update({
        "load_average_1min_at_start": load, "torch": torch.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "total_seconds": time.perf_counter() - t_start,
    })
    atomic_write_json(path, result)
    print(json.dumps(result, sort_keys=True))
    return result
