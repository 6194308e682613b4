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
import re
import sys
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from soundanomaly.exceptions import SoundAnomalyError

__all__ = [
    "EXIT_ERROR",
    "EXIT_PARTIAL",
    "OUTPUT_KINDS",
    "Parser",
    "add_output",
    "add_selection",
    "add_skip_errors",
    "chatter",
    "check_cache_dir",
    "check_out_file",
    "check_out_files",
    "check_out_folder",
    "fill_csv",
    "float_type",
    "int_type",
    "local",
    "logging_to_stderr",
    "require_tensorflow",
    "safe_text",
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
def int_type(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type`` for integers ``>= minimum`` (and ``<= maximum`` when given).

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
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
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
    """argparse with one-line errors (``soundanomaly: error: ...``), exit status 2.

    Values such as ``-inf``, ``-1e5`` or ``-.5`` count as negative numbers (argparse's own
    rule takes them for options: "expected one argument"), so ``--threshold -inf`` reaches
    the option's type check and is refused there with its reason.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(?:\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?|inf|infinity|nan)$", re.IGNORECASE
        )

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
def safe_text(text: object) -> str:
    """A name or message as printed by the command line: control characters escaped (one line, no ESC codes).

    Examples
    --------
    >>> print(safe_text("a" + chr(10) + "soundanomaly: error: forged" + chr(27) + "[2J"))
    a\\nsoundanomaly: error: forged\\x1b[2J
    """
    from soundanomaly._printable import printable

    return printable(text)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = safe_text(record.getMessage())  # a file name cannot forge a line or move the cursor
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
            from soundanomaly.audio import find_clips

            found = [str(p) for p in find_clips(path)]  # as MIMII/DCASE: by name; a non-file entry is reported
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


#: Kinds of output options: one file, a folder of named files, a file appended to, a model/report folder, a cache.
OUTPUT_KINDS = ("file", "files", "append", "folder", "cache")


def add_output(
    p: argparse.ArgumentParser, flag: str, *, kind: str, help: str, force: bool = True, **kwargs: Any
) -> argparse.Action:
    """Add an output option, tagged with its kind (``action.output_kind``), and ``--force`` once per command.

    Every option that writes goes through here, so the robustness suite finds
    them all by walking the parser (``tests/test_output_rule.py``), and every
    one follows the one rule of :mod:`soundanomaly._safefiles` (file outputs)
    or :func:`soundanomaly._safeio.atomic_dir` (folders).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_output(parser, "--csv", kind="file", help="write the CSV here").output_kind
    'file'
    >>> parser.parse_args(["--csv", "a.csv", "--force"]).force
    True
    """
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    action = p.add_argument(flag, help=help, **kwargs)
    action.output_kind = kind  # type: ignore[attr-defined]
    if force and not any("--force" in a.option_strings for a in p._actions):
        p.add_argument(
            "--force",
            action="store_true",
            help="replace existing outputs soundanomaly did not write (never an input, never inside one)",
        )
    return action


def check_out_file(target: str | None, inputs: Sequence[str], *, force: bool = False, append: bool = False) -> None:
    """Refuse, before any work, an output file the one rule forbids (see :mod:`soundanomaly._safefiles`).

    Never an input, inside one or holding one; never inside a model folder;
    never over a file soundanomaly did not write unless ``force``; its folder must exist.
    """
    if target:
        from soundanomaly._safefiles import check_output_file

        check_output_file(target, inputs=local(inputs), overwrite=force, append=append)
        parent = Path(os.path.abspath(target)).parent
        if not parent.is_dir():
            raise SoundAnomalyError(f"{target}: cannot write: {parent} is not an existing folder")


def check_out_files(out: str | Path, names: Sequence[str], inputs: Sequence[str], *, force: bool = False) -> None:
    """Refuse, before any work, a folder of outputs (``scan --out``, ``explore --out``) the rule forbids.

    The folder may be new or existing (a user's folder too): what counts is
    each file written into it, checked as :func:`check_out_file` does.
    """
    from soundanomaly._safefiles import check_output_file

    folder = Path(out).absolute()
    ancestor = folder
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SoundAnomalyError(f"{out}: cannot write there: {ancestor} is a file, not a folder")
    for name in names:
        check_output_file(folder / name, inputs=local(inputs), overwrite=force)


def check_cache_dir(cache: str | None, inputs: Sequence[str]) -> None:
    """A cache folder may not be, contain or lie inside an input (a data or model folder, a clip)."""
    if not cache:
        return
    from soundanomaly._safeio import contains_path, resolved_path

    folder = resolved_path(cache)
    if folder.exists() and not folder.is_dir():
        raise SoundAnomalyError(f"{cache}: the cache must be a folder, and this is a file")
    for item in local(inputs):
        source = resolved_path(item)
        if contains_path(folder, source) or contains_path(source, folder):
            raise SoundAnomalyError(
                f"{cache}: refusing to use as a cache: it is, holds or lies inside the input {item}"
            )


def _write_rows(
    handle: IO[str], header: Sequence[str], rows: Sequence[Sequence[object]], text: Collection[str]
) -> None:
    from soundanomaly._safefiles import safe_csv_cell

    columns = [i for i, name in enumerate(header) if name in text]
    writer = csv.writer(handle)
    writer.writerow(header)
    writer.writerows([[safe_csv_cell(v) if i in columns else v for i, v in enumerate(row)] for row in rows])


def fill_csv(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], *, text_columns: Collection[str] = ()
) -> None:
    """Write a CSV table into ``path`` as it is (a temporary file of :func:`soundanomaly._safefiles.atomic_outputs`).

    Examples
    --------
    >>> fill_csv(Path("t.csv"), ["a", "note"], [[1, "=x"]], text_columns=["note"])
    >>> Path("t.csv").read_text().splitlines()
    ['a,note', "1,'=x"]
    """
    with open(path, "w", newline="", encoding="utf-8") as handle:
        _write_rows(handle, header, rows, text_columns)


def write_csv(
    target: str | Path | None,
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    text_columns: Collection[str] = ("path", "status", "reason"),
    inputs: Sequence[str] = (),
    force: bool = False,
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
    from soundanomaly._safefiles import atomic_file

    with atomic_file(target, "w", newline="", inputs=local([os.fspath(i) for i in inputs]), overwrite=force) as handle:
        _write_rows(handle, header, rows, text_columns)


def write_json(target: str | Path, text_or_data: str | Any, *, inputs: Sequence[str] = (), force: bool = False) -> None:
    """Write JSON (a ready string, or data to dump) to ``target`` atomically, never over an input.

    Examples
    --------
    >>> write_json("m.json", {"auc": 0.9})
    >>> Path("m.json").read_text()
    '{"auc": 0.9}'
    """
    from soundanomaly._safefiles import atomic_file

    text = text_or_data if isinstance(text_or_data, str) else json.dumps(text_or_data)
    with atomic_file(target, "w", inputs=local(list(inputs)), overwrite=force) as handle:
        handle.write(text)
