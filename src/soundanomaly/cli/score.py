"""``soundanomaly score``: score clips with a saved model; a CSV of path, score, label, status."""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from typing import Any

from soundanomaly.cli._common import (
    EXIT_PARTIAL,
    add_output,
    add_skip_errors,
    chatter,
    check_out_file,
    wav_paths,
    write_csv,
)
from soundanomaly.cli._score_job import add_scale_options, run_job, score_in_parallel
from soundanomaly.exceptions import SoundAnomalyError
from soundanomaly.results import ClipScore

__all__ = ["add_parser", "csv_status", "model_threshold", "run", "score_records"]

_log = logging.getLogger("soundanomaly.cli")


def add_parser(subparsers: Any) -> None:
    """Add ``score`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    score = subparsers.add_parser(
        "score", parents=[chatter()], help="score clips with a saved model: CSV of path, score, label, status"
    )
    score.add_argument("model", help="model folder written by 'train' or 'demo'")
    score.add_argument(
        "paths",
        nargs="+",
        help=".wav files (or s3:// URLs) or folders (searched recursively for *.wav, any case); with --out also "
        "globs ('data/*/id_00/**/*.wav') and s3:// prefixes, listed lazily",
    )
    add_output(score, "--csv", kind="file", help="write the CSV here instead of stdout (never over an input)")
    score.add_argument(
        "--allow-http", action="store_true", help="also fetch http(s):// URLs (off: only local files and s3://)"
    )
    add_skip_errors(score)
    add_scale_options(score)
    score.set_defaults(func=run)


def model_threshold(detector: Any) -> float:
    """The loaded detector's ``threshold_`` (protocol attribute), as a finite float."""
    value = getattr(detector, "threshold_", None)
    try:
        threshold = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        threshold = math.nan
    if not math.isfinite(threshold):
        raise SoundAnomalyError(f"the model has no usable threshold_ (got {value!r})")
    return threshold


def _model_rate(detector: Any) -> int | None:
    rate = getattr(getattr(detector, "features", None), "sr", None)
    return int(rate) if isinstance(rate, int) else None


def csv_status(record: ClipScore) -> str:
    """The CSV's status column: ``ok``, ``invalid`` (NaN/inf score) or ``error`` (the clip could not be read)."""
    return "error" if record.status == "skipped" else "invalid" if not record.ok else "ok"


def _set_run_options(detector: Any, *, progress: bool, on_error: str) -> None:
    """This run's choices (the model's saved defaults do not apply to a command line)."""
    configure = getattr(detector, "set_run_options", None)
    if callable(configure):
        configure(progress=progress, on_error=on_error)
        return
    for name, value in (("progress", progress), ("on_error", on_error)):  # a detector written to the protocol
        if hasattr(detector, name):
            setattr(detector, name, value)


def score_records(detector: Any, data: Any, *, skip_errors: bool, quiet: bool) -> list[ClipScore]:
    """Score clips into :class:`~soundanomaly.results.ClipScore` records, one per clip, aligned with ``data``.

    A library detector describes each clip itself (``score_records``: status,
    reason, source sample rate, the one predict rule). Without
    ``skip_errors`` the first unreadable clip stops the run (its error is
    raised); a NaN/inf score never stops it: that clip is ``invalid`` and
    labelled an anomaly. A detector written only to the protocol (``score``
    and ``threshold_``) gets records from its scores.
    """
    import numpy as np

    from soundanomaly.exceptions import InvalidScoreError, InvalidScoreWarning
    from soundanomaly.results import clip_scores, label_scores

    paths = list(getattr(data, "paths", data))
    with warnings.catch_warnings():  # each clip without a valid score is logged below, once
        warnings.simplefilter("ignore", InvalidScoreWarning)
        if not callable(getattr(detector, "score_records", None)):
            scores = np.asarray(detector.score(paths), dtype=np.float64)
            if scores.shape != (len(paths),):
                raise SoundAnomalyError(f"the detector returned {scores.shape} scores for {len(paths)} clips")
            records = clip_scores(paths, scores, label_scores(scores, model_threshold(detector)))
        else:
            _set_run_options(detector, progress=not quiet, on_error="skip" if skip_errors else "raise")
            try:
                records = list(detector.score_records(data))
            except InvalidScoreError:  # a NaN score is reported per clip, never a stop: score again, skipping
                _set_run_options(detector, progress=not quiet, on_error="skip")
                records = list(detector.score_records(data))
                unreadable = [r for r in records if r.status == "skipped"]
                if unreadable and not skip_errors:
                    raise SoundAnomalyError(f"{unreadable[0].path}: {unreadable[0].reason}") from None
    if len(records) != len(paths):
        raise SoundAnomalyError(f"the detector described {len(records)} clips for {len(paths)} clips")
    for record in records:
        if not record.ok:
            _log.warning("%s: %s (%s)", record.path, csv_status(record), record.reason)
    return records


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly score``; returns the exit status."""
    from soundanomaly.audio import allow_http
    from soundanomaly.detectors import load_model

    if args.out is not None or args.scheduler is not None:
        return run_job(args)
    paths = wav_paths(args.paths)
    inputs = [*args.paths, *paths, args.model]
    check_out_file(args.csv, inputs, force=args.force)
    detector = load_model(args.model)
    model_threshold(detector)  # refuse a model without a usable threshold before any work
    with allow_http(args.allow_http):
        records = score_in_parallel(args, paths) or score_records(
            detector, paths, skip_errors=args.skip_errors, quiet=args.quiet
        )
    model_rate = _model_rate(detector)
    header = ["path", "score", "label", "status", "reason", "resampled_from_hz"]
    rows = [
        [
            record.path,
            f"{record.score:.6g}" if record.ok else "",
            "anomaly" if record.label else "normal",  # label_scores: a clip without a valid score is an anomaly
            csv_status(record),
            record.reason,
            str(record.source_sr) if record.source_sr is not None and record.source_sr != model_rate else "",
        ]
        for record in records
    ]
    write_csv(args.csv, header, rows, inputs=inputs, force=args.force)
    if args.csv:
        _log.info("scores of %d clip(s) written to %s", len(rows), args.csv)
    return EXIT_PARTIAL if not all(record.ok for record in records) else 0
