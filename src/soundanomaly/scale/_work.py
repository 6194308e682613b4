"""What runs on a worker: the model, loaded once per process, and the per-shard tasks.

Tasks are module-level functions (pickled by reference). The model reaches a
worker in one of two ways, and is loaded once per worker process, cached by
its fingerprint:

* :class:`ModelPayload` holds the model folder's bytes; Dask ships it to each
  worker once (``client.scatter(..., broadcast=True)``) and tasks name it;
* :class:`ModelRef` holds only the folder path and the fingerprint (any
  ``concurrent.futures`` executor whose workers see the driver's files, such
  as a local process pool).

Either way the worker loads the model with the library's validated loader: a
model folder is data, never code.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import multiprocessing
import os
import sys
import tempfile
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soundanomaly.exceptions import ModelFormatError, SoundAnomalyError

__all__ = ["ModelPayload", "ModelRef", "extract_shard", "fingerprint_folder", "score_shard"]

#: Largest model folder shipped to workers (bytes); a bigger one is refused before reading it all.
MAX_MODEL_BYTES = 2 * 1024**3
#: Models kept loaded per worker process (a job uses one; a second job may overlap briefly).
_CACHE_SIZE = 2
_CACHE: OrderedDict[str, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()  # Dask runs several task threads per worker process


def _model_files(folder: Path) -> list[tuple[str, Path]]:
    """Regular files of a model folder, sorted by relative name (the marker and hidden files left out)."""
    if not folder.is_dir():
        raise ModelFormatError(f"{folder}: is not a model folder")
    files = []
    total = 0
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_symlink() or not path.is_file() or any(part.startswith(".") for part in relative.split("/")):
            continue
        total += path.stat().st_size
        if total > MAX_MODEL_BYTES:
            raise ModelFormatError(f"{folder}: model folder is larger than {MAX_MODEL_BYTES} bytes")
        files.append((relative, path))
    if not files:
        raise ModelFormatError(f"{folder}: holds no model files")
    return files


def _fingerprint(items: Sequence[tuple[str, bytes]]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for name, data in items:
        digest.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return digest.hexdigest()


def fingerprint_folder(folder: str | os.PathLike[str]) -> str:
    """Hex digest of a saved model folder's files (names and bytes): the identity of a scoring job's model.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> train = ClipFeatures.from_arrays([np.random.default_rng(i).normal(size=(9, 3)).astype("f4") for i in range(3)])
    >>> path = GaussianDetector(threshold=3.0).fit(train).save("fp-model")
    >>> len(fingerprint_folder(path)) == 32 and fingerprint_folder(path) == fingerprint_folder(path)
    True
    """
    return _fingerprint([(name, path.read_bytes()) for name, path in _model_files(Path(folder))])


@dataclass(frozen=True)
class ModelPayload:
    """A saved model folder as bytes (``files``: relative name → content), shipped to each worker once."""

    fingerprint: str
    files: tuple[tuple[str, bytes], ...]

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str]) -> ModelPayload:
        """Read a saved model folder (bounded by :data:`MAX_MODEL_BYTES`)."""
        files = tuple((name, path.read_bytes()) for name, path in _model_files(Path(folder)))
        return cls(_fingerprint(files), files)


@dataclass(frozen=True)
class ModelRef:
    """A saved model folder by path and fingerprint: for workers that share the driver's files."""

    fingerprint: str
    folder: str


#: glibc ``mallopt`` parameters (malloc.h) and the values a worker process uses.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_BYTES, _TRIM_THRESHOLD_BYTES = 256 * 1024**2, 512 * 1024**2
_TUNED: list[bool] = []


