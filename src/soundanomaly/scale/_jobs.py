"""The driver side: shard a lazy listing, keep a bounded number of tasks in flight, write or gather results."""

from __future__ import annotations

import collections
import contextlib
import logging
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from soundanomaly._progress import ProgressBar
from soundanomaly.exceptions import AudioError, ParameterError, SoundAnomalyError
from soundanomaly.results import ClipScore
from soundanomaly.scale._output import JobFolder
from soundanomaly.scale._sources import iter_clips, iter_shards, shard_digest
from soundanomaly.scale._work import (
    ModelPayload,
    ModelRef,
    extract_shard,
    fingerprint_folder,
    group_of,
    score_shard,
)

__all__ = ["ScoreSummary", "auto_jobs", "default_jobs", "extract_many", "fit_many", "score_clips", "score_many"]

_log = logging.getLogger("soundanomaly.scale")

Sources = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]

#: Clips per shard (one task, one Parquet partition) unless told otherwise.
DEFAULT_SHARD_SIZE = 4096
#: Times a broken local process pool (a killed worker) is rebuilt before the job gives up.
_POOL_RESTARTS = 3


@dataclass(frozen=True)
class ScoreSummary:
    """What :func:`score_many` did.

    Attributes
    ----------
    out : pathlib.Path
        The output folder (read it with ``pandas.read_parquet(out)``).
    clips : int
        Clips listed from the sources.
    shards : int
        Shards in the job; ``resumed`` of them were complete already.
    resumed : int
    scored : int
        Clips scored by this call.
    not_ok : int
        Of those, clips with status ``skipped`` or ``invalid`` (NaN score, label 1).
    seconds : float
        Wall-clock time of this call.
    """

    out: Path
    clips: int
    shards: int
    resumed: int
    scored: int
    not_ok: int
    seconds: float


#: Fewest clips per worker process for which a fresh local pool pays for its start-up by default: starting
#: the workers and loading the model there costs about what scoring a few hundred 10 s clips does
#: (benchmarks/scale.py: a fresh pool of 2 broke even with one process at ~400 clips on a shared 2-core
#: machine); below ``AUTO_MIN_CLIPS_PER_JOB * cores`` clips one process is faster.
AUTO_MIN_CLIPS_PER_JOB = 256


def auto_jobs(n_clips: int) -> int:
    """Worker processes for scoring ``n_clips`` clips by default: every core when each gets enough clips, else 1.

    Examples
    --------
    >>> auto_jobs(10)
    1
    """
    cores = default_jobs()
    return cores if cores > 1 and n_clips >= AUTO_MIN_CLIPS_PER_JOB * cores else 1


def default_jobs() -> int:
    """Worker processes a local pool gets by default: the cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class _InProcess(Executor):
    """An executor that runs each task at once in this process (``jobs=1``: no process start-up)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # the caller sees it from result(), as with a pool
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future


