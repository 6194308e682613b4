"""The one rule for output files (CSV, JSON, JSON lines, plots, exports) of every command and API call.

An output file

* may never be an input, contain one, or lie inside one (a clip, a recording,
  a data folder, a model folder) — not even with ``overwrite`` / ``--force``;
* may never lie inside a model folder (the library's own, input or not);
* may replace an existing file only when the library wrote that file and it
  is unchanged since (listed, with its size and modification time, in the
  folder's :data:`LEDGER`), or with ``overwrite`` / ``--force``;
* is written to a temporary sibling and renamed into place (a set of files:
  all renamed together, after all were written), so a full disk or an
  interrupt leaves the previous files, never a partial one. Errors name the file.

Special files (``/dev/stdout``, a FIFO) are written directly and never "replaced".
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from soundanomaly._safeio import MARKER, contains_path, folder_kind, process_umask, resolved_path
from soundanomaly.exceptions import OutputExistsError, OutputWriteError, SoundAnomalyError
from soundanomaly.typing import PathLike

__all__ = [
    "LEDGER",
    "atomic_file",
    "atomic_outputs",
    "check_output_file",
    "open_append",
    "safe_csv_cell",
    "written_by_library",
]

#: Hidden file (one per folder) listing the output files the library wrote there: name -> [size, mtime_ns].
LEDGER = ".soundanomaly-outputs.json"
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"fLaC", b"OggS", b"FORM", b"ID3", b"\xff\xfb")
_LEDGER_MAX_BYTES = 1 << 20


def _read_ledger(folder: Path) -> dict[str, Any]:
    path = folder / LEDGER
    try:
        if path.stat().st_size > _LEDGER_MAX_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _record_written(paths: Iterable[Path]) -> None:
    """Add files the library just wrote to their folders' ledgers (best effort: a read-only folder skips it)."""
    by_folder: dict[Path, list[Path]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, []).append(path)
    for folder, written in by_folder.items():
        ledger = _read_ledger(folder)
        ledger = {name: value for name, value in ledger.items() if (folder / name).is_file()}
        for path in written:
            with contextlib.suppress(OSError):
                info = path.stat()
                ledger[path.name] = [info.st_size, info.st_mtime_ns]
        with contextlib.suppress(OSError):
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f"{LEDGER}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(ledger, handle)
                os.chmod(tmp, 0o666 & ~process_umask())
                os.replace(tmp, folder / LEDGER)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


def written_by_library(path: PathLike, *, append: bool = False) -> bool:
    """Whether the library wrote the file at ``path`` and it is unchanged since (``append``: any size later).

    Examples
    --------
    >>> with atomic_file("scores.csv") as handle:
    ...     _ = handle.write("path,score\\n")
    >>> written_by_library("scores.csv")
    True
    >>> _ = Path("notes.txt").write_text("mine")
    >>> written_by_library("notes.txt")
    False
    """
    file = Path(os.path.abspath(os.fspath(path)))
    entry = _read_ledger(file.parent).get(file.name)
    if not isinstance(entry, list) or len(entry) != 2:
        return False
    if append:
        return True
    try:
        info = file.stat()
    except OSError:
        return False
    return [info.st_size, info.st_mtime_ns] == entry


