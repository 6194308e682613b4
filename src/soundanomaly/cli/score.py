"""``soundanomaly score``: score clips with a saved model; a CSV of path, score, label, status."""

from __future__ import annotations

import argparse
import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

from soundanomaly.cli._common import EXIT_PARTIAL, add_skip_errors, chatter, check_out_file, wav_paths, write_csv
from soundanomaly.cli._score_job import add_scale_options, run_job, score_in_parallel
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["SCORE_CHUNK", "Scored", "add_parser", "model_threshold", "run", "score_paths"]

_log = logging.getLogger("soundanomaly.cli")

#: Clips scored per ``detector.score`` call (the unit of progress and of error isolation).
SCORE_CHUNK = 32


def add_parser(subparsers: Any) -> None:
    """Add ``score`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    score = subparsers.add_parser(
        "score", parents=[chatter()], help="score clips with a saved model: CSV of path, score, label, status"
    )
    score.add_argument("model", help="model folder written by 'train' or 'demo'")
    score.add_argument(
        "paths", nargs="+", help=".wav files (or s3:// URLs) or folders (searched recursively for *.wav, any case)"
    )
    score.add_argument("--csv", help="write the CSV here instead of stdout (never over an input)")
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


def _file_rate(path: str) -> int | None:
    if "://" in path:
        return None
    import soundfile as sf

    try:
        return int(sf.info(path).samplerate)
    except Exception:  # only informative: the scoring itself reports unreadable clips
        return None


class Scored:
    """Per-clip outcome of a scoring run: ``score`` (NaN unless ok), ``status`` (ok/invalid/error), ``reason``."""

    def __init__(self, n: int) -> None:
        import numpy as np

        self.scores = np.full(n, np.nan)
        self.status = ["ok"] * n
        self.reason = [""] * n

    def fail(self, index: int, status: str, reason: str) -> None:
        """Mark clip ``index`` as not scored."""
        self.status[index] = status
        self.reason[index] = reason

    @property
    def ok(self) -> list[int]:
        """Indices of the clips with a valid score."""
        return [i for i, s in enumerate(self.status) if s == "ok"]


def score_paths(detector: Any, paths: Sequence[str], *, skip_errors: bool, quiet: bool, desc: str) -> Scored:
    """Score clips through the detector's public ``score`` only (any detector works), with one progress bar.

    Clips are scored in chunks of :data:`SCORE_CHUNK`. A chunk that fails with
    an unreadable clip (``--skip-errors``) or a non-finite score is re-scored
    clip by clip to find the culprits. A NaN/inf score is status ``invalid``,
    never a normal; an unreadable clip is ``error`` (without ``--skip-errors``
    it stops the run).
    """
    import numpy as np

    from soundanomaly._progress import ProgressBar
    from soundanomaly.exceptions import AudioError, InvalidScoreError, InvalidScoreWarning

    result = Scored(len(paths))

    def run(chunk: Sequence[str]) -> Any:
        with warnings.catch_warnings():  # each clip without a valid score is reported below, once
            warnings.simplefilter("ignore", InvalidScoreWarning)
            scores = np.asarray(detector.score(list(chunk)), dtype=np.float64)
        if scores.shape != (len(chunk),):
            raise SoundAnomalyError(f"the detector returned {scores.shape} scores for {len(chunk)} clips")
        return scores

    if getattr(detector, "progress", False) is True:
        detector.progress = False  # this function draws the one bar of the run
    bar = ProgressBar(total=len(paths), desc=desc, enabled=not quiet)  # closed on success only: no bar after an error
    for start in range(0, len(paths), SCORE_CHUNK):
        chunk = paths[start : start + SCORE_CHUNK]
        try:
            result.scores[start : start + len(chunk)] = run(chunk)
            statuses = getattr(detector, "last_status_", None)
            if isinstance(statuses, tuple) and len(statuses) == len(chunk):
                for j, text in enumerate(statuses):
                    if isinstance(text, str) and text.startswith("skipped"):
                        result.fail(start + j, "error", text.partition(": ")[2] or text)
        except (AudioError, InvalidScoreError) as exc:
            if isinstance(exc, AudioError) and not skip_errors:
                raise
            for j, path in enumerate(chunk):
                try:
                    result.scores[start + j] = run([path])[0]
                except InvalidScoreError:
                    result.fail(start + j, "invalid", "NaN or infinite score")
                except AudioError as clip_error:
                    if not skip_errors:
                        raise
                    result.fail(start + j, "error", clip_error.problem)
        bar.update(len(chunk))
    bar.close()
    for i in map(int, np.flatnonzero(~np.isfinite(result.scores))):
        if result.status[i] == "ok":
            result.fail(i, "invalid", "NaN or infinite score")
    for i, status in enumerate(result.status):
        if status != "ok":
            _log.warning("%s: %s (%s)", paths[i], status, result.reason[i])
    return result


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly score``; returns the exit status."""
    from soundanomaly.audio import allow_http
    from soundanomaly.detectors import load_model

    if args.out is not None or args.scheduler is not None:
        return run_job(args)
    paths = wav_paths(args.paths)
    inputs = [*paths, args.model]
    check_out_file(args.csv, inputs)
    detector = load_model(args.model)
    threshold = model_threshold(detector)
    with allow_http(args.allow_http):
        scored = score_in_parallel(args, paths, Scored(len(paths)))
        if scored is None:
            scored = score_paths(detector, paths, skip_errors=args.skip_errors, quiet=args.quiet, desc="scoring")
    model_rate = _model_rate(detector)
    header = ["path", "score", "label", "status", "reason", "resampled_from_hz"]
    rows = []
    for i, path in enumerate(paths):
        ok = scored.status[i] == "ok"
        rate = _file_rate(path) if model_rate is not None else None
        rows.append(
            [
                path,
                f"{scored.scores[i]:.6g}" if ok else "",
                ("anomaly" if scored.scores[i] > threshold else "normal") if ok else "anomaly",  # fail closed
                scored.status[i],
                scored.reason[i],
                str(rate) if rate is not None and rate != model_rate else "",
            ]
        )
    write_csv(args.csv, header, rows, inputs=inputs)
    if args.csv:
        _log.info("scores of %d clip(s) written to %s", len(rows), args.csv)
    return EXIT_PARTIAL if len(scored.ok) < len(paths) else 0
