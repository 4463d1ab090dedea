"""The data of a run: :func:`get_dataset` loads a config's set, :func:`data_fingerprint` ties what
is stored to it.

Every run and teacher record carries ``data_fingerprint`` (:meth:`tsd_lib.data.Dataset.fingerprint`
of the loaded, preprocessed splits). The run store serves a record only while the config loads
the same data: an edited file, or a ``data_dir`` set that shadows a shipped one, retrains. Keys
stay what they were: the fingerprint is in the record, not in the key.
"""

from __future__ import annotations

import functools

from tsd_lib.data import Dataset, load_dataset, make_synthetic, source_stamp
from tsd_lib.experiment.config import SYNTHETIC_PREFIX, RunConfig

SYNTHETIC_SIZE = (100, 100)  # train and test series of the planted-pattern set used in runs


def get_dataset(config: RunConfig) -> Dataset:
    """The config's dataset; names starting with ``synthetic`` build the planted-pattern set."""
    return _load(*_data_fields(config))


def _data_fields(config: RunConfig) -> tuple:
    return (config.dataset, config.length, config.val_fraction, config.split_seed, config.data_dir, config.stretch)


def _load(dataset: str, length: int | None, val_fraction: float, split_seed: int, data_dir: str | None,
          stretch: bool) -> Dataset:
    if dataset.lower().startswith(SYNTHETIC_PREFIX):
        data, _ = make_synthetic(n_train=SYNTHETIC_SIZE[0], n_test=SYNTHETIC_SIZE[1], length=length or 100,
                                 split_seed=split_seed, val_fraction=val_fraction)
        return data
    return load_dataset(dataset, length=length, val_fraction=val_fraction, split_seed=split_seed,
                        data_dir=data_dir, stretch=stretch)


@functools.lru_cache(maxsize=64)
def _fingerprint(fields: tuple, _stamp: tuple) -> str:
    return _load(*fields).fingerprint()


def data_fingerprint(config: RunConfig) -> str:
    """The fingerprint of the data ``config`` loads now (loaded once per process while its files,
    their sizes and modification times, stay the same)."""
    synthetic = config.dataset.lower().startswith(SYNTHETIC_PREFIX)
    return _fingerprint(_data_fields(config), () if synthetic else source_stamp(config.dataset, config.data_dir))
