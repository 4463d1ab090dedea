"""Runs and the run store: :class:`RunConfig` (``config``), :class:`RunStore` (``store``),
teachers and their caches (``teachers``), the data of a run and its fingerprint (``datasets``),
and :func:`run` (``runner``).

``run(RunConfig(...))`` trains (or loads) the teacher, trains the student with the configured
distillation objective, evaluates both on the validation and test splits and returns a flat
record. Every record lives in a folder named by the hash of the fields that change results; a
config already in the store is loaded, never retrained.
"""

from tsd_lib.experiment.config import SYNTHETIC_PREFIX, RunConfig, canonical_dataset, default_protocol, digest
from tsd_lib.experiment.datasets import SYNTHETIC_SIZE, data_fingerprint, get_dataset
from tsd_lib.experiment.runner import evaluate_run, load_student, run
from tsd_lib.experiment.store import RunStore, StoreError, StoreWarning, default_store
from tsd_lib.experiment.teachers import (
    BANK_SEED,
    SALIENCY_SEED,
    choose_teacher,
    get_teacher,
    load_model,
    load_teacher,
    save_model,
    teacher_bank,
    teacher_saliency,
    teacher_test_proba,
    weights_digest,
)

__all__ = [
    "BANK_SEED", "SALIENCY_SEED", "SYNTHETIC_PREFIX", "SYNTHETIC_SIZE", "RunConfig", "RunStore", "StoreError",
    "StoreWarning", "canonical_dataset", "choose_teacher", "data_fingerprint", "default_protocol", "default_store",
    "digest", "evaluate_run", "get_dataset", "get_teacher", "load_model", "load_student", "load_teacher", "run",
    "save_model", "teacher_bank", "teacher_saliency", "teacher_test_proba", "weights_digest",
]
