"""``soundanomaly train``: train on the normal clips of a data folder and save the model."""

from __future__ import annotations

import argparse
import inspect
import logging
from typing import Any

from soundanomaly import registry
from soundanomaly.cli._common import (
    EXIT_PARTIAL,
    add_output,
    add_selection,
    add_skip_errors,
    chatter,
    check_out_folder,
    fpr,
    fraction,
    non_negative,
    positive,
    require_tensorflow,
)
from soundanomaly.cli._score_job import add_jobs_option
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["add_parser", "run"]

_log = logging.getLogger("soundanomaly.cli")


def add_parser(subparsers: Any) -> None:
    """Add ``train`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    train = subparsers.add_parser(
        "train", parents=[chatter()], help="train on the normal clips of a MIMII-layout folder and save the model"
    )
    train.add_argument("data", help="MIMII-layout folder")
    add_output(
        train, "--out", kind="folder", required=True, help="model folder to write ('.' works in an empty folder)"
    )
    train.add_argument(
        "--detector",
        choices=registry.cli_names(),  # every detector of soundanomaly.registry with a command-line name
        default="autoencoder",
        help="model (default: autoencoder, the reference recipe; clipstats with --per-id holds up best in noise)",
    )
    train.add_argument(
        "--per-id",
        action="store_true",
        help="one model and one calibrated threshold per machine id (MIMII) or section (DCASE), saved as one model",
    )
    train.add_argument("--epochs", type=positive, default=30, help="autoencoder/machine-id epochs (default: 30)")
    train.add_argument(
        "--validation-fraction",
        type=fraction,
        default=0.2,
        help="share of the normal clips held out to calibrate the threshold, in [0, 1) (default: 0.2)",
    )
    train.add_argument(
        "--target-fpr", type=fpr, default=0.01, help="false-alarm rate on held-out normal clips, in (0, 1) (0.01)"
    )
    train.add_argument("--channel", type=int, default=0, help="microphone (default: 0; -1 = the last)")
    train.add_argument("--seed", type=non_negative, default=0, help="random seed (default: 0)")
    add_skip_errors(train)
    add_selection(train)
    add_jobs_option(train, default_help="1: shipping features between processes costs what computing them does")
    train.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly train``; returns the exit status."""
    from soundanomaly.calibration import ThresholdCalibrator
    from soundanomaly.datasets import open_dataset
    from soundanomaly.detectors import BaseDetector, PerGroup

    check_out_folder(args.out, force=args.force, inputs=[args.data])
    if registry.entry_of(args.detector).extra == "tf":
        require_tensorflow(f"training the {args.detector} detector")
    normal = open_dataset(args.data, split="train").filter(ids=args.ids, snr=args.snr, label="normal")
    if len(normal) < 2:
        raise SoundAnomalyError(f"{args.data}: fewer than 2 normal clips to train on (after --ids/--snr filters)")
    common: dict[str, Any] = {
        "channel": args.channel,
        "threshold": ThresholdCalibrator("target_fpr", target_fpr=args.target_fpr),
        "holdout": args.validation_fraction,
        "random_state": args.seed,
    }
    verbose = 2 if args.verbose else 0  # Keras' per-epoch lines only with -v
    cls = registry.get("detector", args.detector)
    takes = set(inspect.signature(cls).parameters)
    optional = {"epochs": args.epochs, "seed": args.seed, "verbose": verbose}  # for the detectors that have them
    detector: BaseDetector = cls(**common, **{k: v for k, v in optional.items() if k in takes})
    if args.per_id:  # one model (and one calibrated threshold) per machine id / DCASE section
        detector = PerGroup(detector, random_state=args.seed)
    _log.info(
        "training %s on %d normal clips (%g held out to calibrate)",
        args.detector,
        len(normal),
        args.validation_fraction,
    )
    # run options are this run's choice, never saved with the model
    run_options = {
        "progress": not args.quiet,
        "on_error": "skip" if args.skip_errors else "raise",
        # feature extraction workers: 1 unless asked (the features travel back to this process, which cost
        # as much as computing them: benchmarks/scale.py measured a pool 1.1-4x slower on 2 cores)
        "n_jobs": args.jobs or 1,
    }
    detector.fit(normal, options=run_options)
    skipped = list(getattr(detector, "fit_skipped_", ()))  # each one was logged when it was skipped
    calibration = getattr(detector, "calibration_", None)
    held_out = len(getattr(detector, "holdout_scores_", ()))
    where = f"{held_out} held-out normal clips" if held_out else "the training clips (nothing held out)"
    if calibration is not None:
        _log.info("threshold %.6g (target_fpr=%g on %s)", detector.threshold_, args.target_fpr, where)
    saved = detector.save(args.out, overwrite=args.force, inputs=[args.data])
    _log.info("model saved to %s", saved)
    if skipped:
        _log.warning("%d of %d clip(s) could not be read and were left out", len(skipped), len(normal))
        return EXIT_PARTIAL
    return 0
