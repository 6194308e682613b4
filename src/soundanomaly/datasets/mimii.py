"""Index clips laid out as the MIMII archives lay them out.

``<snr>_<machine>/<machine>/id_NN/<normal|abnormal>/*.wav``, for example
``6_dB_fan/fan/id_00/abnormal/00000012.wav`` or ``-6_dB_pump/pump/id_02/...``.
The SNR folder may be missing or say ``unknown_snr``; its SNR is then ``None``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import PathLike

__all__ = ["LABELS", "MIMII", "ClipRecord", "ClipSet", "Label"]

Label = Literal["normal", "abnormal"]
#: Integer code of each label: **1 = anomaly** (the positive class).
LABELS: dict[str, int] = {"normal": 0, "abnormal": 1}
_SNR = re.compile(r"^(-?\d+(?:\.\d+)?)_?dB", re.IGNORECASE)
_ID = re.compile(r"^id_(\d+)$")


@dataclass(frozen=True, order=True)
class ClipRecord:
    """One clip of a machine-sound dataset.

    Attributes
    ----------
    path : str
        File path or URL.
    machine : str
        Machine type, e.g. ``"fan"``.
    machine_id : int
        Machine instance (MIMII's ``id_NN``).
    snr : float or None
        Signal-to-noise ratio of the recording in dB, ``None`` when unknown.
    label : {"normal", "abnormal"}

    Examples
    --------
    >>> record = ClipRecord("6_dB_fan/fan/id_02/abnormal/00000001.wav", "fan", 2, 6.0, "abnormal")
    >>> record.y, record.group
    (1, 'fan id_02 6dB')

    """

    path: str
    machine: str
    machine_id: int
    snr: float | None
    label: Label

    @property
    def y(self) -> int:
        """1 for an anomaly, 0 for normal."""
        return LABELS[self.label]

    @property
    def group(self) -> str:
        """``"fan id_00 6dB"``: the key used for per-group evaluation."""
        snr = "unknown SNR" if self.snr is None else f"{self.snr:g}dB"
        return f"{self.machine} id_{self.machine_id:02d} {snr}"


class ClipSet(Sequence[ClipRecord]):
    """An immutable, ordered selection of :class:`ClipRecord`, with filtering.

    Examples
    --------
    >>> clips = ClipSet([ClipRecord("a.wav", "fan", 0, 6.0, "normal"),
    ...                  ClipRecord("b.wav", "fan", 2, 6.0, "abnormal")])
    >>> len(clips.filter(label="abnormal")), clips.labels.tolist()
    (1, [0, 1])
    """

    def __init__(self, records: Iterable[ClipRecord]) -> None:
        self._records: tuple[ClipRecord, ...] = tuple(records)

    @overload
    def __getitem__(self, index: int) -> ClipRecord: ...

    @overload
    def __getitem__(self, index: slice) -> ClipSet: ...

    def __getitem__(self, index: int | slice) -> ClipRecord | ClipSet:
        if isinstance(index, slice):
            return ClipSet(self._records[index])
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[ClipRecord]:
        return iter(self._records)

    def __add__(self, other: ClipSet) -> ClipSet:
        return ClipSet(self._records + tuple(other))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClipSet) and self._records == other._records

    def __hash__(self) -> int:
        return hash(self._records)

    def __repr__(self) -> str:
        counts = {lab: sum(r.label == lab for r in self) for lab in LABELS}
        return f"{type(self).__name__}({len(self)} clips: {counts['normal']} normal, {counts['abnormal']} abnormal)"

    def take(self, indices: Iterable[int]) -> ClipSet:
        """The records at ``indices``, in that order."""
        return ClipSet(self._records[int(i)] for i in indices)

    @property
    def paths(self) -> list[str]:
        """File path of each clip."""
        return [r.path for r in self]

    @property
    def labels(self) -> npt.NDArray[np.int8]:
        """Label of each clip as int8, **1 = anomaly**."""
        return np.array([r.y for r in self], dtype=np.int8)

    @property
    def groups(self) -> list[str]:
        """Per-group evaluation key of each clip (machine, id, SNR)."""
        return [r.group for r in self]

    def filter(
        self,
        *,
        machine: str | Iterable[str] | None = None,
        ids: int | Iterable[int] | None = None,
        snr: float | Iterable[float] | None = None,
        label: Label | None = None,
    ) -> ClipSet:
        """Keep the clips that match every given criterion.

        Parameters
        ----------
        machine : str or iterable of str, optional
        ids : int or iterable of int, optional
            Machine ids (``id_NN``).
        snr : float or iterable of float, optional
            SNR in dB (clips of unknown SNR never match).
        label : {"normal", "abnormal"}, optional
        """
        if label is not None and label not in LABELS:
            raise ParameterError(f"label must be 'normal' or 'abnormal', got {label!r}")
        machines = None if machine is None else ({machine} if isinstance(machine, str) else set(machine))
        id_set = None if ids is None else ({ids} if isinstance(ids, int) else set(ids))
        snrs = None if snr is None else ({float(snr)} if isinstance(snr, (int, float)) else {float(x) for x in snr})
        return ClipSet(
            r
            for r in self
            if (machines is None or r.machine in machines)
            and (id_set is None or r.machine_id in id_set)
            and (snrs is None or r.snr in snrs)
            and (label is None or r.label == label)
        )


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
            for path in self.root.rglob("*")
            if path.suffix.lower() in extensions and (record := parse_path(path)) is not None
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
    >>> parse_path("-6_dB_valve/valve/id_04/normal/00000003.wav")
    ClipRecord(path='-6_dB_valve/valve/id_04/normal/00000003.wav', machine='valve', machine_id=4, snr=-6.0, label='normal')
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
