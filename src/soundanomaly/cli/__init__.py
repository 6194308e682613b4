"""The ``soundanomaly`` command line: demo, explore, train, score, evaluate, download, monitor, scan.

Errors print one line (``soundanomaly: error: ...``) on stderr and exit with
status 2; arguments are checked before any work. A run that finished but left
clips out (``--skip-errors``) or got an invalid (NaN/inf) score exits with 1.
Status and warnings go to stderr through the ``soundanomaly`` logger (every
command takes ``-q/--quiet``: warnings only, and ``-v``: debug); results go to
stdout or files.

Each command is one module of this package exposing ``add_parser(subparsers)``;
adding a command is one new module and one line in :data:`COMMANDS`. What the
commands share (argument types, ``-q/-v``, output checks, the CSV and JSON
writers) is in ``soundanomaly.cli._common``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Sequence

from soundanomaly import __version__
from soundanomaly.cli._common import (
    EXIT_ERROR,
    EXIT_PARTIAL,
    Parser,
    logging_to_stderr,
    safe_text,
    show_warning,
    silence_tensorflow,
)
from soundanomaly.exceptions import SoundAnomalyError

__all__ = ["COMMANDS", "EXIT_ERROR", "EXIT_PARTIAL", "build_parser", "main"]

#: The command modules (``soundanomaly.cli.<name>``), in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "explore",
    "train",
    "adapt",
    "score",
    "evaluate",
    "download",
    "monitor",
    "scan",
    "export",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs).

    Examples
    --------
    >>> args = build_parser().parse_args(["score", "model", "clips/", "--skip-errors"])
    >>> args.paths, args.skip_errors, args.csv
    (['clips/'], True, None)
    """
    parser = Parser(
        prog="soundanomaly",
        description="Detect malfunctioning machines by their sound (MIMII-style recordings).",
        epilog="Start with 'soundanomaly demo': it needs no download. Exit status: 0 done, 1 done but some clips "
        "were skipped or scored invalid, 2 error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"soundanomaly.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``soundanomaly`` console script; returns the exit status (0, 1 or 2).

    0: done; 1: done, but some clips were skipped (``--skip-errors``) or got
    an invalid (NaN/inf) score; 2: error (one line on stderr).

    Examples
    --------
    >>> main(["score", "no-such-model", "clip.wav"])  # stderr: soundanomaly: error: ... not a saved model
    2
    """
    silence_tensorflow()
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet, verbose = bool(getattr(args, "quiet", False)), int(getattr(args, "verbose", 0) or 0)
    from soundanomaly.exceptions import SoundAnomalyWarning

    with logging_to_stderr(quiet, verbose), warnings.catch_warnings():
        warnings.showwarning = show_warning
        warnings.simplefilter("default", SoundAnomalyWarning)
        warnings.filterwarnings("default", category=UserWarning, module="soundanomaly")
        try:
            return int(args.func(args))
        except SoundAnomalyError as exc:
            print(f"soundanomaly: error: {safe_text(exc)}", file=sys.stderr)
            return EXIT_ERROR
        except OSError as exc:  # disk full, permissions, a path that vanished: one line, never a traceback
            where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
            print(f"soundanomaly: error: {safe_text(where)}{exc.strerror or exc}", file=sys.stderr)
            return EXIT_ERROR
        except KeyboardInterrupt:
            print("soundanomaly: interrupted", file=sys.stderr)
            return 130
