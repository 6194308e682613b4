"""Scoring and feature extraction beyond one process: all cores, or a Dask cluster.

Work runs on any :class:`concurrent.futures.Executor`; Dask
(``pip install soundanomaly[dask]``) is the documented engine for clusters:
pass ``client=dask.distributed.Client(...)`` and the model is shipped to each
worker once. Sources are listed lazily (local folders, globs, ``s3://``
prefixes), cut into deterministic shards, and :func:`score_many` writes one
Parquet partition per shard, atomically, so an interrupted job resumes where
it stopped. Nothing here imports Dask or pyarrow until it is used.

Examples
--------
>>> from soundanomaly.scale import iter_clips, score_many  # doctest: +SKIP
>>> from dask.distributed import Client  # doctest: +SKIP
>>> score_many("model/", "s3://plant-audio/2026/", "scores/", client=Client("tcp://host:8786"))  # doctest: +SKIP
"""

from __future__ import annotations

from soundanomaly.scale._jobs import (
    ScoreSummary,
    auto_jobs,
    default_jobs,
    extract_many,
    fit_many,
    score_clips,
    score_many,
)
from soundanomaly.scale._output import COLUMNS
from soundanomaly.scale._sources import iter_clips, iter_shards, shard_digest
from soundanomaly.scale._work import fingerprint_folder

__all__ = [
    "AUTO_MIN_CLIPS_PER_JOB",
    "COLUMNS",
    "ScoreSummary",
    "auto_jobs",
    "default_jobs",
    "extract_many",
    "fingerprint_folder",
    "fit_many",
    "iter_clips",
    "iter_shards",
    "score_clips",
    "score_many",
    "shard_digest",
]