class _Runner:
    """Submits tasks on the chosen executor; rebuilds a local pool it owns when a worker dies."""

    def __init__(self, *, client: Any, executor: Executor | None, jobs: int | None, max_in_flight: int | None) -> None:
        if client is not None and executor is not None:
            raise ParameterError("pass client= or executor=, not both")
        if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
            raise ParameterError(f"jobs must be a positive int or None, got {jobs!r}")
        if max_in_flight is not None and (
            isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1
        ):
            raise ParameterError(f"max_in_flight must be a positive int or None, got {max_in_flight!r}")
        self.client = client
        self.jobs = jobs or default_jobs()
        self.owned = executor is None and client is None
        if client is not None:
            self.executor: Executor = client.get_executor(pure=False)
            slots = sum(int(w.get("nthreads", 1)) for w in client.scheduler_info()["workers"].values()) or 1
        elif executor is not None:
            self.executor = executor
            slots = default_jobs()
        else:
            self.executor = self._new_pool()
            slots = self.jobs
        self.max_in_flight = max_in_flight or max(4, 2 * slots)  # a cluster may still be starting its workers
        self.restarts = 0
        self.generation = 0
        self.generation_of: dict[Future[Any], int] = {}

    def _new_pool(self) -> Executor:
        if self.jobs == 1:
            return _InProcess()
        # fork starts in milliseconds and needs no ``if __name__ == "__main__"`` guard in the user's script; but
        # a forked child of a process running TensorFlow's threads can deadlock, so then a clean forkserver
        context = multiprocessing.get_context("forkserver" if "tensorflow" in sys.modules else "fork")
        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=context)

    def ship(self, folder: Path, fingerprint: str) -> Any:
        """The model argument of every task: scattered once to each Dask worker, or a path for shared files."""
        if self.client is not None:
            return self.client.scatter(ModelPayload.from_folder(folder), broadcast=True, hash=False)
        return ModelRef(fingerprint, str(folder))

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Submit a task; a local pool found broken (a worker died) is rebuilt first."""
        try:
            future = self.executor.submit(fn, *args)
        except BrokenProcessPool as exc:
            self.restart(exc)
            future = self.executor.submit(fn, *args)
        self.generation_of[future] = self.generation
        return future

    def outcome(self, future: Future[Any]) -> tuple[bool, Any]:
        """``(True, result)``, or ``(False, None)`` when the task died with its pool: the caller resubmits it."""
        generation = self.generation_of.pop(future, self.generation)
        try:
            return True, future.result()
        except BrokenProcessPool as exc:
            if generation == self.generation:  # the first loss seen from this pool: a new pool
                self.restart(exc)
            return False, None

    def restart(self, exc: BaseException) -> None:
        """After a local worker died: a fresh pool, or the error when the pool is not ours or keeps dying."""
        if not self.owned or self.restarts >= _POOL_RESTARTS:
            raise SoundAnomalyError(f"a worker process died ({exc}); rerun the same command to resume") from exc
        self.restarts += 1
        _log.warning("a worker process died (%s): restarting the pool (%d/%d)", exc, self.restarts, _POOL_RESTARTS)
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self._new_pool()
        self.generation += 1

    def close(self, *, cancel: bool) -> None:
        if self.owned:
            self.executor.shutdown(wait=not cancel, cancel_futures=cancel)


@contextlib.contextmanager
def _model_folder(model: Any) -> Iterator[tuple[Path, list[str]]]:
    """A saved model folder for ``model`` (a folder path, or a fitted detector saved for the job) and the inputs."""
    if isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        if not folder.is_dir():
            raise ParameterError(f"{folder}: model must be a saved model folder or a fitted detector")
        yield folder, [os.fspath(folder)]
        return
    if not callable(getattr(model, "save", None)):
        raise ParameterError(f"model must be a saved model folder or a fitted detector, got {type(model).__name__}")
    with tempfile.TemporaryDirectory(prefix="soundanomaly-job-model-") as tmp:
        folder = Path(model.save(Path(tmp) / "model"))
        yield folder, []


def _source_names(sources: Sources) -> list[str]:
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise ParameterError("sources is empty: give a folder, a glob or an s3:// prefix")
    names = []
    for item in items:
        name = os.fspath(item)
        names.append(name if "://" in name else os.path.abspath(name))
    return names


def _local_inputs(names: list[str]) -> list[str]:
    """Folders (or files) the sources read locally: the output may not be, hold or lie inside one."""
    inputs = []
    for name in names:
        if "://" in name:
            continue
        parts = Path(name).parts
        fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if any(c in p for c in "*?[")), len(parts))]]
        inputs.append(os.path.join(*fixed) if fixed else name)
    return inputs


def score_many(
    model: Any,
    sources: Sources,
    out: str | os.PathLike[str],
    *,
    client: Any = None,
    executor: Executor | None = None,
    jobs: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_in_flight: int | None = None,
    on_error: str = "skip",
    allow_http: bool = False,
    progress: bool = False,
    on_shard: Callable[[int, int], None] | None = None,
) -> ScoreSummary:
    """Score every clip of ``sources`` into a Parquet dataset at ``out``; resumable.

    The listing is read lazily and cut into shards of ``shard_size`` clips in
    listing order; each shard is one task and one Parquet partition
    (``part-<shard>.parquet``, columns ``path, group, score, label, status,
    reason``), written atomically. At most ``max_in_flight`` shards are
    pending at once, so the driver's memory does not grow with the number of
    clips. Rerunning the same call after an interruption (Ctrl-C, a lost
    worker, a killed driver) skips the complete shards and scores the rest:
    every clip ends up in the output exactly once.

    Parameters
    ----------
    model : path or fitted detector
        A model folder written by ``save`` (or ``soundanomaly train``), or a
        fitted detector (saved to a temporary folder for the job).
    sources : str, os.PathLike or iterable of them
        Folders, globs, ``.wav`` files or ``s3://`` prefixes (see
        :func:`iter_clips`).
    out : path
        A new or empty folder, or the folder of an interrupted run of the same
        job (same model, sources and shard size) to resume. Never an input,
        inside one, or holding one.
    client : dask.distributed.Client, optional
        Run on this Dask cluster: the model is scattered to every worker once;
        a task on a lost worker is rerun by Dask.
    executor : concurrent.futures.Executor, optional
        Any other executor whose workers can read the model folder (a local
        process pool, Ray's executor on shared storage).
    jobs : int >= 1, optional
        Without ``client``/``executor``: worker processes of a local pool
        (default: every core; ``1`` scores in this process).
    shard_size : int >= 1, default 4096
        Clips per task and per partition (part of the job's identity).
    max_in_flight : int >= 1, optional
        Shards submitted and not yet written (default: twice the worker
        threads, at least 4).
    on_error : {"skip", "raise"}, default "skip"
        ``"skip"``: a clip that cannot be read gets a row with status
        ``skipped`` and its reason (NaN score, label 1). ``"raise"``: stop at
        the first such clip (complete shards are kept; fix and rerun). A clip
        whose score is NaN/infinite is always a row with status ``invalid``
        and label 1 (fail closed), as in the CLI's CSV.
    allow_http : bool, default False
        Also read ``http(s)://`` clips.
    progress : bool, default False
        A progress bar (clips) on stderr.
    on_shard : callable (shard, clips), optional
        Called after each partition is written (a hook for monitoring).

    Returns
    -------
    ScoreSummary

    Examples
    --------
    >>> import numpy as np, soundfile as sf, os, pandas as pd
    >>> from soundanomaly.detectors import GaussianDetector
    >>> os.makedirs("plant", exist_ok=True)
    >>> for i in range(6):
    ...     sf.write(f"plant/{i}.wav", np.random.default_rng(i).normal(0, 0.1, 16000).astype("f4"), 16000)
    >>> model = GaussianDetector(threshold=50.0).fit([f"plant/{i}.wav" for i in range(4)])
    >>> summary = score_many(model, "plant", "scores", jobs=1, shard_size=4)
    >>> summary.clips, summary.shards
    (6, 2)
    >>> table = pd.read_parquet("scores").sort_values("path")
    >>> list(table.columns), table["status"].tolist()
    (['path', 'group', 'score', 'label', 'status', 'reason'], ['ok', 'ok', 'ok', 'ok', 'ok', 'ok'])
    """
    if on_error not in ("skip", "raise"):
        raise ParameterError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ParameterError(f"shard_size must be a positive int, got {shard_size!r}")
    started = time.perf_counter()
    names = _source_names(sources)
    with _model_folder(model) as (folder, model_inputs):
        fingerprint = fingerprint_folder(folder)
        identity = {"model": fingerprint, "sources": names, "shard_size": shard_size}
        job = JobFolder.open(out, identity, [*_local_inputs(names), *model_inputs])
        runner = _Runner(client=client, executor=executor, jobs=jobs, max_in_flight=max_in_flight)
        counts = collections.Counter[str]()
        bar = ProgressBar(desc="scoring", enabled=progress)
        pending: dict[Future[Any], tuple[int, str, list[str]]] = {}
        cancel = True
        try:
            shipped = runner.ship(folder, fingerprint)

            def collect(done: Iterable[Future[Any]]) -> None:
                for future in sorted(done, key=lambda f: pending[f][0]):  # shard order: a tidy manifest
                    shard, digest, shard_names = pending.pop(future)
                    done_ok, columns = runner.outcome(future)
                    if not done_ok:
                        pending[runner.submit(score_shard, shipped, shard_names, allow_http)] = (
                            shard,
                            digest,
                            shard_names,
                        )
                        continue
                    _check_rows(columns, shard_names, on_error)
                    job.write(shard, digest, columns)
                    bad = sum(status != "ok" for status in columns["status"])
                    counts.update(scored=len(shard_names), not_ok=bad)
                    bar.update(len(shard_names))
                    if on_shard is not None:
                        on_shard(shard, len(shard_names))

            for shard, shard_names in iter_shards(iter_clips(sources), shard_size):
                counts.update(clips=len(shard_names), shards=1)
                digest = shard_digest(shard_names)
                if job.is_done(shard, digest):
                    counts.update(resumed=1)
                    bar.update(len(shard_names))
                    continue
                while len(pending) >= runner.max_in_flight:
                    collect(wait(list(pending), return_when=FIRST_COMPLETED).done)
                pending[runner.submit(score_shard, shipped, shard_names, allow_http)] = (shard, digest, shard_names)
            while pending:
                collect(wait(list(pending), return_when=FIRST_COMPLETED).done)
            cancel = False
        finally:
            for future in pending:
                future.cancel()
            runner.close(cancel=cancel)
            bar.close()
    summary = ScoreSummary(
        out=job.folder,
        clips=counts["clips"],
        shards=counts["shards"],
        resumed=counts["resumed"],
        scored=counts["scored"],
        not_ok=counts["not_ok"],
        seconds=time.perf_counter() - started,
    )
    _log.info(
        "%d clip(s) in %d shard(s) (%d already done), %d without a valid score: %s",
        summary.clips,
        summary.shards,
        summary.resumed,
        summary.not_ok,
        summary.out,
    )
    return summary


def score_clips(
    model: Any,
    paths: Iterable[str | os.PathLike[str]],
    *,
    client: Any = None,
    executor: Executor | None = None,
    jobs: int | None = None,
    shard_size: int = 256,
    max_in_flight: int | None = None,
    on_error: str = "skip",
    allow_http: bool = False,
) -> list[ClipScore]:
    """Score clips in parallel and return one :class:`~soundanomaly.results.ClipScore` per clip, in input order.

    The in-memory counterpart of :func:`score_many` (which writes Parquet and
    resumes): the same worker code, a persistent pool (or cluster), the model
    loaded once per worker; each worker returns scores only, never features.

    Parameters
    ----------
    model : path or fitted detector
    paths : iterable of str or os.PathLike
        Clips (local files or URLs), scored in this order.
    client, executor, jobs, shard_size, max_in_flight, on_error, allow_http
        As in :func:`score_many` (``shard_size`` clips per task, default 256).

    Returns
    -------
    list of ClipScore

    Examples
    --------
    >>> import numpy as np, soundfile as sf, os
    >>> from soundanomaly.detectors import GaussianDetector
    >>> os.makedirs("cell", exist_ok=True)
    >>> clips = [f"cell/{i}.wav" for i in range(4)]
    >>> for i, clip in enumerate(clips):
    ...     sf.write(clip, np.random.default_rng(i).normal(0, 0.1, 16000).astype("f4"), 16000)
    >>> model = GaussianDetector(threshold=50.0).fit(clips)
    >>> rows = score_clips(model, clips, jobs=1, shard_size=3)
    >>> [row.path for row in rows] == clips, [row.status for row in rows]
    (True, ['ok', 'ok', 'ok', 'ok'])
    >>> np.allclose([row.score for row in rows], model.score(clips))
    True
    """
    if on_error not in ("skip", "raise"):
        raise ParameterError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ParameterError(f"shard_size must be a positive int, got {shard_size!r}")
    names = (os.fspath(path) for path in paths)
    rows: list[ClipScore] = []
    with _model_folder(model) as (folder, _):
        runner = _Runner(client=client, executor=executor, jobs=jobs, max_in_flight=max_in_flight)
        queue: collections.deque[tuple[Future[Any], list[str]]] = collections.deque()
        cancel = True
        try:
            shipped = runner.ship(folder, fingerprint_folder(folder))

            def take() -> None:
                future, shard_names = queue.popleft()
                done_ok, columns = runner.outcome(future)
                if not done_ok:
                    queue.appendleft((runner.submit(score_shard, shipped, shard_names, allow_http), shard_names))
                    return
                _check_rows(columns, shard_names, on_error)
                for i in range(len(shard_names)):
                    rows.append(
                        ClipScore(
                            columns["path"][i],
                            columns["group"][i],
                            float(columns["score"][i]),
                            int(columns["label"][i]),
                            columns["status"][i],
                            columns["reason"][i],
                            columns["source_sr"][i],
                        )
                    )

            for _, shard_names in iter_shards(names, shard_size):
                while len(queue) >= runner.max_in_flight:
                    take()
                queue.append((runner.submit(score_shard, shipped, shard_names, allow_http), shard_names))
            while queue:
                take()
            cancel = False
        finally:
            for future, _ in queue:
                future.cancel()
            runner.close(cancel=cancel)
    if not rows:
        raise ParameterError("paths is empty: no clips")
    return rows


def _check_rows(columns: Any, names: list[str], on_error: str) -> None:
    """A worker's result must be one row per clip, in order; ``on_error="raise"`` stops at an unreadable clip."""
    if not isinstance(columns, dict) or list(columns.get("path", ())) != names:
        raise SoundAnomalyError("a worker returned rows that do not match its shard (a different library version?)")
    if on_error == "raise":
        for path, status, reason in zip(columns["path"], columns["status"], columns["reason"], strict=True):
            if status == "skipped":
                raise AudioError(path, reason)


def extract_many(
    extractor: Any,
    sources: Sources,
    *,
    client: Any = None,
    executor: Executor | None = None,
    jobs: int | None = None,
    shard_size: int = 256,
    max_in_flight: int | None = None,
    channel: Any = 0,
    allow_http: bool = False,
) -> Any:
    """Features of every clip of ``sources``, extracted on the executor, in listing order.

    Unreadable clips are left out and listed in ``ClipFeatures.skipped``
    (as ``extract(..., on_error="skip")``). The result lives in this
    process's memory: use it to fit a model (see :func:`fit_many`).

    Returns
    -------
    ClipFeatures

    Examples
    --------
    >>> import numpy as np, soundfile as sf, os
    >>> from soundanomaly.features import LogMelFrames
    >>> os.makedirs("line", exist_ok=True)
    >>> for i in range(3):
    ...     sf.write(f"line/{i}.wav", np.zeros(16000, "f4"), 16000)
    >>> features = extract_many(LogMelFrames(), "line", jobs=1, shard_size=2)
    >>> features.paths
    ('line/0.wav', 'line/1.wav', 'line/2.wav')
    """
    import numpy as np

    from soundanomaly.features import ClipFeatures

    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size < 1:
        raise ParameterError(f"shard_size must be a positive int, got {shard_size!r}")
    runner = _Runner(client=client, executor=executor, jobs=jobs, max_in_flight=max_in_flight)
    parts: list[Any] = []
    skipped: list[tuple[str, str]] = []
    queue: collections.deque[tuple[Future[Any], list[str]]] = collections.deque()
    listed = 0
    cancel = True

    def take() -> None:
        future, names = queue.popleft()
        done_ok, result = runner.outcome(future)
        if not done_ok:
            queue.appendleft((runner.submit(extract_shard, extractor, names, channel, allow_http), names))
            return
        features, lost = result
        if features is not None:
            parts.append(features)
        skipped.extend(lost)

    try:
        for _, names in iter_shards(iter_clips(sources), shard_size):
            listed += len(names)
            while len(queue) >= runner.max_in_flight:
                take()
            queue.append((runner.submit(extract_shard, extractor, names, channel, allow_http), names))
        while queue:
            take()
        cancel = False
    finally:
        for future, _ in queue:
            future.cancel()
        runner.close(cancel=cancel)
    if not parts:
        first = skipped[0] if skipped else ("<sources>", "no clips")
        raise AudioError(first[0], f"none of the {listed} clip(s) could be used; the first failed with: {first[1]}")
    offsets = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(p.offsets) for p in parts]))]).astype(np.int64)
    return ClipFeatures(
        np.concatenate([p.windows for p in parts]),
        offsets,
        tuple(path for p in parts for path in p.paths),
        dict(parts[0].params),
        tuple(skipped),
    )


def fit_many(detector: Any, sources: Sources, **options: Any) -> Any:
    """Fit ``detector`` on normal clips: features extracted on the executor (:func:`extract_many`), fitted here.

    ``options`` go to :func:`extract_many` (``client``, ``executor``, ``jobs``, ...).
    Each clip's group key (``"fan/id_00"``) is passed to ``fit`` when its path tells it.

    Returns
    -------
    detector
        Fitted, as ``detector.fit`` returns it.
    """
    extractor = detector.features
    if not callable(getattr(extractor, "extract", None)):
        from soundanomaly.features import BaseFeatureExtractor

        if not isinstance(extractor, BaseFeatureExtractor):
            raise ParameterError(f"{type(detector).__name__}'s features have no extract(); use a BaseFeatureExtractor")
    features = extract_many(extractor, sources, **options)
    keys = [group_of(path) for path in features.paths]
    groups = None if any(key is None for key in keys) else [str(key) for key in keys]
    return detector.fit(features, groups=groups)
