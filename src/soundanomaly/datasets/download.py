"""Verified, resumable downloads of MIMII (Zenodo record 3384388) and the DCASE Task 2 development sets.

Every archive is a registry entry of file name, size and MD5 (the MIMII table is
below; DCASE checksums are read from the Zenodo record, or passed in). A
download

* streams to ``<root>/.downloads/<file>.part`` in 1 MiB chunks (flat memory),
  with a progress bar showing the rate and the time left;
* checks the free space before it starts (and before it extracts);
* resumes with an HTTP ``Range`` request after a dropped connection (a few
  retries in-process) or in a later call after Ctrl-C: the ``.part`` file is kept;
* is verified by MD5 before anything is extracted; a corrupt file is deleted;
* extracts only the requested machine ids from a MIMII zip (a 10 GB archive
  need not be unpacked for one id), each id into a temporary folder that is
  renamed into place with a completeness marker written last, so no
  half-extracted folder ever looks complete;
* is idempotent: a second call checks the markers and the extracted file sizes
  and returns without touching the network.

Why not :mod:`pooch` (already installed with librosa)? Its ``HTTPDownloader``
always starts from byte 0 into a fresh temporary file that is deleted on
failure, so a dropped connection 9 GB into a 10 GB file loses everything;
resuming needs an HTTP ``Range`` request, which pooch does not send. The
registry-of-hashes idea is pooch's; the transfer is a small loop over
:mod:`urllib` in :mod:`soundanomaly.datasets.fetch` (whose error classes and
:func:`~soundanomaly.datasets.fetch.fetch` this module re-exports).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from soundanomaly._safeio import MARKER
from soundanomaly.datasets.fetch import (
    TRANSIENT_ERRORS,
    ChecksumError,
    DiskFullError,
    DownloadError,
    DownloadInterruptedError,
    RemoteFile,
    RemoteNotFoundError,
    check_space,
    fetch,
    open_url,
    stamp_path,
)
from soundanomaly.exceptions import ParameterError, SoundAnomalyError
from soundanomaly.typing import PathLike

__all__ = [
    "DCASE_RECORDS",
    "MIMII_REGISTRY",
    "MIMII_URL",
    "ChecksumError",
    "DiskFullError",
    "DownloadError",
    "DownloadInterruptedError",
    "RemoteFile",
    "RemoteNotFoundError",
    "download_dcase",
    "download_mimii",
    "fetch",
]

logger = logging.getLogger("soundanomaly.datasets.download")

#: Folder of the MIMII archives on Zenodo (record 3384388).
MIMII_URL = "https://zenodo.org/records/3384388/files"
_ZENODO = "https://zenodo.org"
_CHUNK = 1 << 20
_MACHINES = ("fan", "pump", "slider", "valve")
_SNRS = (-6, 0, 6)


def _gb(value: float) -> int:
    return int(value * 1e9)


#: MIMII archives on Zenodo record 3384388: MD5 and size as Zenodo lists them (sizes rounded to 0.1 GB).
MIMII_REGISTRY: dict[str, RemoteFile] = {
    "-6_dB_fan.zip": RemoteFile("f02ae808a58d84b6815b7ec38ff30879", _gb(10.9)),
    "-6_dB_pump.zip": RemoteFile("d20b783a0ff9c93d58f452f98c37b112", _gb(8.2)),
    "-6_dB_slider.zip": RemoteFile("49913eda7d37f182cbf8ed5c984140e0", _gb(8.0)),
    "-6_dB_valve.zip": RemoteFile("fdfaf185fea61b21e11952a070a4ada7", _gb(8.0)),
    "0_dB_fan.zip": RemoteFile("6354d1cc2165c52168f9ef1bcd9c7c52", _gb(10.4)),
    "0_dB_pump.zip": RemoteFile("488748295c3f60b25de07b58fe75b049", _gb(7.9)),
    "0_dB_slider.zip": RemoteFile("4d674c21474f0646ecd75546db6c0c4e", _gb(7.5)),
    "0_dB_valve.zip": RemoteFile("178478eb0d11c79080a35562bfdeee71", _gb(7.5)),
    "6_dB_fan.zip": RemoteFile("0890f7d3c2fd8448634e69ff1d66dd47", _gb(10.2)),
    "6_dB_pump.zip": RemoteFile("a09ba6060c10fc09cd4c8770213b0b9f", _gb(7.7)),
    "6_dB_slider.zip": RemoteFile("838c2b3441858359c4704ef13a1b27ff", _gb(7.1)),
    "6_dB_valve.zip": RemoteFile("fe5fb7c337cd701b1d31dc641e621892", _gb(6.9)),
}

#: DCASE Task 2 development sets on Zenodo: year -> (record id, archive name pattern), as the organisers'
#: baseline download scripts use them (2023: the re-issued record 7882613).
DCASE_RECORDS: dict[int, tuple[str, str]] = {
    2020: ("3678171", "dev_data_{machine}.zip"),
    2021: ("4562016", "dev_data_{machine}.zip"),
    2022: ("6355122", "dev_{machine}.zip"),
    2023: ("7882613", "dev_{machine}.zip"),
    2024: ("10902294", "dev_{machine}.zip"),
}


def _complete(folder: Path, md5: str) -> bool:
    """True when ``folder`` holds the marker of a finished extraction of the archive ``md5`` and all its files."""
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(marker, dict) or marker.get("kind") != "download" or marker.get("md5") != md5:
        return False
    files = marker.get("files")
    if not isinstance(files, dict):
        return False
    for name, size in files.items():
        path = folder / name
        try:
            if path.stat().st_size != size:
                return False
        except OSError:
            return False
    return True


def _safe_part(name: str) -> bool:
    return name not in ("", ".", "..") and "\\" not in name and not name.startswith("/")


def _extract(
    archive: zipfile.ZipFile,
    members: Sequence[tuple[zipfile.ZipInfo, str]],
    final: Path,
    *,
    md5: str,
    source: str,
    progress: bool,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Extract ``members`` (zip entry, path relative to ``final``) into a temporary sibling, then rename it."""
    from soundanomaly._progress import ProgressBar

    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and _marker_md5(final) == md5:
        _repair(archive, members, final, md5=md5, source=source, extra=extra)
        return
    if final.exists():
        raise SoundAnomalyError(
            f"{final}: exists but is not a complete download by soundanomaly (no completeness marker); "
            "move it away and run again"
        )
    for stale in final.parent.glob(f".{final.name}.tmp-*"):  # left by a killed earlier run (our own prefix)
        shutil.rmtree(stale, ignore_errors=True)
    check_space(final.parent, sum(info.file_size for info, _ in members), f"extracting {final.name}")
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.tmp-"))
    try:
        files: dict[str, int] = {}
        with ProgressBar(total=len(members), desc=f"extracting {final.name}", enabled=progress) as bar:
            for info, relative in members:
                target = tmp / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                files[relative] = info.file_size
                bar.update()
        marker = {"kind": "download", "source": source, "md5": md5, **(extra or {}), "files": files}
        (tmp / MARKER).write_text(json.dumps(marker))  # last: a folder without it is incomplete
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, final)
    except KeyboardInterrupt as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DownloadInterruptedError(f"{final}: extraction interrupted; nothing was left behind, run again") from exc
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno == 28:
            raise DiskFullError(f"{final}: disk full while extracting; nothing was left behind") from exc
        raise SoundAnomalyError(f"{final}: cannot extract ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _repair(
    archive: zipfile.ZipFile,
    members: Sequence[tuple[zipfile.ZipInfo, str]],
    final: Path,
    *,
    md5: str,
    source: str,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Re-extract the missing or damaged files of a folder an earlier extraction completed (marker first removed)."""
    logger.warning("%s: some extracted files are missing or damaged; extracting them again", final)
    (final / MARKER).unlink()  # from here on the folder no longer looks complete
    files: dict[str, int] = {}
    try:
        for info, relative in members:
            target = final / relative
            files[relative] = info.file_size
            if target.is_file() and target.stat().st_size == info.file_size:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            try:
                with archive.open(info) as src, os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK)
                os.chmod(tmp_name, 0o666 & ~_umask())
                os.replace(tmp_name, target)
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
    except KeyboardInterrupt as exc:
        raise DownloadInterruptedError(f"{final}: repair interrupted; run again") from exc
    except OSError as exc:
        raise SoundAnomalyError(f"{final}: cannot extract ({exc.strerror or exc})") from exc
    marker = {"kind": "download", "source": source, "md5": md5, **(extra or {}), "files": files}
    (final / MARKER).write_text(json.dumps(marker))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{path}: not a readable zip archive ({exc})") from exc


# ---------------------------------------------------------------------------------------------- MIMII

_MIMII_MEMBER = re.compile(r"(?:^|/)([^/]+)/id_(\d+)/(normal|abnormal)/([^/]+\.wav)$", re.IGNORECASE)


def download_mimii(
    root: PathLike,
    *,
    machine: str,
    snr: int,
    ids: Iterable[int] | None = None,
    progress: bool = True,
    base_url: str | None = None,
    registry: Mapping[str, RemoteFile] | None = None,
    keep_archive: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
) -> Path:
    """Download one MIMII archive from Zenodo, verify it, and extract the requested machine ids.

    Parameters
    ----------
    root : path
        Data folder. The clips land in ``<root>/<snr>_dB_<machine>/<machine>/id_NN/<normal|abnormal>/``
        (the layout :class:`~soundanomaly.datasets.MIMII` reads); the archive in ``<root>/.downloads/``.
    machine : {"fan", "pump", "slider", "valve"}
    snr : {-6, 0, 6}
        Signal-to-noise ratio in dB of the archive.
    ids : iterable of int, optional
        Machine ids to extract (MIMII has 0, 2, 4, 6). Default: all ids in the archive.
    progress : bool, default True
        Progress bars (bytes, rate, time left; files extracted) on stderr.
    base_url : str, optional
        Folder URL of a mirror holding ``<snr>_dB_<machine>.zip``. Default :data:`MIMII_URL`.
    registry : mapping of str to RemoteFile, optional
        Archive name -> MD5 and size. Default :data:`MIMII_REGISTRY` (the checksums Zenodo lists).
    keep_archive : bool, default True
        Keep the verified zip (10 GB) so that other ids can be extracted later without a download.
    retries, timeout
        See :func:`fetch`.

    Returns
    -------
    Path
        ``<root>/<snr>_dB_<machine>``.

    Raises
    ------
    ParameterError
        Unknown machine or SNR, or an id the archive does not hold.
    RemoteNotFoundError, ChecksumError, DiskFullError, DownloadInterruptedError, DownloadError
        See :func:`fetch`. Nothing is extracted from an unverified file.

    Examples
    --------
    >>> download_mimii("data", machine="drill", snr=6)
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: machine must be one of fan, pump, slider, valve; got 'drill'

    To fetch fan at 6 dB, id 00 only (a 10.2 GB download, about 1 GB extracted)::

        download_mimii("data", machine="fan", snr=6, ids=[0])
        clips = MIMII("data").filter(ids=0)
    """
    if machine not in _MACHINES:
        raise ParameterError(f"machine must be one of {', '.join(_MACHINES)}; got {machine!r}")
    if isinstance(snr, bool) or snr not in _SNRS:
        raise ParameterError(f"snr must be one of -6, 0, 6 (dB); got {snr!r}")
    wanted = None if ids is None else sorted({_check_id(i) for i in ids})
    name = f"{snr}_dB_{machine}.zip"
    entry = (MIMII_REGISTRY if registry is None else registry).get(name)
    if entry is None:
        raise ParameterError(f"{name} is not in the registry")
    base = Path(root)
    data = base / f"{snr}_dB_{machine}"
    machine_dir = data / machine
    # "all ids" (ids=None) are known from the marker of any id folder extracted before, without the archive
    wanted_now = _archive_ids(machine_dir, entry.md5) if wanted is None else wanted
    if wanted_now and all(_complete(machine_dir / f"id_{i:02d}", entry.md5) for i in wanted_now):
        logger.info("%s: ids %s already downloaded and complete", data, wanted_now)
        if not keep_archive:
            _drop_archive(base / ".downloads" / name)
        return data
    archive_path = fetch(
        f"{(base_url or MIMII_URL).rstrip('/')}/{name}",
        base / ".downloads" / name,
        md5=entry.md5,
        size=entry.size,
        progress=progress,
        retries=retries,
        timeout=timeout,
    )
    with _open_zip(archive_path) as archive:
        by_id: dict[int, list[tuple[zipfile.ZipInfo, str]]] = {}
        for info in archive.infolist():
            match = _MIMII_MEMBER.search(info.filename)
            if match is None or info.is_dir() or match.group(1).lower() != machine:
                continue
            label, filename = match.group(3).lower(), match.group(4)
            if _safe_part(filename):
                by_id.setdefault(int(match.group(2)), []).append((info, f"{label}/{filename}"))
        if not by_id:
            raise DownloadError(f"{archive_path}: holds no {machine}/id_NN/<normal|abnormal>/*.wav clips")
        missing = [i for i in (wanted or []) if i not in by_id]
        if missing:
            raise ParameterError(
                f"ids {missing} are not in {name}; it holds ids {', '.join(str(i) for i in sorted(by_id))}"
            )
        for machine_id in wanted if wanted is not None else sorted(by_id):
            final = machine_dir / f"id_{machine_id:02d}"
            if _complete(final, entry.md5):
                continue
            _extract(
                archive,
                by_id[machine_id],
                final,
                md5=entry.md5,
                source=name,
                progress=progress,
                extra={"archive_ids": sorted(by_id)},
            )
    if not keep_archive:
        _drop_archive(archive_path)
    return data


def _drop_archive(path: Path) -> None:
    path.unlink(missing_ok=True)
    stamp_path(path).unlink(missing_ok=True)


def _archive_ids(machine_dir: Path, md5: str) -> list[int]:
    """The ids the archive holds, as recorded in the marker of any id folder extracted from it (else [])."""
    for marker in sorted(machine_dir.glob(f"id_*/{MARKER}")):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            content = json.loads(marker.read_text())
            ids = content.get("archive_ids")
            if content.get("md5") == md5 and isinstance(ids, list) and all(isinstance(i, int) for i in ids):
                return [int(i) for i in ids]
    return []


def _check_id(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParameterError(f"ids must be non-negative ints, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------- DCASE

_DCASE_MEMBER = re.compile(r"(?:^|/)([^/]+)/(train|test|source_test|target_test)/([^/]+\.wav)$", re.IGNORECASE)


def _zenodo_md5(api_url: str, name: str, timeout: float) -> RemoteFile:
    """MD5 and size of ``name`` from a Zenodo record's JSON (``files[].key/checksum/size``)."""
    try:
        with open_url(api_url, 0, timeout) as response:
            record = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise RemoteNotFoundError(f"{api_url}: record not found (HTTP 404)") from exc
        raise DownloadError(f"{api_url}: HTTP {exc.code} {exc.reason}") from exc
    except (*TRANSIENT_ERRORS, ValueError, UnicodeDecodeError) as exc:
        raise DownloadError(f"{api_url}: cannot read the record's checksums ({exc}); pass md5= / --md5") from exc
    files = record.get("files") if isinstance(record, dict) else None
    entries = files.get("entries") if isinstance(files, dict) else files
    if isinstance(entries, dict):
        entries = list(entries.values())
    for item in entries if isinstance(entries, list) else []:
        if isinstance(item, dict) and item.get("key") == name:
            checksum = str(item.get("checksum", ""))
            md5 = checksum.removeprefix("md5:")
            if re.fullmatch(r"[0-9a-fA-F]{32}", md5):
                return RemoteFile(md5.lower(), _record_size(api_url, name, item.get("size")))
    raise DownloadError(f"{api_url}: no MD5 listed for {name}; pass md5= / --md5")


def _record_size(api_url: str, name: str, value: Any) -> int:
    """A record's ``size`` as a whole number of bytes (0 when absent); anything else names the field."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 2**50:
        raise DownloadError(
            f"{api_url}: the record lists size {value!r} for {name}, not a whole number of bytes; pass md5= / --md5"
        )
    return value


def download_dcase(
    root: PathLike,
    *,
    year: int,
    machine: str,
    progress: bool = True,
    base_url: str | None = None,
    md5: str | None = None,
    api_url: str | None = None,
    keep_archive: bool = True,
    retries: int = 5,
    timeout: float = 60.0,
) -> Path:
    """Download one machine type of a DCASE Task 2 development set (2020–2024), verify it and extract it.

    Parameters
    ----------
    root : path
        Data folder. Clips land in ``<root>/dcase<year>_dev/<machine>/<train|test|...>/*.wav``
        (the layout :class:`~soundanomaly.datasets.DCASE` reads); the archive in ``<root>/.downloads/``.
    year : {2020, 2021, 2022, 2023, 2024}
    machine : str
        Machine type as DCASE spells it in the archive name, e.g. ``"fan"``, ``"ToyCar"``, ``"bearing"``.
    progress : bool, default True
    base_url : str, optional
        Folder URL holding the archive. Default ``https://zenodo.org/records/<record>/files``.
    md5 : str, optional
        Expected MD5. Default: read from the Zenodo record (``api_url``).
    api_url : str, optional
        Zenodo record JSON listing the checksums. Default ``https://zenodo.org/api/records/<record>``.
    keep_archive : bool, default True
    retries, timeout
        See :func:`fetch`.

    Returns
    -------
    Path
        ``<root>/dcase<year>_dev``.

    Examples
    --------
    >>> download_dcase("data", year=2019, machine="fan")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ParameterError: year must be one of 2020, 2021, 2022, 2023, 2024; got 2019
    """
    if year not in DCASE_RECORDS:
        raise ParameterError(f"year must be one of {', '.join(map(str, DCASE_RECORDS))}; got {year!r}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", machine):
        raise ParameterError(f"machine must be a DCASE machine type such as 'fan' or 'ToyCar', got {machine!r}")
    record, pattern = DCASE_RECORDS[year]
    name = pattern.format(machine=machine)
    data = Path(root) / f"dcase{year}_dev"
    final = data / machine
    archive_name = Path(root) / ".downloads" / f"dcase{year}_{name}"
    known = md5.lower() if md5 is not None else _marker_md5(final)
    if known is not None and _complete(final, known):
        if not keep_archive:
            _drop_archive(archive_name)
        return data
    if md5 is not None:
        entry = RemoteFile(md5.lower(), 0)
    else:
        entry = _zenodo_md5(api_url or f"{_ZENODO}/api/records/{record}", name, timeout)
    archive_path = fetch(
        f"{(base_url or f'{_ZENODO}/records/{record}/files').rstrip('/')}/{name}",
        archive_name,
        md5=entry.md5,
        size=entry.size or None,
        progress=progress,
        retries=retries,
        timeout=timeout,
    )
    with _open_zip(archive_path) as archive:
        members = []
        for info in archive.infolist():
            match = _DCASE_MEMBER.search(info.filename)
            if match is None or info.is_dir() or match.group(1).lower() != machine.lower():
                continue
            if _safe_part(match.group(3)):
                members.append((info, f"{match.group(2)}/{match.group(3)}"))
        if not members:
            raise DownloadError(f"{archive_path}: holds no {machine}/<train|test>/*.wav clips")
        _extract(archive, members, final, md5=entry.md5, source=name, progress=progress)
    if not keep_archive:
        _drop_archive(archive_path)
    return data


def _marker_md5(folder: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        value = json.loads((folder / MARKER).read_text()).get("md5")
        return value if isinstance(value, str) else None
    return None