def check_output_file(
    target: PathLike, *, inputs: Iterable[PathLike] = (), overwrite: bool = False, append: bool = False
) -> None:
    """Refuse, before any work, an output file the rule above forbids.

    Parameters
    ----------
    target : path
    inputs : paths
        Everything the run reads (clips, recordings, data folders, model folders); URLs are skipped.
    overwrite : bool, default False
        Also replace an existing file the library did not write (``--force``). Never an input.
    append : bool, default False
        The output is appended to (``monitor --jsonl``): a file the library created may have grown since.

    Raises
    ------
    OutputExistsError
        Naming the file and the input, or saying how to proceed.

    Examples
    --------
    >>> import os, numpy as np, soundfile as sf
    >>> os.makedirs("model")
    >>> check_output_file("model/manifest.json", inputs=["model"])
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.OutputExistsError: model/manifest.json: refusing to write there: the output lies inside the input model
    >>> sf.write("clip.wav", np.zeros(160), 16000)
    >>> check_output_file("clip.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.OutputExistsError: clip.wav: exists and was not written by soundanomaly (it holds audio); choose another name, or pass --force to replace it
    """
    shown = os.fspath(target)
    path = resolved_path(target)
    for item in inputs:
        if "://" in os.fspath(item):
            continue
        source = resolved_path(item)
        same = source == path
        if not same and path.exists() and source.exists():
            with contextlib.suppress(OSError):
                same = os.path.samefile(source, path)
        if same:
            raise OutputExistsError(f"{shown}: refusing to write there: the output is the input {item}")
        if contains_path(path, source):
            raise OutputExistsError(f"{shown}: refusing to write there: the output contains the input {item}")
        if contains_path(source, path):
            what = " (a model folder)" if folder_kind(source) == "model" else ""
            raise OutputExistsError(f"{shown}: refusing to write there: the output lies inside the input {item}{what}")
    if path.name in (LEDGER, MARKER):
        raise OutputExistsError(f"{shown}: refusing to write there: the library keeps its own records in that name")
    for folder in path.parents:
        if folder_kind(folder) == "model":
            raise OutputExistsError(f"{shown}: refusing to write inside the model folder {folder}")
    if path.is_dir():
        raise OutputExistsError(f"{shown}: is a folder; give a file name")
    if path.is_file() and not overwrite and not written_by_library(path, append=append):
        try:
            with open(path, "rb") as handle:
                head = handle.read(4)
        except OSError:
            head = b""
        audio = " (it holds audio)" if head and any(head.startswith(m) for m in _AUDIO_MAGIC) else ""
        raise OutputExistsError(
            f"{shown}: exists and was not written by soundanomaly{audio}; choose another name, "
            "or pass --force to replace it"
        )


def _open_special(path: Path, mode: str, newline: str | None = None) -> IO[Any]:
    """Open a FIFO, socket or device for writing without blocking forever on a FIFO nobody reads."""
    flags = os.O_WRONLY | (os.O_APPEND if "a" in mode else 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputWriteError(f"{path}: a FIFO with no reader; start the reading side first") from exc
        raise
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    mode = mode.replace("a", "w")  # O_APPEND is set on the descriptor; a pipe can not seek to its end
    return (
        os.fdopen(fd, mode, newline=newline) if "b" in mode else os.fdopen(fd, mode, newline=newline, encoding="utf-8")
    )


def _cannot_write(shown: str, exc: OSError) -> SoundAnomalyError:
    return OutputWriteError(f"{shown}: cannot write ({exc.strerror or exc}); nothing was left half-written")


@contextlib.contextmanager
def atomic_outputs(
    folder: PathLike, names: Sequence[str], *, inputs: Iterable[PathLike] = (), overwrite: bool = False
) -> Iterator[dict[str, Path]]:
    """Write several files into ``folder`` all-or-nothing: yields ``name -> temporary path`` to fill.

    Every name is checked first (:func:`check_output_file`); the temporary
    files keep the final suffix (plot writers pick the format from it). When
    the block ends normally all are renamed into place; on any error (a full
    disk) none is, the temporaries are removed, and the previous files stay.

    Examples
    --------
    >>> with atomic_outputs("out", ["a.csv", "b.csv"]) as paths:
    ...     _ = paths["a.csv"].write_text("a"), paths["b.csv"].write_text("b")
    >>> sorted(p.name for p in Path("out").iterdir() if not p.name.startswith("."))
    ['a.csv', 'b.csv']
    """
    shown = os.fspath(folder)
    inputs = list(inputs)
    base = Path(os.path.abspath(shown))
    for name in names:
        check_output_file(base / name, inputs=inputs, overwrite=overwrite)
    try:
        base.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SoundAnomalyError(f"{shown}: cannot create the folder ({exc.strerror or exc})") from exc
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary = {name: base / f".{Path(name).stem}.tmp-{tag}{Path(name).suffix}" for name in names}
    try:
        yield temporary
        for name, tmp in temporary.items():
            if not tmp.is_file():
                raise SoundAnomalyError(f"{base / name}: was not written")
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o666 & ~process_umask())
        for name, tmp in temporary.items():
            os.replace(tmp, base / name)
    except OSError as exc:
        raise OutputWriteError(f"{shown}: cannot write ({exc.strerror or exc}); no output was changed") from exc
    finally:
        for tmp in temporary.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _record_written(base / name for name in names)


