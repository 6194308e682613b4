"""``soundanomaly demo``: train and evaluate on synthetic fans (or ``--data``) and write a report."""

from __future__ import annotations

import argparse
from typing import Any

from soundanomaly.cli._common import (
    add_output,
    chatter,
    check_cache_dir,
    check_out_folder,
    fpr,
    non_negative,
    positive,
    require_tensorflow,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``demo`` to the ``soundanomaly`` sub-command parsers (``parser.add_subparsers()``)."""
    demo = subparsers.add_parser(
        "demo", parents=[chatter()], help="train and evaluate on synthetic fans (or --data) and write a report"
    )
    demo.add_argument("--data", help="MIMII-layout folder (default: synthetic fans, generated and cached)")
    add_output(demo, "--out", kind="folder", default="report", help="report folder (default: report)")
    demo.add_argument("--epochs", type=positive, default=30, help="autoencoder epochs (default: 30)")
    demo.add_argument("--target-fpr", type=fpr, default=0.01, help="false-alarm rate on validation clips (0.01)")
    demo.add_argument("--normal-per-id", type=positive, default=100, help="synthetic normal clips per fan id (100)")
    demo.add_argument("--abnormal-per-id", type=positive, default=30, help="synthetic abnormal clips per fan id (30)")
    demo.add_argument("--seed", type=non_negative, default=0, help="random seed (default: 0)")
    add_output(
        demo,
        "--cache-dir",
        kind="cache",
        help="cache for the synthetic set and features (default: ~/.cache/soundanomaly)",
    )
    demo.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``soundanomaly demo``; returns the exit status."""
    inputs = [args.data] if args.data else []
    check_cache_dir(args.cache_dir, [*inputs, args.out])
    if args.cache_dir:
        inputs.append(args.cache_dir)
    check_out_folder(args.out, force=args.force, inputs=inputs)
    require_tensorflow("the demo (it trains the autoencoder)")
    from soundanomaly.demo import run_demo

    synthetic = {"n_normal": args.normal_per_id, "n_abnormal": args.abnormal_per_id} if args.data is None else None
    run_demo(
        args.out,
        data=args.data,
        epochs=args.epochs,
        target_fpr=args.target_fpr,
        seed=args.seed,
        cache_dir=args.cache_dir,
        progress=not args.quiet,
        synthetic_params=synthetic,
        overwrite=args.force,
    )
    return 0
