"""``soundanomaly export``: write a saved model as one portable file (ONNX for gateways, TFLite for microcontrollers)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from soundanomaly.cli._common import add_output, chatter, float_type, require_tensorflow

__all__ = ["add_parser", "run"]

_log = logging.getLogger("soundanomaly.cli")


def add_parser(subparsers: Any) -> None:
    """Add ``export`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    export = subparsers.add_parser(
        "export",
        parents=[chatter()],
        help="export a saved model as one ONNX file (raw audio in, score out) or a TFLite model part for TFLite Micro",
    )
    export.add_argument("model", help="model folder written by 'soundanomaly train'")
    export.add_argument("--format", required=True, choices=["onnx", "tflite"], help="onnx (gateways) or tflite (MCUs)")
    export.add_argument("--int8", action="store_true", help="tflite: full-integer int8, calibrated on training clips")
    add_output(
        export, "--out", kind="file", required=True, help="file to write (tflite: a C header is written beside it, +.h)"
    )
    export.add_argument(
        "--window",
        type=float_type(0.0, 600.0, high_open=False),
        default=10.0,
        help="onnx: seconds of audio one inference scores (default: 10, MIMII's clip length)",
    )
    export.add_argument("--group", help="per-id model: the machine id / section to export (one file per group)")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly export``; returns the exit status."""
    from soundanomaly.export import export_model

    if args.format == "tflite":
        require_tensorflow("TFLite export")
    out = export_model(
        args.model,
        format=args.format,
        out=args.out,
        int8=args.int8,
        window_seconds=args.window,
        group=args.group,
        force=args.force,
    )
    _log.info("wrote %s", out)
    return 0
