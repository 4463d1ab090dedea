"""Running experiments at scale and keeping their results: the resumable grid (``grid``, on joblib or
``dask_backend``), the committed results archives (``archive``: reading; ``archive_making``: ``tsd
archive``), ``verify`` (``tsd verify``, ``--certify``) and ``certification`` (which archived records the
current code stands behind)."""
