"""What every ``soundanomaly`` command shares: argument types, ``-q/-v``, logging, output checks and writers.

A command module (``cli/score.py``, ...) adds its parser with
``add_parser(subparsers)`` and gives it :func:`chatter` as a parent, so every
command takes ``-q/--quiet`` and ``-v/--verbose``. Outputs are checked before
any work (:func:`check_out_folder`, :func:`check_out_file`) and written
atomically through one CSV writer (:func:`write_csv`, no spreadsheet
formulas in text cells) and one JSON writer (:func:`write_json`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from soundanomaly.exceptions import SoundAnomalyError

__all__ = [
    "EXIT_ERROR",
    "EXIT_PARTIAL",
    "Parser",
    "add_selection",
    "add_skip_errors",
    "chatter",
    "check_out_file",
    "check_out_folder",
    "float_type",
    "int_type",
    "local",
    "logging_to_stderr",
    "require_tensorflow",
    "show_warning",
    "silence_tensorflow",
    "snr_type",
    "wav_paths",
    "write_csv",
    "write_json",
]

#: Exit status of a run that finished but left clips out or got invalid scores.
EXIT_PARTIAL = 1
#: Exit status of an error (nothing, or nothing complete, was written).
EXIT_ERROR = 2


# -- argument types: every value is checked when the command line is parsed --------------------------
def int_type(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum``.

    Examples
    --------
    >>> int_type(1)("3")
    3
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def float_type(low: float, high: float, *, low_open: bool = True, high_open: bool = True) -> Callable[[str], float]:
    """An argparse ``type`` for finite numbers in an interval (open ends by default).

    Examples
    --------
    >>> float_type(0.0, 1.0)("0.25")
    0.25
    """

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be in {interval}, got {text}")
        return value

    return parse


def snr_type(text: str) -> float:
    """An argparse ``type`` for a finite SNR in dB.

    Examples
    --------
    >>> snr_type("-6")
    -6.0
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (dB), got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (dB), got {text}")
    return value


positive = int_type(1)
non_negative = int_type(0)
fpr = float_type(0.0, 1.0)
fraction = float_type(0.0, 1.0, low_open=False)
max_fpr = float_type(0.0, 1.0, high_open=False)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``soundanomaly: error: ...``), exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line on stderr and exit with :data:`EXIT_ERROR`."""
        self.exit(EXIT_ERROR, f"soundanomaly: error: {message} (see '{self.prog} --help')\n")


def chatter() -> argparse.ArgumentParser:
    """The parent parser of every command: ``-q/--quiet`` and ``-v/--verbose``.

    Examples
    --------
    >>> args = argparse.ArgumentParser(parents=[chatter()]).parse_args(["-q"])
    >>> args.quiet, args.verbose
    (True, 0)
    """
    parent = Parser(add_help=False)
    parent.add_argument("-q", "--quiet", action="store_true", help="no progress bars or status lines (warnings only)")
    parent.add_argument("-v", "--verbose", action="count", default=0, help="debug output on stderr")
    return parent


def add_skip_errors(p: argparse.ArgumentParser) -> None:
    """``--skip-errors`` (train, score, evaluate)."""
    p.add_argument(
        "--skip-errors",
        action="store_true",
        help="leave out clips that cannot be read, report them on stderr (and in the CSV), finish, exit 1",
    )


def add_selection(p: argparse.ArgumentParser) -> None:
    """``--ids`` and ``--snr`` (train, evaluate)."""
    p.add_argument("--ids", type=non_negative, nargs="+", help="machine ids to use (default: all)")
    p.add_argument("--snr", type=snr_type, nargs="+", help="SNRs in dB to use (default: all)")


# -- logging and warnings ------------------------------------------------------------------------------
class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno >= logging.ERROR:
            return f"soundanomaly: error: {message}"
        if record.levelno >= logging.WARNING:
            return f"soundanomaly: warning: {message}"
        return message


@contextlib.contextmanager
def logging_to_stderr(quiet: bool, verbose: int) -> Iterator[None]:
    """For one command: the ``soundanomaly`` logger prints to stderr; its previous state is restored after."""
    logger = logging.getLogger("soundanomaly")
    saved = logger.level, logger.propagate
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for the command line: one ``soundanomaly: warning:`` line."""
    logging.getLogger("soundanomaly").warning("%s", message)


