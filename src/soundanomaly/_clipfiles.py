"""Reading local files and URLs as clips: what may be read, and how (the file half of :mod:`soundanomaly.audio`).

Public names are re-exported by :mod:`soundanomaly.audio`; see its docstring for the rules.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from soundanomaly.exceptions import AudioError, MissingDependencyError, ParameterError
from soundanomaly.typing import PathLike

__all__ = [
    "ALLOW_HTTP",
    "MAX_CLIP_BYTES",
    "allow_http",
    "check_regular_mode",
    "find_clips",
    "fsspec_module",
    "is_url",
    "read_bytes",
]

#: Largest clip (bytes) :func:`read_bytes` reads by default: 2 GiB (a 10 s, 8-channel MIMII clip is 2.5 MB).
MAX_CLIP_BYTES = 2 * 1024**3

_LOCAL_SCHEMES = ("file",)
_REMOTE_SCHEMES = ("s3", "s3a")
_IN_PROCESS_SCHEMES = ("memory",)  # fsspec's in-memory file system (tests, pipelines); no I/O
_HTTP_SCHEMES = ("http", "https")
#: Whether http(s):// URLs may be read in this context (see :func:`allow_http`).
ALLOW_HTTP: contextvars.ContextVar[bool] = contextvars.ContextVar("soundanomaly_allow_http", default=False)


def find_clips(folder: PathLike, *, extensions: Sequence[str] = (".wav",)) -> list[Path]:
    """Every entry under ``folder`` (recursively) whose name ends in one of ``extensions``, any case, sorted.

    The one rule for which entries of a folder are clips (``score DIR``,
    :class:`~soundanomaly.datasets.MIMII`, :class:`~soundanomaly.datasets.DCASE`,
    ``train``): by name only. An entry that is not a regular file (a folder
    named ``x.wav``, a FIFO) is listed too, so that reading it reports it
    (:class:`AudioError`, skippable with ``on_error="skip"``/``--skip-errors``)
    rather than dropping it silently.

    Examples
    --------
    >>> import os
    >>> os.makedirs("clips/x.WAV"); _ = open("clips/a.wav", "wb").close()
    >>> [p.name for p in find_clips("clips")]
    ['a.wav', 'x.WAV']
    """
    wanted = {e.lower() for e in extensions}
    return sorted(path for path in Path(folder).rglob("*") if path.suffix.lower() in wanted)


def is_url(path: PathLike) -> bool:
    """True for fsspec URLs such as ``s3://bucket/key.wav`` (``file://`` included).

    Examples
    --------
    >>> is_url("s3://bucket/fan.wav"), is_url("data/fan.wav")
    (True, False)

    """
    return "://" in os.fspath(path)


@contextlib.contextmanager
def allow_http(enabled: bool = True) -> Iterator[None]:
    """Let :func:`read_bytes` (and so feature extraction) fetch ``http(s)://`` URLs inside this block.

    By default only local paths and ``s3://`` URLs are read, so a list of
    clips (or a model folder) cannot make the library contact an arbitrary
    server. The CLI's ``--allow-http`` uses this.

    Examples
    --------
    >>> read_bytes("http://127.0.0.1:9/clip.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: http://127.0.0.1:9/clip.wav: http:// URLs are not read unless allowed (soundanomaly.audio.allow_http() / --allow-http)
    """
    token = ALLOW_HTTP.set(bool(enabled))
    try:
        yield
    finally:
        ALLOW_HTTP.reset(token)


def read_bytes(path: PathLike, *, max_bytes: int = MAX_CLIP_BYTES, allow_http: bool | None = None) -> bytes:
    """Read a local file or an ``s3://`` URL into memory, raising :class:`AudioError`.

    Parameters
    ----------
    path : str or os.PathLike
        A regular local file (``file://`` URLs too) or an ``s3://bucket/key`` URL.
    max_bytes : int > 0, default :data:`MAX_CLIP_BYTES` (2 GiB)
        Refuse larger clips before reading them.
    allow_http : bool or None, default None
        Also read ``http(s)://`` URLs. ``None``: only inside :func:`allow_http`.

    Raises
    ------
    AudioError
        Naming the file: missing, not a regular file (folder, FIFO, device),
        too large, unreadable (permissions), or an unsupported or malformed URL.

    Examples
    --------
    >>> read_bytes("missing.wav")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: missing.wav: file not found
    >>> read_bytes("/dev/zero")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: /dev/zero: not a regular file (a character device); give an audio file

    """
    name = os.fspath(path)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        raise ParameterError(f"max_bytes must be a positive int, got {max_bytes!r}")
    if is_url(name):
        scheme, _, rest = name.partition("://")
        scheme = scheme.lower()
        if scheme in _LOCAL_SCHEMES:
            return _read_local(name, rest, max_bytes)
        http_ok = ALLOW_HTTP.get() if allow_http is None else allow_http
        if scheme in _HTTP_SCHEMES and not http_ok:
            raise AudioError(
                name,
                f"{scheme}:// URLs are not read unless allowed (soundanomaly.audio.allow_http() / --allow-http)",
            )
        if scheme not in _REMOTE_SCHEMES + _HTTP_SCHEMES + _IN_PROCESS_SCHEMES:
            raise AudioError(name, f"unsupported URL scheme {scheme + '://'!r}: give a local path or an s3:// URL")
        if scheme in _REMOTE_SCHEMES:
            bucket, _, key = rest.partition("/")
            if not bucket or not key or key.endswith("/"):
                raise AudioError(name, "malformed S3 URL: expected s3://bucket/key.wav")
        return _read_url(name, max_bytes)
    return _read_local(name, name, max_bytes)


def _read_local(shown: str, name: str, max_bytes: int) -> bytes:
    """Read a regular file: opened without blocking (a FIFO cannot hang us), checked with fstat, then read."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(name, flags)
    except FileNotFoundError as exc:
        raise AudioError(shown, "file not found") from exc
    except IsADirectoryError as exc:
        raise AudioError(shown, "is a directory, not an audio file") from exc
    except PermissionError as exc:
        raise AudioError(shown, "permission denied") from exc
    except OSError as exc:
        raise AudioError(shown, f"cannot open ({exc.strerror or exc})") from exc
    try:  # checked on the descriptor, before wrapping it: a folder opens fine with O_RDONLY, and fdopen would
        # then raise IsADirectoryError without closing the descriptor (one leaked per call)
        info = os.fstat(fd)
        check_regular_mode(shown, info.st_mode)
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        try:
            if info.st_size > max_bytes:
                raise AudioError(shown, f"file too large: {info.st_size} bytes (limit {max_bytes}, see max_bytes)")
            # read what fstat announces (+1 byte to see growth); asking for max_bytes at once would make the
            # buffered reader allocate the whole cap (2 GiB) for every clip
            data = handle.read(info.st_size + 1)
            while len(data) > info.st_size and len(data) <= max_bytes:  # the file grew (or fstat said 0)
                more = handle.read(min(1 << 20, max_bytes + 1 - len(data)))
                if not more:
                    break
                data += more
        except OSError as exc:
            raise AudioError(shown, f"cannot read ({exc.strerror or exc})") from exc
    if len(data) > max_bytes:
        raise AudioError(shown, f"file too large: more than {max_bytes} bytes (see max_bytes)")
    return data


def check_regular_mode(shown: str, mode: int) -> None:
    """Refuse, naming ``shown``, a file whose ``st_mode`` is not a regular file's (a folder, FIFO, device, socket).

    Examples
    --------
    >>> import os
    >>> check_regular_mode("x.wav", os.stat(".").st_mode)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.AudioError: x.wav: is a directory, not an audio file
    """
    if stat.S_ISDIR(mode):
        raise AudioError(shown, "is a directory, not an audio file")
    if not stat.S_ISREG(mode):
        raise AudioError(shown, f"not a regular file ({_kind(mode)}); give an audio file")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def fsspec_module(purpose: str) -> Any:
    """The fsspec module, or :class:`MissingDependencyError` naming the ``aws`` extra."""
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec ships with the aws extra (s3fs)
        raise MissingDependencyError("fsspec", "aws", purpose) from exc
    return fsspec


def _read_url(name: str, max_bytes: int) -> bytes:
    fsspec = fsspec_module(f"reading {name}")
    try:
        with fsspec.open(name, "rb") as handle:
            data = bytes(handle.read(max_bytes + 1))
    except FileNotFoundError as exc:
        raise AudioError(name, "file not found") from exc
    except ImportError as exc:  # s3fs for s3://, aiohttp for http(s)://
        raise MissingDependencyError(exc.name or "s3fs", "aws", f"reading {name}") from exc
    except PermissionError as exc:
        raise AudioError(name, "permission denied") from exc
    except Exception as exc:  # any backend failure (credentials, network) names the clip
        raise AudioError(name, f"cannot read ({type(exc).__name__}: {exc})") from exc
    if len(data) > max_bytes:
        raise AudioError(name, f"file too large: more than {max_bytes} bytes (see max_bytes)")
    return data