@contextlib.contextmanager
def atomic_file(
    target: PathLike,
    mode: str = "w",
    *,
    inputs: Iterable[PathLike] = (),
    overwrite: bool = False,
    newline: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``target`` for writing; rename it over ``target`` on success.

    The target is checked first (:func:`check_output_file`). Special files
    (``/dev/stdout``, a FIFO) are written directly. Errors such as a full
    disk or an unwritable folder become :class:`SoundAnomalyError` naming the
    file, and leave no partial output.

    Examples
    --------
    >>> with atomic_file("scores.csv") as handle:
    ...     _ = handle.write("path,score\\n")
    >>> Path("scores.csv").read_text()
    'path,score\\n'

    """
    shown = os.fspath(target)
    check_output_file(target, inputs=inputs, overwrite=overwrite)
    path = Path(os.path.abspath(shown))
    special = path.exists() and not path.is_file()
    tmp: str | None = None
    try:
        if special:
            handle = _open_special(path, mode, newline)
        else:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            handle = os.fdopen(fd, mode, newline=newline)
    except OSError as exc:
        raise _cannot_write(shown, exc) from exc
    try:
        with handle:
            yield handle
            handle.flush()
            if tmp is not None:
                os.fsync(handle.fileno())
        if tmp is not None:
            os.chmod(tmp, 0o666 & ~process_umask())
            os.replace(tmp, path)
            tmp = None
            _record_written([path])
    except OSError as exc:
        raise _cannot_write(shown, exc) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def open_append(target: PathLike, *, inputs: Iterable[PathLike] = (), overwrite: bool = False) -> Iterator[IO[str]]:
    """Open an output for appending (``monitor --jsonl``) under the same rule; the file is listed as the library's.

    Examples
    --------
    >>> with open_append("alerts.jsonl") as handle:
    ...     _ = handle.write('{"type": "raised"}\\n')
    >>> with open_append("alerts.jsonl") as handle:  # the library's own file: appended to
    ...     _ = handle.write('{"type": "cleared"}\\n')
    >>> len(Path("alerts.jsonl").read_text().splitlines())
    2
    """
    shown = os.fspath(target)
    check_output_file(target, inputs=inputs, overwrite=overwrite, append=True)
    path = Path(os.path.abspath(shown))
    try:
        special = path.exists() and not path.is_file()
        handle = _open_special(path, "a") if special else open(path, "a", encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise _cannot_write(shown, exc) from exc
    try:
        if path.is_file():
            _record_written([path])
        with handle:
            yield handle
    except OSError as exc:
        raise _cannot_write(shown, exc) from exc
    finally:
        if path.is_file():
            _record_written([path])


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula (OWASP's advice: prefix a single quote).

    Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
    gets a leading ``'``; numbers (including negative ones written as numbers)
    and other text are returned unchanged. Use it for every cell that may hold
    user-controlled text (paths, labels, reasons).

    Examples
    --------
    >>> safe_csv_cell("=1+2"), safe_csv_cell("@SUM(A1)"), safe_csv_cell("fan/id_00/a.wav"), safe_csv_cell(-1.5)
    ("'=1+2", "'@SUM(A1)", 'fan/id_00/a.wav', -1.5)

    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