def silence_tensorflow() -> None:
    """TensorFlow's start-up banners (CUDA, oneDNN, absl) are noise on a command line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("absl").setLevel(logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def require_tensorflow(purpose: str) -> None:
    """Fail before any work (feature extraction) when the ``tf`` extra is missing; then import it quietly."""
    import importlib.util

    from soundanomaly.exceptions import MissingDependencyError

    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError("tensorflow", "tf", purpose)
    _import_tensorflow_quietly()


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr (fd 2) muted.

    Recent TensorFlow logs from C++ (absl) before ``TF_CPP_MIN_LOG_LEVEL`` is
    honoured ("oneDNN custom operations are on", CUDA probes). Import errors
    are not hidden: the import is simply retried, with stderr, where it is used.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreter): just import normally later
        return
    try:
        os.dup2(devnull, 2)
        with contextlib.suppress(Exception):  # a failing import is reported again, with stderr, where it is used
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# -- inputs and outputs --------------------------------------------------------------------------------
def wav_paths(items: Sequence[str]) -> list[str]:
    """Clips named on the command line: files as given, folders searched for ``*.wav`` (any case, as ``MIMII``)."""
    paths: list[str] = []
    for item in items:
        path = Path(item)
        if "://" not in item and path.is_dir():
            found = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
            if not found:
                raise SoundAnomalyError(f"{item}: folder holds no .wav files")
            paths += found
        else:
            paths.append(item)
    return paths


def local(paths: Sequence[str]) -> list[str]:
    """The local paths among ``paths`` (URLs left out)."""
    return [p for p in paths if "://" not in p]


def check_out_folder(out: str, *, force: bool, inputs: Sequence[str]) -> None:
    """Refuse, before any work, an output folder that ``save`` would refuse after it."""
    from soundanomaly._safeio import check_output_folder

    check_output_folder(out, inputs=local(inputs), overwrite=force)


def check_out_file(target: str | None, inputs: Sequence[str]) -> None:
    """Refuse, before any work, an output file over (or holding) an input, or in a missing folder."""
    if target:
        from soundanomaly._safeio import check_output_file

        check_output_file(target, inputs=local(inputs))
        parent = Path(os.path.abspath(target)).parent
        if not parent.is_dir():
            raise SoundAnomalyError(f"{target}: cannot write: {parent} is not an existing folder")


def _write_rows(
    handle: IO[str], header: Sequence[str], rows: Sequence[Sequence[object]], text: Collection[str]
) -> None:
    from soundanomaly._safeio import safe_csv_cell

    columns = [i for i, name in enumerate(header) if name in text]
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows([[safe_csv_cell(v) if i in columns else v for i, v in enumerate(row)] for row in rows])


def write_csv(
    target: str | Path | None,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    text_columns: Collection[str] = ("path", "status", "reason"),
    inputs: Sequence[str] = (),
) -> None:
    """Write a CSV table to ``target`` atomically (never over an input), or to stdout when ``target`` is None.

    Cells of ``text_columns`` go through ``safe_csv_cell``: text a spreadsheet
    would run as a formula gets a leading ``'``.

    Examples
    --------
    >>> write_csv("scores.csv", ["path", "score"], [["=cmd|x", "0.5"]])
    >>> print(Path("scores.csv").read_text(), end="")
    path,score
    '=cmd|x,0.5
    """
    if target is None:
        _write_rows(sys.stdout, header, rows, text_columns)
        sys.stdout.flush()
        return
    from soundanomaly._safeio import atomic_file

    with atomic_file(target, "w", newline="", inputs=local([os.fspath(i) for i in inputs])) as handle:
        _write_rows(handle, header, rows, text_columns)


def write_json(target: str | Path, text_or_data: str | Any, *, inputs: Sequence[str] = ()) -> None:
    """Write JSON (a ready string, or data to dump) to ``target`` atomically, never over an input.

    Examples
    --------
    >>> write_json("m.json", {"auc": 0.9})
    >>> Path("m.json").read_text()
    '{"auc": 0.9}'
    """
    from soundanomaly._safeio import atomic_file

    text = text_or_data if isinstance(text_or_data, str) else json.dumps(text_or_data)
    with atomic_file(target, "w", inputs=local(list(inputs))) as handle:
        handle.write(text)
