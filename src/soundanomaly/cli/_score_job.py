"""``soundanomaly score`` on every core or a Dask cluster: ``--jobs``, ``--out`` (Parquet, resumable), ``--scheduler``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from soundanomaly.cli._common import EXIT_PARTIAL, add_output, int_type
from soundanomaly.exceptions import AudioError, SoundAnomalyError

__all__ = ["add_jobs_option", "add_scale_options", "run_job", "score_in_parallel"]

_log = logging.getLogger("soundanomaly.cli")


def add_jobs_option(
    parser: Any, *, default_help: str = "every core when there are enough clips to pay for starting them, else 1"
) -> None:
    """``--jobs N`` (score, evaluate, train): worker processes on this machine."""
    parser.add_argument("--jobs", type=int_type(1), help=f"worker processes on this machine (default: {default_help})")


def add_scale_options(parser: argparse.ArgumentParser) -> None:
    """``--jobs``, ``--out``, ``--scheduler`` and ``--shard-size`` of ``score``."""
    group = parser.add_argument_group("many clips: all cores, a Dask cluster, resumable Parquet output")
    add_jobs_option(group)
    add_output(
        group,  # type: ignore[arg-type]  # an argument group adds to its parser
        "--out",
        kind="folder",
        help="write Parquet partitions (path, group, score, label, status, reason) into this folder instead of a "
        "CSV; rerunning the same command resumes an interrupted job",
    )
    group.add_argument(
        "--scheduler",
        help="Dask scheduler address (tcp://host:8786): score on that cluster (needs --out and soundanomaly[dask])",
    )
    group.add_argument(
        "--shard-size",
        type=int_type(1),
        default=4096,
        help="clips per task and per Parquet partition with --out (default: 4096)",
    )


def run_job(args: argparse.Namespace) -> int:
    """``score MODEL SOURCE... --out DIR [--scheduler ADDRESS | --jobs N]``: a resumable Parquet job."""
    from soundanomaly.scale import score_many

    if args.out is None:
        raise SoundAnomalyError("--scheduler needs --out (a folder for the Parquet partitions)")
    if args.csv is not None:
        raise SoundAnomalyError("--csv and --out are exclusive: --out writes Parquet partitions")
    if args.scheduler is not None and args.jobs is not None:
        raise SoundAnomalyError("--jobs sizes a local pool; with --scheduler the cluster's workers do the work")
    client = _client(args.scheduler) if args.scheduler is not None else None
    try:
        summary = score_many(
            args.model,
            args.paths,
            args.out,
            client=client,
            jobs=args.jobs,
            shard_size=args.shard_size,
            on_error="skip" if args.skip_errors else "raise",
            allow_http=args.allow_http,
            progress=not args.quiet,
        )
    except KeyboardInterrupt:
        _log.warning("interrupted: the complete shards are in %s; rerun the same command to resume", args.out)
        raise
    except AudioError as exc:
        raise SoundAnomalyError(
            f"{exc} (the complete shards are kept: fix the clip, or pass --skip-errors, and rerun to resume)"
        ) from exc
    finally:
        if client is not None:
            client.close()
    _log.info(
        "%d clip(s) in %d shard(s) (%d resumed) scored into %s; %d without a valid score",
        summary.clips,
        summary.shards,
        summary.resumed,
        summary.out,
        summary.not_ok,
    )
    return EXIT_PARTIAL if summary.not_ok else 0


def _client(address: str) -> Any:
    try:
        import distributed
    except ImportError as exc:
        from soundanomaly.exceptions import MissingDependencyError

        raise MissingDependencyError("distributed", "dask", "scoring on a Dask cluster (--scheduler)") from exc
    try:
        client_class: Any = distributed.Client
        return client_class(address, timeout="30s")
    except (OSError, TimeoutError) as exc:
        raise SoundAnomalyError(f"cannot reach the Dask scheduler at {address} ({exc})") from exc


def score_in_parallel(args: argparse.Namespace, paths: Sequence[str]) -> list[Any] | None:
    """Score ``paths`` on a local pool when it pays (``--jobs``, else :func:`soundanomaly.scale.auto_jobs`).

    Returns the :class:`~soundanomaly.results.ClipScore` records in input
    order, or None when one process is the better choice (the caller scores
    in this process). Without ``--skip-errors`` the first unreadable clip stops
    the run, as in one process.
    """
    from soundanomaly.cli.score import csv_status
    from soundanomaly.scale import auto_jobs, score_clips

    jobs = args.jobs if args.jobs is not None else auto_jobs(len(paths))
    if jobs <= 1:
        return None
    records = score_clips(
        args.model,
        paths,
        jobs=jobs,
        on_error="skip" if args.skip_errors else "raise",
        allow_http=getattr(args, "allow_http", False),
    )
    for record in records:
        if not record.ok:
            _log.warning("%s: %s (%s)", record.path, csv_status(record), record.reason)
    return records
