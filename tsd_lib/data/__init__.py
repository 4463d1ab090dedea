"""Datasets: UCR/UEA loading (offline first), preprocessing, splits and a synthetic benchmark.

Every loader returns a :class:`Dataset` holding ``float32`` arrays shaped ``(n, channels, length)``
and ``int64`` labels in ``0..k-1``.

Modules: ``arrays`` (the :class:`Dataset` container, validation, resampling, normalisation,
splits), ``ucr`` (the UCR/UEA files: locating, reading, listing, :func:`load_dataset`),
``archive`` (archive spellings and the guarded download), ``synthetic`` (the planted-pattern
benchmark).
"""

from tsd_lib.data.arrays import (
    MIN_SERIES_LENGTH,
    NORMALISATIONS,
    Dataset,
    build_dataset,
    check_series_length,
    encode_labels,
    normalise_series,
    resample,
    shorten,
    stratified_split,
    validate_arrays,
)
from tsd_lib.data.download import DatasetNotAvailableError, is_downloadable
from tsd_lib.data.synthetic import make_synthetic
from tsd_lib.data.ucr import (
    ShadowedDatasetWarning,
    available_datasets,
    canonical_dataset_name,
    dataset_info,
    load_dataset,
    source_stamp,
)

__all__ = [
    "MIN_SERIES_LENGTH",
    "NORMALISATIONS",
    "ShadowedDatasetWarning",
    "Dataset",
    "DatasetNotAvailableError",
    "available_datasets",
    "build_dataset",
    "canonical_dataset_name",
    "check_series_length",
    "dataset_info",
    "encode_labels",
    "is_downloadable",
    "load_dataset",
    "make_synthetic",
    "normalise_series",
    "resample",
    "shorten",
    "source_stamp",
    "stratified_split",
    "validate_arrays",
]
