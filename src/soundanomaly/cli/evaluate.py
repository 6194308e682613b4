"""``soundanomaly evaluate``: metrics of a saved model on a labelled data folder."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from soundanomaly.cli._common import (
    EXIT_PARTIAL,
    add_output,
    add_selection,
    add_skip_errors,
    chatter,
    check_out_file,
    max_fpr,
    write_json,
)
from soundanomaly.cli._score_job import add_jobs_option, score_in_parallel
from soundanomaly.cli.score import csv_status, model_threshold, score_records
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["add_parser", "run"]

_log = logging.getLogger("soundanomaly.cli")


def add_parser(subparsers: Any) -> None:
    """Add ``evaluate`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    evaluate = subparsers.add_parser(
        "evaluate", parents=[chatter()], help="metrics of a saved model on a labelled MIMII-layout folder"
    )
    evaluate.add_argument("model", help="model folder written by 'train' or 'demo'")
    evaluate.add_argument("data", help="labelled MIMII-layout (or DCASE) folder")
    add_output(evaluate, "--json", kind="file", help="also write the metrics as JSON here")
    evaluate.add_argument("--max-fpr", type=max_fpr, default=0.1, help="pAUC range, in (0, 1] (default: 0.1)")
    evaluate.add_argument(
        "--exclude-training",
        action="store_true",
        help="leave out the clips the model was trained or calibrated on (default: warn about them)",
    )
    add_skip_errors(evaluate)
    add_selection(evaluate)
    add_jobs_option(evaluate)
    evaluate.set_defaults(func=run)


def _training_clips_in(detector: Any, paths: Sequence[str]) -> list[str]:
    """Which ``paths`` the model records as its training clips (none when it records nothing)."""
    if not getattr(detector, "training_clips_", None):
        return []
    from soundanomaly.detectors import find_training_clips

    return list(find_training_clips(detector, list(paths)))


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly evaluate``; returns the exit status."""
    import numpy as np

    from soundanomaly.datasets import open_dataset
    from soundanomaly.detectors import load_model
    from soundanomaly.evaluation import Evaluator

    inputs = [args.data, args.model]
    check_out_file(args.json, inputs, force=args.force)
    detector = load_model(args.model)
    threshold = model_threshold(detector)
    clips = open_dataset(args.data, split="test").filter(ids=args.ids, snr=args.snr)
    seen = _training_clips_in(detector, clips.paths)
    if seen:
        if args.exclude_training:
            keep = set(clips.paths) - set(seen)
            clips = clips.take([i for i, path in enumerate(clips.paths) if path in keep])
            _log.warning("left out %d clip(s) the model was trained or calibrated on", len(seen))
            if not len(clips):
                raise SoundAnomalyError(f"{args.data}: every selected clip was used to train the model")
        else:
            _log.warning(
                "%d of the %d clips (e.g. %s) were used to train or calibrate this model: the metrics are "
                "optimistic (--exclude-training leaves them out)",
                len(seen),
                len(clips),
                seen[0],
            )
    records = score_in_parallel(args, clips.paths) or score_records(
        detector, clips, skip_errors=args.skip_errors, quiet=args.quiet
    )
    ok = [i for i, record in enumerate(records) if record.ok]
    if not ok:
        raise SoundAnomalyError(f"{args.data}: no clip could be scored")
    scores = np.array([record.score for record in records])
    groups = clips.eval_groups
    report = Evaluator(max_fpr=args.max_fpr).evaluate(
        clips.labels[ok], scores[ok], threshold=threshold, groups=[groups[i] for i in ok]
    )
    print(report.to_markdown())
    if all(record.layout.startswith("dcase") for record in clips):
        official = Evaluator(max_fpr=args.max_fpr).dcase_score(clips.take(ok), scores[ok])
        print("\nDCASE Task 2 official score:\n\n" + official.to_markdown())
    left_out = len(records) - len(ok)
    if left_out:
        counts = Counter(csv_status(record) for record in records if not record.ok)
        print(f"\n{left_out} clip(s) left out of the metrics: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if args.json:
        write_json(args.json, report.to_json(), inputs=inputs, force=args.force)
        _log.info("metrics written to %s", args.json)
    return EXIT_PARTIAL if left_out else 0
