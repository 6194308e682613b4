"""Writing outputs without ever losing user data.

Rules (the "Safety" section of the docs states them for users):

* A folder the library writes (a saved model, a demo report) carries a marker
  file, :data:`MARKER`. Only a folder with that marker (or a legacy model
  folder: ``manifest.json`` naming a detector) is ever replaced, and only as a
  whole. The marker lists the files the library wrote; a folder that also
  holds other files (a user's notes) is refused like any foreign folder.
  An empty folder may be filled. Anything else is refused with
  :class:`OutputExistsError` unless the caller passes ``overwrite=True``.
* Even with ``overwrite=True``, an output that equals or contains an input (a
  data folder, a clip) or the current working directory is refused.
* Folders are built in a hidden temporary sibling and swapped into place; the
  marker is written last, so a folder without it was never completed. The
  hidden siblings carry the writer's process id and host (``.M.tmp-<pid>@<host>-*``,
  ``.M.old-<pid>@<host>-*``). Only when that process is dead *and* it died between the
  two renames (the target is missing, its complete new copy and the old one
  are both there) does :func:`recover` (run by every save and every load) put
  the new copy in place; a model the user deleted is never brought back.
  Siblings of dead writers are removed by every save and load.
* A load reads one complete save or fails: :func:`consistent_load` compares
  the folder's identity and save id before and after reading and reads again
  (a few times) when another process swapped a new save in meanwhile.
* Files (CSV, JSON, plots, exports) follow one rule, in :mod:`soundanomaly._safefiles`
  (re-exported here): never an input nor inside one, never over a file the
  library did not write (without ``overwrite``), written atomically.
* New folders and files honour the process umask (``mkdtemp`` would make them
  ``drwx------``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from soundanomaly.exceptions import ModelFormatError, OutputExistsError, OutputWriteError, SoundAnomalyError
from soundanomaly.typing import PathLike

__all__ = [
    "MARKER",
    "OutputExistsError",
    "atomic_dir",
    "check_output_folder",
    "consistent_load",
    "contains_path",
    "folder_kind",
    "foreign_files",
    "process_umask",
    "recover",
    "resolved_path",
]

#: Marker file the library writes (last) into every folder it creates.
MARKER = ".soundanomaly.json"
_LEGACY_MODEL_FILES = frozenset({"manifest.json", "state.npz"})
_P = ParamSpec("_P")
_R = TypeVar("_R")


def process_umask() -> int:
    """The process umask, read without changing it (where /proc allows)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # pragma: no cover - non-Linux fallback
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _apply_umask(root: Path) -> None:
    """Give ``root`` and everything under it the permissions a plain mkdir/open would have given."""
    mask = process_umask()
    dir_mode, file_mode = 0o777 & ~mask, 0o666 & ~mask
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, dir_mode)
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, file_mode)
        del dirs  # os.walk visits them itself


