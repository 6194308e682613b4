"""``soundanomaly download``: verified, resumable downloads of MIMII and the DCASE Task 2 development sets."""

from __future__ import annotations

import argparse
from typing import Any

from soundanomaly.cli._common import chatter
from soundanomaly.exceptions import ParameterError

__all__ = ["add_parser"]


def _ids_and_dir(ids: list[str] | None, folder: str | None) -> tuple[list[int] | None, str]:
    """Split ``--ids 0 2 DIR`` (argparse hands DIR to the greedy ``--ids``) into ids and the folder."""
    values = list(ids or [])
    if folder is None and values and not values[-1].lstrip("-").isdigit():
        folder = values.pop()
    if folder is None:
        raise ParameterError("the data folder DIR is missing: soundanomaly download mimii --machine fan --snr 6 DIR")
    bad = [v for v in values if not v.isdigit()]
    if bad:
        raise ParameterError(f"--ids takes machine ids such as 0 2 4 6, got {' '.join(bad)}")
    return ([int(v) for v in values] if ids else None), folder


def _cmd_mimii(args: argparse.Namespace) -> int:
    from soundanomaly.datasets.download import download_mimii

    ids, folder_arg = _ids_and_dir(args.ids, args.dir)
    folder = download_mimii(
        folder_arg,
        machine=args.machine,
        snr=args.snr,
        ids=ids,
        progress=not args.quiet,
        base_url=args.url,
        keep_archive=not args.delete_archive,
    )
    print(f"MIMII {args.snr} dB {args.machine} ready in {folder}")
    return 0


def _cmd_dcase(args: argparse.Namespace) -> int:
    from soundanomaly.datasets.download import download_dcase

    folder = download_dcase(
        args.dir,
        year=args.year,
        machine=args.machine,
        progress=not args.quiet,
        base_url=args.url,
        md5=args.md5,
        keep_archive=not args.delete_archive,
    )
    print(f"DCASE {args.year} development set, {args.machine}, ready in {folder}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Add ``download mimii`` and ``download dcase`` to the ``soundanomaly`` sub-command parsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``parser.add_subparsers()`` returned.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="soundanomaly")
    >>> add_parser(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["download", "mimii", "--machine", "fan", "--snr", "6", "--ids", "0", "2", "data"])
    >>> args.machine, args.snr, args.url, _ids_and_dir(args.ids, args.dir)
    ('fan', 6, None, ([0, 2], 'data'))
    """
    download = subparsers.add_parser(
        "download",
        help="download MIMII or a DCASE Task 2 development set (resumable, MD5-verified)",
        description="Download, verify (MD5) and extract a data set. An interrupted download resumes when "
        "the same command is run again; a second run of a finished download only checks it.",
    )
    which = download.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    def common(p: argparse.ArgumentParser, *, optional_dir: bool = False) -> None:
        p.add_argument(
            "dir",
            metavar="DIR",
            nargs="?" if optional_dir else None,
            help="data folder (archives go in DIR/.downloads)",
        )
        p.add_argument("--url", help="mirror: folder URL holding the archive (default: Zenodo)")
        p.add_argument("--delete-archive", action="store_true", help="delete the zip after extracting")

    mimii = which.add_parser(
        "mimii",
        parents=[chatter()],
        help="MIMII (Zenodo record 3384388): one machine type at one SNR, only the ids asked for",
        usage="soundanomaly download mimii [-h] --machine {fan,pump,slider,valve} --snr {-6,0,6} [--ids ID [ID ...]] "
        "[--url URL] [-q] [-v] [--delete-archive] DIR",
        description="Download <snr>_dB_<machine>.zip from Zenodo record 3384388 (7-11 GB), verify its MD5 and "
        "extract the requested ids into DIR/<snr>_dB_<machine>/<machine>/id_NN/.",
    )
    mimii.add_argument("--machine", required=True, choices=["fan", "pump", "slider", "valve"], help="machine type")
    mimii.add_argument("--snr", required=True, type=int, choices=[-6, 0, 6], help="SNR in dB")
    mimii.add_argument("--ids", nargs="+", metavar="ID", help="machine ids to extract, e.g. 0 2 (default: all)")
    common(mimii, optional_dir=True)  # DIR may follow --ids: split off in _cmd_mimii
    mimii.set_defaults(func=_cmd_mimii)

    dcase = which.add_parser(
        "dcase",
        parents=[chatter()],
        help="one machine type of a DCASE Task 2 development set (2020-2024)",
        description="Download a DCASE Task 2 development archive from Zenodo, verify its MD5 (from the Zenodo "
        "record, or --md5) and extract it into DIR/dcase<year>_dev/<machine>/.",
    )
    dcase.add_argument(
        "--year", required=True, type=int, choices=[2020, 2021, 2022, 2023, 2024], help="DCASE Task 2 edition"
    )
    dcase.add_argument("--machine", required=True, help="machine type as DCASE spells it: fan, ToyCar, bearing, ...")
    dcase.add_argument("--md5", help="expected MD5 (default: read from the Zenodo record)")
    common(dcase)
    dcase.set_defaults(func=_cmd_dcase)
