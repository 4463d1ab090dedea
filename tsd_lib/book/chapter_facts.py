"""What a chapter states about the machine and code that ran it (its provenance line's glued facts)."""

from __future__ import annotations

from tsd_lib import __version__
from tsd_lib.runtime import resolve_device


def provenance_facts(profile: str, seeds: list[int] | None = None, *, device: str = "auto") -> dict[str, str]:
    """What a chapter's provenance line states, as plain strings for ``glue``: ``profile``, ``tsd_lib`` and
    ``torch`` (versions), ``device`` (type and name) and, when given, the student ``seeds``."""
    import torch

    dev = resolve_device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    facts = {"profile": profile, "tsd_lib": __version__, "torch": str(torch.__version__),
             "device": f"{dev.type} ({name})"}
    if seeds:
        facts["seeds"] = ", ".join(map(str, seeds))
    return facts