def folder_kind(path: PathLike) -> str | None:
    """What the library wrote at ``path``: ``"model"``, ``"report"``, ``"empty"``, or ``None`` for anything else.

    Examples
    --------
    >>> import os
    >>> os.makedirs("empty-folder")
    >>> folder_kind("empty-folder"), folder_kind("missing")
    ('empty', None)

    """
    folder = Path(path)
    if not folder.is_dir() or folder.is_symlink():
        return None
    marker = folder / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            return None
        return str(kind) if kind in ("model", "report") else None
    try:
        entries = list(folder.iterdir())
    except OSError:
        return None
    if not entries:
        return "empty"
    names = {entry.name for entry in entries}
    if names <= {"manifest.json", "state.npz"} and "manifest.json" in names:
        try:  # a model saved before the marker existed
            manifest = json.loads((folder / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        if isinstance(manifest, dict) and "detector" in manifest and "format_version" in manifest:
            return "model"
    return None


def _marker(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def foreign_files(path: PathLike) -> list[str]:
    """Names in a folder the library wrote that it did not write itself (a user's notes), sorted.

    The marker lists the files of the save; a folder written before the list
    existed counts ``manifest.json`` and ``state.npz`` (a model), or the files
    not newer than the marker (a report), as the library's.

    Examples
    --------
    >>> with atomic_dir("rep", kind="report") as tmp:
    ...     _ = (tmp / "index.html").write_text("<p>")
    >>> _ = Path("rep/NOTES.md").write_text("mine")
    >>> foreign_files("rep")
    ['NOTES.md']
    """
    folder = Path(path)
    try:
        names = {entry.name for entry in folder.iterdir()} - {MARKER}
    except OSError:
        return []
    listed = _marker(folder).get("files")
    if isinstance(listed, list):
        return sorted(names - {str(name) for name in listed})
    if folder_kind(folder) == "model":
        return sorted(names - _LEGACY_MODEL_FILES)
    with contextlib.suppress(OSError):
        written = (folder / MARKER).stat().st_mtime + 1.0
        return sorted(name for name in names if (folder / name).lstat().st_mtime > written)
    return []


def _refuse_foreign(shown: str, folder: Path) -> None:
    foreign = foreign_files(folder)
    if foreign:
        sample = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise OutputExistsError(
            f"{shown}: also holds files soundanomaly did not write ({sample}); move them away, or pass "
            "overwrite=True / --force to replace the folder and them"
        )


def resolved_path(path: PathLike) -> Path:
    """The absolute path with symbolic links resolved (how outputs and inputs are compared)."""
    return Path(os.path.abspath(os.fspath(path))).resolve()


def contains_path(outer: Path, inner: Path) -> bool:
    """Whether ``inner`` is ``outer`` or lies inside it (both resolved)."""
    return inner == outer or outer in inner.parents


_resolved, _contains = resolved_path, contains_path


def _check_inputs(target: Path, inputs: Iterable[PathLike]) -> None:
    for item in inputs:
        if "://" in os.fspath(item):
            continue
        source = _resolved(item)
        if _contains(target, source) or (source.is_dir() and _contains(source, target)):
            what = "is" if source == target else "contains" if _contains(target, source) else "lies inside"
            raise OutputExistsError(f"{target}: refusing to write there: the output {what} the input {item}")


def check_output_folder(target: PathLike, *, inputs: Iterable[PathLike] = (), overwrite: bool = False) -> None:
    """Refuse, before any work, an output folder that :func:`atomic_dir` would refuse after it.

    The folder may be new (its nearest existing ancestor must be a folder),
    empty, or one the library wrote; anything else needs ``overwrite``. A
    folder that is or contains an input, or the current working directory, is
    always refused.

    Examples
    --------
    >>> import os
    >>> os.makedirs("data/fan")
    >>> check_output_folder("data", inputs=["data/fan"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.OutputExistsError: ...: refusing to write there: the output contains the input data/fan
    """
    shown = os.fspath(target)
    folder = _resolved(target)
    _check_inputs(folder, inputs)
    ancestor = folder
    while not ancestor.exists() and ancestor.parent != ancestor:
        ancestor = ancestor.parent
    if ancestor != folder and not ancestor.is_dir():
        raise OutputExistsError(f"{shown}: cannot create the folder: {ancestor} is a file, not a folder")
    if not folder.exists():
        return
    if not folder.is_dir():
        raise OutputExistsError(f"{shown}: exists and is not a folder; choose another output path")
    kind = folder_kind(folder)
    if _contains(folder, _resolved(os.getcwd())) and kind != "empty":
        raise OutputExistsError(f"{shown}: refusing to replace the current working directory (or a folder holding it)")
    if kind is None and not overwrite:
        raise OutputExistsError(
            f"{shown}: exists and was not written by soundanomaly; choose another folder, or pass --force to replace it"
        )
    if not overwrite:
        _refuse_foreign(shown, folder)


_HOST = hashlib.sha1(socket.gethostname().encode(), usedforsecurity=False).hexdigest()[:8]


def _writer() -> str:
    """This process, as named in swap siblings: ``<pid>@<host hash>`` (a pid says nothing on another host)."""
    return f"{os.getpid()}@{_HOST}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


_LEGACY_TMP_AGE = 3600.0  # seconds: a sibling without a process id (written before ids were) is stale after this


def _siblings(folder: Path) -> list[tuple[str, int | None, Path]]:
    """The hidden swap siblings of ``folder``: ``(kind "tmp"/"old", writer pid or None, path)``."""
    found = []
    with contextlib.suppress(OSError):
        for sibling in folder.parent.iterdir():
            for kind, shape in (("tmp", r"(\d+)(?:@([0-9a-f]{8}))?-.+"), ("old", r"(\d+)(?:@([0-9a-f]{8}))?(?:-.+)?")):
                prefix = f".{folder.name}.{kind}-"
                if sibling.name.startswith(prefix) and sibling.is_dir() and not sibling.is_symlink():
                    match = re.fullmatch(shape, sibling.name[len(prefix) :])
                    here = match is not None and match.group(2) in (None, _HOST)  # another host's pid means nothing
                    found.append((kind, int(match.group(1)) if match and here else None, sibling))
    return found


def _stale(pid: int | None, path: Path) -> bool:
    if pid is not None:
        return not _pid_alive(pid)
    try:
        return time.time() - path.stat().st_mtime > _LEGACY_TMP_AGE
    except OSError:
        return False


def recover(target: PathLike) -> None:
    """Finish a folder swap that a killed process left half done, and remove what dead writers left behind.

    Recovery happens in one case only: ``target`` is missing, and a dead
    process left both its complete new copy (``.M.tmp-<pid>-*``, marker
    present) and the previous copy (``.M.old-<pid>``): it was killed between
    the two renames, so the new copy is put in place. A folder the user
    deleted is never brought back (a finished save leaves no siblings; an
    unfinished one before its first rename leaves no ``.old``). Then every
    sibling of a dead writer is removed.

    Examples
    --------
    >>> recover("nothing-here")  # no-op when there is nothing to recover

    """
    folder = _resolved(target)
    if not folder.parent.is_dir():
        return
    siblings = [(kind, pid, path) for kind, pid, path in _siblings(folder) if _stale(pid, path)]
    if not os.path.lexists(folder):
        olds = {pid for kind, pid, _ in siblings if kind == "old" and pid is not None}
        complete = [
            (path.stat().st_mtime, path)
            for kind, pid, path in siblings
            if kind == "tmp" and pid in olds and (path / MARKER).is_file()
        ]
        if complete:
            _, best = max(complete)
            with contextlib.suppress(OSError):
                os.replace(best, folder)
    for _, _, path in siblings:
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)


def _token(folder: Path) -> tuple[int, int, str] | None:
    """The identity of a saved folder: its inode and its save id (None when missing)."""
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, str(_marker(folder).get("save_id", "")))


def consistent_load(read: Callable[_P, _R]) -> Callable[_P, _R]:
    """Wrap a loader ``read(owner, path, ...)`` so it returns one complete save or fails.

    A save swaps a whole new folder into place; a reader that opened
    ``manifest.json`` of one save and ``state.npz`` of the next would mix
    them. The wrapper compares the folder's identity (inode and the save id
    in its marker) before and after ``read``; when they differ, or the read
    failed because files vanished under it, it reads again (at most
    5 times) and then raises :class:`ModelFormatError`.

    Examples
    --------
    >>> @consistent_load
    ... def read(owner, path):
    ...     return Path(path, "a.txt").read_text()
    >>> with atomic_dir("m", kind="report") as tmp:
    ...     _ = (tmp / "a.txt").write_text("one save")
    >>> read(None, "m")
    'one save'
    """

    @functools.wraps(read)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        path = kwargs["path"] if "path" in kwargs else args[1]
        folder = Path(os.path.abspath(os.fspath(path)))  # type: ignore[call-overload]
        for attempt in range(5):
            before = _token(folder)
            try:
                try:
                    result = read(*args, **kwargs)
                except ModelFormatError as exc:  # every problem of a model folder names the folder
                    shown = os.fspath(path)  # type: ignore[call-overload]
                    if shown in str(exc) or str(folder) in str(exc):
                        raise
                    raise ModelFormatError(f"{shown}: {exc}") from exc
            except SoundAnomalyError:
                swapping = before is None and any(_pid_alive(pid or 0) for _, pid, _ in _siblings(folder))
                if _token(folder) == before and not (swapping and attempt < 4):
                    raise  # a real problem of this save (or no save at all)
                time.sleep(0.01 * (attempt + 1))
                continue
            if before is not None and _token(folder) == before:
                return result
            time.sleep(0.01 * (attempt + 1))
        raise ModelFormatError(f"{folder}: changed by another process while being loaded; load it again")

    return wrapper


@contextlib.contextmanager
def atomic_dir(
    target: PathLike,
    *,
    kind: str,
    overwrite: bool = False,
    inputs: Iterable[PathLike] = (),
    extra_marker: dict[str, Any] | None = None,
) -> Iterator[Path]:
    """Build a folder in a temporary sibling, then swap it into place.

    Parameters
    ----------
    target : path
        The folder to write. ``"."`` is allowed when the current directory is empty.
    kind : {"model", "report"}
        Written into the marker; only a folder of the library's own kinds is replaced.
    overwrite : bool, default False
        Also replace a folder the library did not write (never one that holds an input).
    inputs : paths
        Data the run reads; the output may not equal or contain any of them.

    Yields
    ------
    Path
        The temporary folder to fill. On an exception it is removed and the
        target is untouched.

    Raises
    ------
    OutputExistsError
        The target is a file, a folder the library did not write (without
        ``overwrite``), contains an input, or contains the working directory.

    Examples
    --------
    >>> with atomic_dir("out", kind="report") as tmp:
    ...     _ = (tmp / "a.txt").write_text("hello")
    >>> sorted(p.name for p in Path("out").iterdir())
    ['.soundanomaly.json', 'a.txt']
    >>> _ = Path("notes").mkdir(), Path("notes/todo.md").write_text("mine")
    >>> with atomic_dir("notes", kind="report") as tmp:
    ...     pass
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.OutputExistsError: notes: exists and was not written by soundanomaly (it holds todo.md); choose another folder, or pass overwrite=True / --force to replace it
    """
    shown = os.fspath(target)
    folder = _resolved(target)
    if folder.parent == folder:
        raise OutputExistsError(f"{shown}: refusing to write a model or report over a file-system root")
    _check_inputs(folder, inputs)
    recover(folder)
    in_place = _contains(folder, _resolved(os.getcwd()))
    existing = folder_kind(folder) if folder.exists() else "missing"
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{shown}: exists and is not a folder; choose another output path")
    if in_place and existing not in ("empty", "missing"):
        raise OutputExistsError(f"{shown}: refusing to replace the current working directory (or a folder holding it)")
    if existing is None and not overwrite:
        try:
            sample = ", ".join(sorted(p.name for p in folder.iterdir())[:3])
        except OSError:
            sample = "unreadable entries"
        raise OutputExistsError(
            f"{shown}: exists and was not written by soundanomaly (it holds {sample}); choose another folder, "
            "or pass overwrite=True / --force to replace it"
        )
    if existing in ("model", "report") and not overwrite:
        _refuse_foreign(shown, folder)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-{_writer()}-"))
    except OSError as exc:
        raise SoundAnomalyError(f"{shown}: cannot create the output folder ({exc.strerror or exc})") from exc
    try:
        try:
            yield tmp
        except OSError as exc:  # a full disk while filling: name the output (np.savez's error names no file)
            if isinstance(exc, SoundAnomalyError):
                raise
            raise OutputWriteError(
                f"{shown}: cannot write ({exc.strerror or exc}); the previous one is untouched"
            ) from exc
        files = sorted(entry.name for entry in tmp.iterdir())
        marker = {"kind": kind, **(extra_marker or {}), "save_id": uuid.uuid4().hex, "files": files}
        (tmp / MARKER).write_text(json.dumps(marker))
        _apply_umask(tmp)
        _fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if in_place:  # the working directory itself: fill it (it is empty), marker last
            for entry in sorted(tmp.iterdir(), key=lambda p: p.name == MARKER):
                os.replace(entry, folder / entry.name)
            tmp.rmdir()
            return
        _swap(tmp, folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SoundAnomalyError(f"{shown}: cannot write the output folder ({exc.strerror or exc})") from exc


def _swap(tmp: Path, folder: Path) -> None:
    """Put the complete ``tmp`` in place of ``folder`` (two renames); an interrupt in between still finishes."""
    old = None
    try:
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{_writer()}-{uuid.uuid4().hex[:8]}")
            os.replace(folder, old)
        os.replace(tmp, folder)
    except BaseException:
        if old is not None and not os.path.lexists(folder):  # between the renames: finish (the new copy is whole)
            try:
                os.replace(tmp, folder)
            except OSError:
                os.replace(old, folder)  # or put the previous one back
            else:
                shutil.rmtree(old, ignore_errors=True)
        raise
    _fsync_dir(folder.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


_MOVED = frozenset(
    {"atomic_file", "atomic_outputs", "check_output_file", "open_append", "safe_csv_cell", "written_by_library"}
)


def __getattr__(name: str) -> Any:
    """The file half (one output rule, atomic files, CSV cells) lives in :mod:`soundanomaly._safefiles`."""
    if name in _MOVED:
        from soundanomaly import _safefiles

        return getattr(_safefiles, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
