"""What confines a submission's processes: a minimal environment, resource limits, and a sweep.

The grader becomes a *child subreaper* (Linux ``prctl(PR_SET_CHILD_SUBREAPER)``), so a process a
notebook detaches (``setsid``, a double fork) is re-parented to the grader instead of ``init``;
:func:`sweep` then kills every process the submission started, however detached, before any
report is written.

Memory (``tsd grade --memory-mb N``): every process of a submission gets ``N`` MiB of address
space (``RLIMIT_AS``, :func:`limits`), and :class:`MemoryWatchdog` stops them all once their
resident memory *summed over every process the submission started* passes ``N`` MiB, so forking
workers does not multiply the limit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from tsd_lib.paths import PROJECT_ROOT

#: Variables passed from the grader's environment to student code (besides ``TSD_*``).
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "AEON_DATA")

_PR_SET_CHILD_SUBREAPER = 36

#: The longest wall-clock limit per notebook (one day): ``tsd grade --timeout`` refuses more (a
#: value such as 1e12 overflows the socket timeouts while grading).
MAX_TIMEOUT_S = 86400.0
#: Address space (MiB) the kernel of a reference solution needs: it imports torch, scipy, pandas and
#: matplotlib (measured with the three solution notebooks under ``RLIMIT_AS``: they fail at 1536 MiB,
#: where a shared library cannot be mapped, and pass at 1792; unlimited, the kernel peaks at ~1.9 GiB).
REFERENCE_MEMORY_MB = 1800
#: The smallest ``tsd grade --memory-mb`` accepted: below it even a reference solution crashes.
MIN_MEMORY_MB = 2048


def become_subreaper(on: bool = True) -> bool:
    """Make orphaned descendants of this process its children (Linux; ``on=False`` undoes it)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def student_env(scratch: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of student code: PATH, locale, ``TSD_*``, a scratch HOME and TMPDIR, ``extra``.

    Nothing else of the grader's environment (tokens, credentials, proxies) is passed on.
    ``PYTHONPATH`` names the folder tsd_lib is imported from (plus the grader's own entries).
    """

    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env.update({k: v for k, v in os.environ.items() if k.startswith("TSD_")})
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    env.setdefault("AEON_DATA", str(Path("~/aeon_data").expanduser()))
    home, tmp = scratch / "home", scratch / "tmp"
    home.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    roots = [str(PROJECT_ROOT)]
    roots += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in roots]
    env.update({"HOME": str(home), "TMPDIR": str(tmp), "PYTHONPATH": os.pathsep.join(roots),
                "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg", "TSD_PROGRESS": "0",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.setdefault("LANG", "C.UTF-8")
    env.update(extra)
    return env


def limits(memory_mb: int | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` limiting address space, file size and core dumps of the child tree."""
    if os.name != "posix":
        return None
    import resource

    fsize = 1024 * 1024 * 1024  # 1 GiB per written file: enough for an executed notebook with figures
    wanted = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, fsize)]
    if memory_mb:
        wanted.insert(0, (resource.RLIMIT_AS, int(memory_mb) * 1024 * 1024))

    def limit() -> None:
        for which, value in wanted:
            _, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            with contextlib.suppress(ValueError, OSError):  # e.g. RLIMIT_AS is not enforceable on macOS
                resource.setrlimit(which, (value, value))

    return limit


def children() -> set[int]:
    """Pids of this process's current children (taken before a submission starts)."""
    try:
        import psutil

        return {c.pid for c in psutil.Process().children()}
    except Exception:  # psutil missing
        return set()


def sweep(keep: set[int], group: int | None = None, rounds: int = 50) -> int:
    """SIGKILL every descendant of this process outside the subtrees of ``keep``; reap them.

    ``group`` (the worker's session) is killed first where psutil is missing. Repeats until no
    such process is left (a forking process cannot outrun it). Returns how many were killed.
    """
    if group is not None and os.name == "posix":
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    try:
        import psutil
    except ImportError:
        return 0
    me, killed = psutil.Process(), 0
    for _ in range(rounds):
        spared = _spared(keep)
        try:
            victims = [p for p in me.children(recursive=True) if p.pid not in spared]
        except psutil.Error:
            victims = []
        victims = [p for p in victims if _alive(p)]
        if not victims:
            break
        for p in victims:
            with contextlib.suppress(psutil.Error):
                p.kill()
                killed += 1
        psutil.wait_procs(victims, timeout=5)
        _reap(keep)
        time.sleep(0.02)
    _reap(keep)
    return killed


def _alive(p: object) -> bool:
    import psutil

    try:
        return p.status() != psutil.STATUS_ZOMBIE  # type: ignore[attr-defined]
    except psutil.Error:
        return False


def _reap(keep: set[int]) -> None:
    """Collect the exit status of dead children re-parented to this process (no zombies left)."""
    if os.name != "posix":
        return
    import psutil

    for p in psutil.Process().children():
        if p.pid in keep:
            continue
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(p.pid, os.WNOHANG)


def _spared(keep: set[int]) -> set[int]:
    import psutil

    spared: set[int] = set()
    for pid in keep:
        with contextlib.suppress(psutil.Error):
            spared |= {pid} | {c.pid for c in psutil.Process(pid).children(recursive=True)}
    return spared


def submission_processes(keep: set[int]) -> list:
    """The live processes a submission started: this process's descendants outside ``keep``'s subtrees."""
    import psutil

    spared = _spared(keep)
    try:
        return [p for p in psutil.Process().children(recursive=True) if p.pid not in spared and _alive(p)]
    except psutil.Error:
        return []


def resident_bytes(keep: set[int]) -> int:
    """The resident memory (RSS) of every process a submission started, summed."""
    import psutil

    total = 0
    for p in submission_processes(keep):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


class MemoryWatchdog(threading.Thread):
    """Kills every process of a submission once their summed resident memory passes ``limit_mb``
    (checked every ``interval`` seconds); :attr:`tripped` says whether it did, :attr:`peak_mb`
    the largest sum seen. A no-op without psutil."""

    def __init__(self, keep: set[int], limit_mb: int, group: int | None = None, interval: float = 0.1) -> None:
        super().__init__(name="tsd-grade-memory-watchdog", daemon=True)
        self.keep, self.limit, self.group, self.interval = set(keep), int(limit_mb) * 1024 * 1024, group, interval
        self.tripped, self.peak_mb = False, 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil is a dependency
            return
        while not self._stop_event.is_set():
            used = resident_bytes(self.keep)
            self.peak_mb = max(self.peak_mb, used / 2**20)
            if used > self.limit:
                self.tripped = True
                if self.group is not None:
                    with contextlib.suppress(OSError):
                        os.killpg(self.group, signal.SIGKILL)
                for p in submission_processes(self.keep):
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                return
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(5)
