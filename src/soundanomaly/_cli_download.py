"""``soundanomaly download``: verified, resumable downloads of MIMII and the DCASE Task 2 development sets.

``cli.build_parser`` registers these commands with ``add_commands(sub)``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_commands"]


def _cmd_mimii(args: argparse.Namespace) -> int:
    from soundanomaly.datasets.download import download_mimii

    folder = download_mimii(
        args.dir,
        machine=args.machine,
        snr=args.snr,
        ids=args.ids,
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


def add_commands(subparsers: Any) -> None:
    """Add ``download mimii`` and ``download dcase`` to the ``soundanomaly`` sub-command parsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``parser.add_subparsers()`` returned.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="soundanomaly")
    >>> add_commands(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["download", "mimii", "--machine", "fan", "--snr", "6", "--ids", "0", "2", "data"])
    >>> args.machine, args.snr, args.ids, args.dir, args.url
    ('fan', 6, [0, 2], 'data', None)
    """
    download = subparsers.add_parser(
        "download",
        help="download MIMII or a DCASE Task 2 development set (resumable, MD5-verified)",
        description="Download, verify (MD5) and extract a data set. An interrupted download resumes when "
        "the same command is run again; a second run of a finished download only checks it.",
    )
    which = download.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("dir", metavar="DIR", help="data folder (the archive is kept in DIR/.downloads)")
        p.add_argument("--url", help="mirror: folder URL holding the archive (default: Zenodo)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--delete-archive", action="store_true", help="delete the zip after extracting")

    mimii = which.add_parser(
        "mimii",
        help="MIMII (Zenodo record 3384388): one machine type at one SNR, only the ids asked for",
        description="Download <snr>_dB_<machine>.zip from Zenodo record 3384388 (7-11 GB), verify its MD5 and "
        "extract the requested ids into DIR/<snr>_dB_<machine>/<machine>/id_NN/.",
    )
    mimii.add_argument("--machine", required=True, choices=["fan", "pump", "slider", "valve"])
    mimii.add_argument("--snr", required=True, type=int, choices=[-6, 0, 6], help="SNR in dB")
    mimii.add_argument("--ids", type=int, nargs="+", help="machine ids to extract, e.g. 0 2 (default: all)")
    common(mimii)
    mimii.set_defaults(func=_cmd_mimii)

    dcase = which.add_parser(
        "dcase",
        help="one machine type of a DCASE Task 2 development set (2020-2024)",
        description="Download a DCASE Task 2 development archive from Zenodo, verify its MD5 (from the Zenodo "
        "record, or --md5) and extract it into DIR/dcase<year>_dev/<machine>/.",
    )
    dcase.add_argument("--year", required=True, type=int, choices=[2020, 2021, 2022, 2023, 2024])
    dcase.add_argument("--machine", required=True, help="machine type as DCASE spells it: fan, ToyCar, bearing, ...")
    dcase.add_argument("--md5", help="expected MD5 (default: read from the Zenodo record)")
    common(dcase)
    dcase.set_defaults(func=_cmd_dcase)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: soundanomaly download ...")
