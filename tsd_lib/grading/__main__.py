"""``python -m tsd_lib.grading run ...``: the grader's worker (instructors use ``tsd grade``)."""

from tsd_lib.grading.worker import main

raise SystemExit(main())
