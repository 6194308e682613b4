"""``soundanomaly adapt``: a saved model learns a new session from a few normal clips; saved as a new model."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from soundanomaly.cli._common import add_output, chatter, check_out_folder
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["add_parser", "run"]

_log = logging.getLogger("soundanomaly.cli")


def add_parser(subparsers: Any) -> None:
    """Add ``adapt`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    adapt = subparsers.add_parser(
        "adapt",
        parents=[chatter()],
        help="mark a folder of clips as normal (after a maintenance, a speed change, a new day): the model adapts",
    )
    adapt.add_argument("model", help="model folder written by 'train' (left unchanged)")
    adapt.add_argument("data", help="MIMII-layout or DCASE folder of normal clips of the new session")
    add_output(adapt, "--out", kind="folder", required=True, help="new model folder to write")
    adapt.add_argument(
        "--session",
        help="name of the new session (default: each clip's DCASE domain, else 'adapted')",
    )
    adapt.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly adapt``; returns the exit status."""
    from soundanomaly.datasets import open_dataset
    from soundanomaly.detectors import load_model

    inputs = [args.model, args.data]
    check_out_folder(args.out, force=args.force, inputs=inputs)
    detector = load_model(args.model)
    clips = open_dataset(args.data)
    if clips.labelled and clips.labels.any():
        raise SoundAnomalyError(
            f"{args.data}: {int(clips.labels.sum())} clip(s) are labelled abnormal; adapt takes normal clips"
        )
    before = float(detector.threshold_)
    sessions = None if args.session is None else [args.session] * len(clips)
    detector.adapt(clips, sessions=sessions)
    _log.info("adapted on %d clip(s)", len(clips))
    if detector.threshold_ != before:
        _log.info("threshold %.6g -> %.6g", before, detector.threshold_)
    saved = detector.save(args.out, overwrite=args.force, inputs=inputs)
    _log.info("model saved to %s", saved)
    return 0
