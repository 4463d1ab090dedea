"""Where things are: the package, the repository around it and its folders (the one place that knows
the layout; nothing here imports anything heavy)."""

from __future__ import annotations

from pathlib import Path

#: The ``tsd_lib`` package folder.
PACKAGE = Path(__file__).resolve().parent
#: The repository root (the package's parent): chapters, ``results/``, ``_config.yml``.
PROJECT_ROOT = PACKAGE.parent
#: The packaged profiles (YAML).
PROFILE_DIR = PACKAGE / "profiles"
#: The committed results archives.
ARCHIVE_ROOT = PROJECT_ROOT / "results"
