"""Resumable, verified transfers of one remote file: the transport under :mod:`soundanomaly.datasets.download`.

A transfer streams to ``<file>.part`` in 1 MiB chunks, resumes with an HTTP
``Range`` request after a dropped connection (bounded retries with back-off:
only bytes beyond the best offset so far count as progress), checks the free
space first, and verifies the MD5 before the file takes its final name. The
error classes live here; :mod:`soundanomaly.datasets.download` re-exports them.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from soundanomaly.exceptions import ParameterError, SoundAnomalyError
from soundanomaly.typing import PathLike

__all__ = [
    "TRANSIENT_ERRORS",
    "ChecksumError",
    "DiskFullError",
    "DownloadError",
    "DownloadInterruptedError",
    "RemoteFile",
    "RemoteNotFoundError",
    "check_space",
    "fetch",
    "open_url",
    "stamp_path",
]

logger = logging.getLogger("soundanomaly.datasets.download")

_CHUNK = 1 << 20
_MARGIN = 64 << 20  # keep 64 MiB free beyond what a step needs
_RETRY_WAIT = 2.0  # seconds before the first retry without progress (doubles, at most 30 s)
_MAX_ATTEMPTS_PER_RETRY = 20  # requests per allowed retry, progress or not: a transfer always ends


class DownloadError(SoundAnomalyError):
    """A download failed (network, HTTP status, server); the partial file is kept for a resume.

    Examples
    --------
    >>> issubclass(ChecksumError, DownloadError), issubclass(DownloadInterruptedError, KeyboardInterrupt)
    (True, True)

    """


class RemoteNotFoundError(DownloadError):
    """The server answered 404 for the archive's URL (wrong ``base_url`` or file name).

    Examples
    --------
    >>> issubclass(RemoteNotFoundError, DownloadError)
    True

    """


class ChecksumError(DownloadError):
    """The downloaded file's MD5 differs from the registry's; the file was deleted, nothing extracted.

    Examples
    --------
    >>> str(ChecksumError("6_dB_fan.zip: MD5 mismatch"))
    '6_dB_fan.zip: MD5 mismatch'

    """


class DiskFullError(DownloadError, OSError):
    """Not enough free space for the download or the extraction; nothing was extracted.

    Examples
    --------
    >>> isinstance(DiskFullError("data: disk full"), OSError)
    True

    """


class DownloadInterruptedError(DownloadError, KeyboardInterrupt):
    """Ctrl-C during a download or an extraction; the partial download is kept, run again to resume.

    It is a :class:`KeyboardInterrupt` too, so code that stops on Ctrl-C still stops.

    Examples
    --------
    >>> isinstance(DownloadInterruptedError("interrupted"), KeyboardInterrupt)
    True

    """


@dataclass(frozen=True)
class RemoteFile:
    """One registry entry: an archive's MD5 and (approximate) size in bytes.

    Examples
    --------
    >>> from soundanomaly.datasets.download import MIMII_REGISTRY
    >>> MIMII_REGISTRY["6_dB_fan.zip"].md5
    '0890f7d3c2fd8448634e69ff1d66dd47'

    """

    md5: str
    size: int


# ---------------------------------------------------------------------------------------------- progress


def _size_text(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class _ByteProgress:
    """``name  1.2 GB / 10.2 GB  35.1 MB/s  ETA 4m20s`` on stderr (redrawn at most 10x a second on a terminal)."""

    def __init__(self, name: str, *, total: int | None, start: int, enabled: bool) -> None:
        self.name, self.total, self.done, self.enabled = name, total, start, enabled
        self.moved = 0  # bytes transferred by this call (for the rate)
        self._t0 = time.monotonic()
        self._last = 0.0
        self._tty = enabled and sys.stderr.isatty()

    def update(self, n: int) -> None:
        self.done += n
        self.moved += n
        now = time.monotonic()
        if self._tty and now - self._last > 0.1:
            self._last = now
            self._draw("\r", "")

    def close(self) -> None:
        if self.enabled:
            self._draw("\r" if self._tty else "", "\n")

    def _draw(self, prefix: str, end: str) -> None:
        elapsed = max(time.monotonic() - self._t0, 1e-9)
        rate = self.moved / elapsed
        total = f" / {_size_text(self.total)}" if self.total else ""
        eta = ""
        if self.total and rate > 0 and self.done < self.total:
            left = int((self.total - self.done) / rate)
            eta = (
                f"  ETA {left // 3600}h{left // 60 % 60:02d}m"
                if left >= 3600
                else f"  ETA {left // 60}m{left % 60:02d}s"
            )
        sys.stderr.write(f"{prefix}{self.name}  {_size_text(self.done)}{total}  {_size_text(rate)}/s{eta}   {end}")
        sys.stderr.flush()


# ---------------------------------------------------------------------------------------------- transfer


def _free_bytes(folder: Path) -> int:
    """Free bytes on the file system holding ``folder`` (a function so tests can pretend a full disk)."""
    return shutil.disk_usage(folder).free


def check_space(folder: Path, needed: int, what: str) -> None:
    """Raise :class:`DiskFullError` naming ``folder`` unless ``needed`` bytes (plus a 64 MiB margin) are free.

    Examples
    --------
    >>> import tempfile
    >>> check_space(Path(tempfile.gettempdir()), 1, "a test")
    """
    free = _free_bytes(folder)
    if needed + _MARGIN > free:
        raise DiskFullError(
            f"{folder}: {what} needs {_size_text(needed)} but only {_size_text(free)} is free; "
            "free some space or choose another folder"
        )


def _md5(path: Path, *, progress: bool) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    bar = _ByteProgress(f"verifying {path.name}", total=path.stat().st_size, start=0, enabled=progress)
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    bar.close()
    return digest.hexdigest()


def stamp_path(path: Path) -> Path:
    """The verification stamp beside a downloaded file (``<name>.md5``: its MD5, size and mtime).

    Examples
    --------
    >>> stamp_path(Path("dl/6_dB_fan.zip")).name
    '6_dB_fan.zip.md5'
    """
    return path.with_name(path.name + ".md5")


def _verified(path: Path, md5: str) -> bool:
    """True when ``path`` was verified before and has not changed since (size and mtime in its stamp)."""
    try:
        stamp = json.loads(stamp_path(path).read_text())
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(stamp, dict)
        and stamp.get("md5") == md5
        and stamp.get("size") == stat.st_size
        and stamp.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_stamp(path: Path, md5: str) -> None:
    stat = path.stat()
    stamp_path(path).write_text(json.dumps({"md5": md5, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))


TRANSIENT_ERRORS = (
    http.client.IncompleteRead,
    http.client.RemoteDisconnected,
    ConnectionError,
    TimeoutError,
    socket.timeout,
    urllib.error.URLError,
)


def open_url(url: str, offset: int, timeout: float) -> http.client.HTTPResponse:
    """Open ``url`` for reading from byte ``offset`` (an HTTP ``Range`` request when ``offset`` > 0).

    Examples
    --------
    >>> with open_url("https://zenodo.org/records/3384388", 0, 30.0) as response:  # doctest: +SKIP
    ...     response.status
    200
    """
    headers = {"User-Agent": "soundanomaly (https://github.com/soundanomaly)", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    response: http.client.HTTPResponse = urllib.request.urlopen(
        urllib.request.Request(url, headers=headers), timeout=timeout
    )
    return response


def fetch(
    url: str,
    dest: PathLike,
    *,
    md5: str,
    size: int | None = None,
    progress: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest``, resuming a ``dest.part`` left by an earlier try, and verify its MD5.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` URL.
    dest : path
        The file to create. If it exists and matches ``md5`` it is returned at once.
    md5 : str
        Expected MD5 (32 hex digits).
    size : int, optional
        Expected size in bytes, for the free-space check when the server sends no length.
    progress : bool, default True
        Draw a progress bar (bytes, rate, time left) on stderr.
    retries : int, default 5
        Consecutive failed attempts (without new bytes) before giving up.
    timeout : float, default 60
        Seconds a connection may stay silent.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    RemoteNotFoundError
        HTTP 404.
    ChecksumError
        The complete file has another MD5 (it is deleted).
    DiskFullError
        Not enough free space (checked before starting, and on a write error).
    DownloadInterruptedError
        Ctrl-C; ``dest.part`` is kept and the next call resumes from it.
    DownloadError
        Any other HTTP or network failure after ``retries`` attempts.

    Examples
    --------
    >>> fetch("ftp://example.org/a.zip", "a.zip", md5="0" * 32)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: url must start with http:// or https://, got 'ftp://example.org/a.zip'
    """
    if not url.startswith(("http://", "https://")):
        raise ParameterError(f"url must start with http:// or https://, got {url!r}")
    if not re.fullmatch(r"[0-9a-fA-F]{32}", md5):
        raise ParameterError(f"md5 must be 32 hexadecimal digits, got {md5!r}")
    md5 = md5.lower()
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_file():
        if _verified(target, md5) or _md5(target, progress=progress) == md5:
            _write_stamp(target, md5)
            logger.info("%s: already downloaded and verified", target)
            return target
        raise ChecksumError(f"{target}: exists but its MD5 is not {md5}; delete it to download it again")
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    bar = _ByteProgress(target.name, total=size, start=have, enabled=progress)
    try:
        _transfer(url, part, bar, size=size, retries=retries, timeout=timeout)
    except KeyboardInterrupt as exc:
        have = part.stat().st_size if part.exists() else 0
        raise DownloadInterruptedError(
            f"{target.name}: interrupted after {_size_text(have)}; {part} is kept, run the same command again to resume"
        ) from exc
    finally:
        bar.close()
    try:
        actual = _md5(part, progress=progress)
    except KeyboardInterrupt as exc:
        raise DownloadInterruptedError(f"{target.name}: interrupted while verifying; run again to resume") from exc
    if actual != md5:
        part.unlink()
        raise ChecksumError(
            f"{target.name}: MD5 {actual} does not match the registry's {md5} (corrupted download or wrong file); "
            "the file was deleted and nothing was extracted, run again to download it afresh"
        )
    os.replace(part, target)
    _write_stamp(target, md5)
    return target


