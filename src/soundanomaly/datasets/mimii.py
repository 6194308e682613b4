"""Index clips laid out as the MIMII archives lay them out.

``<snr>_<machine>/<machine>/id_NN/<normal|abnormal>/*.wav``, for example
``6_dB_fan/fan/id_00/abnormal/00000012.wav`` or ``-6_dB_pump/pump/id_02/...``.
The SNR folder may be missing or say ``unknown_snr``; its SNR is then ``None``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from soundanomaly.audio import find_clips
from soundanomaly.datasets.clips import LABELS, UNLABELLED, ClipRecord, ClipSet, Label
from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import PathLike

__all__ = ["LABELS", "MIMII", "UNLABELLED", "ClipRecord", "ClipSet", "Label", "parse_path"]

_SNR = re.compile(r"^(-?\d+(?:\.\d+)?)_?dB", re.IGNORECASE)
_ID = re.compile(r"^id_(\d+)$")


class MIMII(ClipSet):
    """All clips under a MIMII-style folder (the full dataset, one archive, or a subset).

    Parameters
    ----------
    root : path
        A folder that contains ``.../<machine>/id_NN/<normal|abnormal>/*.wav``
        at any depth, e.g. the folder holding ``6_dB_fan/`` and ``0_dB_fan/``.
    extensions : sequence of str, default (".wav",)

    Raises
    ------
    ParameterError
        If ``root`` does not exist or contains no clip in that layout.

    Examples
    --------
    >>> from soundanomaly.datasets import synthetic
    >>> root = synthetic.write_dataset("fans", ids=[0], n_normal=2, n_abnormal=1, duration=1.0)
    >>> MIMII(root)
    MIMII(3 clips: 2 normal, 1 abnormal)
    """

    def __init__(self, root: PathLike, *, extensions: Sequence[str] = (".wav",)) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ParameterError(f"root {os.fspath(root)!r} is not a folder")
        records = sorted(
            record
            for path in find_clips(self.root, extensions=extensions)  # the one rule for which entries are clips
            if (record := parse_path(path)) is not None
        )
        if not records:
            raise ParameterError(
                f"no clips found under {os.fspath(root)!r}: expected "
                "<snr>_<machine>/<machine>/id_NN/<normal|abnormal>/*.wav"
            )
        super().__init__(records)


def parse_path(path: PathLike) -> ClipRecord | None:
    """Parse a MIMII-layout path into a record; ``None`` if it does not fit the layout.

    Examples
    --------
    >>> record = parse_path("-6_dB_valve/valve/id_04/normal/00000003.wav")
    >>> record.machine, record.machine_id, record.snr, record.label, record.layout
    ('valve', 4, -6.0, 'normal', 'mimii')
    >>> parse_path("notes/readme.wav") is None
    True

    """
    parts = Path(path).parts
    if len(parts) < 4:
        return None
    label, id_dir, machine = parts[-2], parts[-3], parts[-4]
    id_match = _ID.match(id_dir)
    if label not in LABELS or id_match is None:
        return None
    snr: float | None = None
    if len(parts) >= 5 and (snr_match := _SNR.match(parts[-5])) is not None:
        snr = float(snr_match.group(1))
    return ClipRecord(os.fspath(path), machine, int(id_match.group(1)), snr, label)  # type: ignore[arg-type]