def _tune_allocator() -> None:
    """Once per worker process (Linux, glibc): serve feature-sized buffers from the heap, not fresh mappings.

    Feature extraction allocates and frees arrays of a few MB per clip. glibc
    serves each one as a new ``mmap`` (and Dask's workers set
    ``MALLOC_TRIM_THRESHOLD_``, which also freezes glibc's own adaptation), so
    every clip pays page faults to zero fresh pages: benchmarks/scale.py
    measured 7.5-9.5 ms of CPU per 10 s clip in a Dask worker with the
    defaults and 2.3-2.9 ms with these thresholds. Only worker processes are
    tuned (never the process that calls :func:`score_many`); the cost is that
    a worker keeps up to the largest working set (a few hundred MB) instead of
    returning it to the system between clips.
    """
    if _TUNED or multiprocessing.parent_process() is None or not sys.platform.startswith("linux"):
        return
    _TUNED.append(True)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def _load(model: ModelPayload | ModelRef) -> Any:
    """The loaded detector for ``model``, from this process's cache or loaded (and checked) now."""
    _tune_allocator()
    with _CACHE_LOCK:
        cached = _CACHE.get(model.fingerprint)
        if cached is not None:
            _CACHE.move_to_end(model.fingerprint)
            return cached
        detector = _load_uncached(model)
        _CACHE[model.fingerprint] = detector
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return detector


def _load_uncached(model: ModelPayload | ModelRef) -> Any:
    from soundanomaly.detectors import load_model

    if isinstance(model, ModelRef):
        folder = Path(model.folder)
        if not folder.is_dir():
            raise SoundAnomalyError(
                f"{folder}: model folder not found on this worker; pass client= (Dask ships the model to "
                "every worker) or put the model where the workers can read it"
            )
        payload = ModelPayload.from_folder(folder)
        if payload.fingerprint != model.fingerprint:
            raise SoundAnomalyError(f"{folder}: the model changed since the job started (fingerprint differs)")
    else:
        payload = model
        if _fingerprint(payload.files) != payload.fingerprint:
            raise SoundAnomalyError("the model payload does not match its fingerprint")
    with tempfile.TemporaryDirectory(prefix="soundanomaly-model-") as tmp:
        root = Path(tmp)
        for name, data in payload.files:
            target = (root / name).resolve()
            if root.resolve() not in target.parents:
                raise ModelFormatError(f"model file name {name!r} leaves the model folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        detector = load_model(root)
    for name, value in (
        ("on_error", "skip"),
        ("progress", False),
        ("n_jobs", 1),
    ):  # this run's options, not the model's
        if hasattr(detector, name):
            setattr(detector, name, value)  # skip: an unreadable clip gets its own row instead of stopping the shard
    return detector


def group_of(path: str) -> str | None:
    """The clip's group key (``"fan/id_00"``) when its path tells it, else None."""
    from soundanomaly.datasets.keys import group_key

    return group_key(path)


def score_shard(model: ModelPayload | ModelRef, names: Sequence[str], allow_http: bool = False) -> dict[str, list[Any]]:
    """Score one shard of clips; returns the columns ``path, group, score, label, status, reason, source_sr``.

    Every clip gets one row, in input order (the detector's
    ``score_records``). A clip that cannot be read is ``status="skipped"``
    with the reason; a NaN/infinite score is ``"invalid"``; both have a NaN
    score and label 1 (fail closed).
    """
    from soundanomaly.audio import allow_http as allowing_http
    from soundanomaly.exceptions import InvalidScoreWarning

    detector = _load(model)
    paths = [str(name) for name in names]
    with allowing_http(allow_http), warnings.catch_warnings():
        warnings.simplefilter("ignore", InvalidScoreWarning)  # each clip without a score has its own row
        records = detector.score_records(paths)
    if len(records) != len(paths):
        raise SoundAnomalyError(f"the detector described {len(records)} clips for {len(paths)}")
    return {
        "path": paths,
        "group": [record.group for record in records],
        "score": [math.nan if not record.ok else float(record.score) for record in records],
        "label": [int(record.label) for record in records],
        "status": [str(record.status) for record in records],
        "reason": [str(record.reason) for record in records],
        "source_sr": [record.source_sr for record in records],
    }


def extract_shard(
    extractor: Any, names: Sequence[str], channel: Any = 0, allow_http: bool = False
) -> tuple[Any, tuple[tuple[str, str], ...]]:
    """Features of one shard (``on_error="skip"``): ``(ClipFeatures or None, skipped (path, reason) pairs)``."""
    from soundanomaly.audio import allow_http as allowing_http
    from soundanomaly.exceptions import AudioError

    with allowing_http(allow_http):
        try:
            features = extractor.extract(list(names), channel=channel, on_error="skip", progress=False)
        except AudioError as exc:  # none of the clips could be used
            return None, tuple((str(name), exc.problem) for name in names)
    return features, tuple(features.skipped)