def _transfer(url: str, part: Path, bar: _ByteProgress, *, size: int | None, retries: int, timeout: float) -> None:
    """Fill ``part`` with the whole remote file, advancing ``bar``."""
    failures = 0
    checked_space = False
    best = part.stat().st_size if part.exists() else 0  # the most bytes the .part ever held: real progress
    attempts = 0
    while True:
        attempts += 1
        if attempts > _MAX_ATTEMPTS_PER_RETRY * (retries + 1):
            raise DownloadError(
                f"{url}: the transfer keeps stopping short ({attempts - 1} attempts, {_size_text(best)} at most); "
                "try another mirror, or run again later to resume"
            )
        offset = part.stat().st_size if part.exists() else 0
        got = 0
        try:
            response = open_url(url, offset, timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise RemoteNotFoundError(
                    f"{url}: not found (HTTP 404); check the file name and --url/base_url"
                ) from exc
            if exc.code == 416 and offset:
                return  # the .part already holds the whole file: verify it
            if exc.code in (408, 429, 500, 502, 503, 504) and failures < retries:
                failures += 1
                _wait(failures, url, f"HTTP {exc.code}")
                continue
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
        except TRANSIENT_ERRORS as exc:
            if failures < retries:
                failures += 1
                _wait(failures, url, str(exc))
                continue
            raise DownloadError(f"{url}: {exc} (after {failures} retries); run again to resume") from exc
        with response:
            length = response.headers.get("Content-Length")
            remaining = int(length) if length and length.isdigit() else None
            if offset and response.status == 206:
                content_range = response.headers.get("Content-Range", "")
                match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", content_range)
                if match is None or int(match.group(1)) != offset:
                    raise DownloadError(f"{url}: server answered a resume with Content-Range {content_range!r}")
            elif offset:
                logger.info("%s: server ignored the Range request; starting again", url)
                offset = 0
            total = offset + remaining if remaining is not None else size
            if not checked_space:
                check_space(part.parent, (total or 0) - offset, f"downloading {part.name[:-5]}")
                checked_space = True
            bar.total, bar.done = total, offset
            try:
                with open(part, "ab" if offset else "wb") as handle:
                    while chunk := response.read(_CHUNK):
                        handle.write(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
            except TRANSIENT_ERRORS as exc:
                if offset + got > best:  # new bytes: the connection is worth resuming at once
                    best, failures = offset + got, 0
                if failures < retries:
                    failures += 1
                    logger.warning("%s: connection dropped after %d bytes (%s); resuming", url, offset + got, exc)
                    if offset + got < best or not got:
                        _wait(failures, url, str(exc))
                    continue
                raise DownloadError(f"{url}: {exc} (after {failures} retries); run again to resume") from exc
            except OSError as exc:
                if exc.errno == 28:  # ENOSPC
                    raise DiskFullError(f"{part}: disk full after {_size_text(offset + got)}") from exc
                raise DownloadError(f"{part}: cannot write ({exc.strerror or exc})") from exc
        if remaining is not None and got < remaining:
            progressed = offset + got > best
            if progressed:  # only bytes beyond the best so far count (a server ignoring Range restarts at 0)
                best, failures = offset + got, 0
            if failures < retries:
                failures += 1
                logger.warning("%s: connection closed after %d of %d bytes; resuming", url, offset + got, total)
                if not progressed:
                    _wait(failures, url, "no new bytes")
                continue
            raise DownloadError(
                f"{url}: the transfer keeps stopping short (after {failures} retries without new bytes); "
                "try another mirror, or run again later to resume"
            )
        return


def _wait(failures: int, url: str, why: str) -> None:
    delay = min(30.0, _RETRY_WAIT * 2 ** (failures - 1))
    logger.warning("%s: %s; retry %d in %.0f s", url, why, failures, delay)
    time.sleep(delay)


# ---------------------------------------------------------------------------------------------- extraction
