"""``python -m tsd_lib`` runs the ``tsd`` command line."""

from tsd_lib.cli import main

raise SystemExit(main())
