"""Clip records and clip sets: what every dataset layout (MIMII, DCASE, your own) is indexed into.

A :class:`ClipRecord` describes one clip (path, machine, id or section, label,
DCASE domain and attributes, an optional recording session); a
:class:`ClipSet` is an ordered, immutable selection of them. The group and
session keys of a clip come from :mod:`soundanomaly.datasets.keys`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final, Literal, overload

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = ["LABELS", "UNLABELLED", "ClipRecord", "ClipSet", "Label"]

Label = Literal["normal", "abnormal", "unknown"]
#: Integer code of each label: **1 = anomaly** (the positive class).
LABELS: dict[str, int] = {"normal": 0, "abnormal": 1}
#: Label of a clip whose file name does not say (DCASE evaluation sets).
UNLABELLED: Final = "unknown"


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
    label : {"normal", "abnormal", "unknown"}
        ``"unknown"`` for clips of an unlabelled evaluation set (DCASE ``eval_data``).
        DCASE's ``anomaly`` is stored as ``"abnormal"``.
    domain : {"source", "target"} or None
        DCASE 2021+ domain; ``None`` for MIMII, DCASE 2020 and eval sets that hide it.
    split : {"train", "test"} or None
        DCASE split folder; ``None`` for MIMII (which has no split).
    attributes : str
        DCASE attribute string after the clip number, e.g. ``"car_A1_spd_28V_mic_1"``; ``""`` if none.
    layout : {"mimii", "dcase2020", "dcase"}
        Naming scheme the record was parsed from; ``"dcase"`` is 2021 onwards,
        where :attr:`machine_id` holds the *section* number.
    session : str or None
        A recording session (a day, a run, an operating condition) set by the
        caller; the session key of :func:`~soundanomaly.datasets.keys.session_key`
        when given. ``None`` by default (DCASE 2021+ clips then use their domain).

    Examples
    --------
    >>> record = ClipRecord("6_dB_fan/fan/id_02/abnormal/00000001.wav", "fan", 2, 6.0, "abnormal")
    >>> record.y, record.group
    (1, 'fan id_02 6dB')
    >>> ClipRecord("fan/test/section_01_target_test_anomaly_0003.wav", "fan", 1, None, "abnormal",
    ...            domain="target", split="test", layout="dcase").group
    'fan section_01 target'

    """

    path: str
    machine: str
    machine_id: int
    snr: float | None
    label: Label
    domain: str | None = None
    split: str | None = None
    attributes: str = ""
    layout: str = "mimii"
    session: str | None = None

    @property
    def labelled(self) -> bool:
        """False for a clip of an unlabelled evaluation set."""
        return self.label != UNLABELLED

    @property
    def section(self) -> int:
        """DCASE section (2021+) or machine id (MIMII, DCASE 2020): the unit DCASE scores by."""
        return self.machine_id

    @property
    def y(self) -> int:
        """1 for an anomaly, 0 for normal.

        Raises
        ------
        ParameterError
            If the clip is unlabelled.
        """
        if self.label not in LABELS:
            raise ParameterError(f"{self.path}: clip is unlabelled (label {self.label!r}); it has no 0/1 label")
        return LABELS[self.label]

    @property
    def group(self) -> str:
        """``"fan id_00 6dB"`` (MIMII) or ``"fan section_00 source"`` (DCASE): the per-group *evaluation* key.

        The key a per-machine model is fitted and routed by is
        :func:`~soundanomaly.datasets.keys.group_key` (``"fan/id_00"``, ``"fan/section_00"``).
        """
        if self.layout == "dcase":
            return f"{self.machine} section_{self.machine_id:02d} {self.domain or 'unknown domain'}"
        if self.layout == "dcase2020":
            return f"{self.machine} id_{self.machine_id:02d}"
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
        counts = {lab: sum(r.label == lab for r in self) for lab in (*LABELS, UNLABELLED)}
        unlabelled = f", {counts[UNLABELLED]} unlabelled" if counts[UNLABELLED] else ""
        return (
            f"{type(self).__name__}({len(self)} clips: {counts['normal']} normal, {counts['abnormal']} abnormal"
            f"{unlabelled})"
        )

    def take(self, indices: Iterable[int]) -> ClipSet:
        """The records at ``indices``, in that order."""
        return ClipSet(self._records[int(i)] for i in indices)

    @property
    def paths(self) -> list[str]:
        """File path of each clip."""
        return [r.path for r in self]

    @property
    def labels(self) -> npt.NDArray[np.int8]:
        """Label of each clip as int8, **1 = anomaly**.

        Raises
        ------
        ParameterError
            If some clips are unlabelled (use ``filter(labelled=True)``, or score them
            and write a DCASE submission instead).
        """
        unlabelled = sum(not r.labelled for r in self)
        if unlabelled:
            raise ParameterError(
                f"{unlabelled} of {len(self)} clips are unlabelled (an evaluation set without normal/anomaly "
                "in the file names): they can be scored but not evaluated; use filter(labelled=True)"
            )
        return np.array([r.y for r in self], dtype=np.int8)

    @property
    def labelled(self) -> bool:
        """True when every clip has a normal/abnormal label."""
        return all(r.labelled for r in self)

    @property
    def groups(self) -> list[str]:
        """Group key of each clip: ``"<machine>/id_NN"`` (MIMII, DCASE 2020) or ``"<machine>/section_NN"``.

        The key :class:`~soundanomaly.detectors.PerGroup` fits and routes by, and
        what ``fit``/``score`` take as ``groups=`` (see
        :func:`~soundanomaly.datasets.keys.group_key`). The per-group
        *evaluation* key (with SNR or domain) is :attr:`eval_groups`.

        Examples
        --------
        >>> ClipSet([ClipRecord("a.wav", "fan", 0, 6.0, "normal"),
        ...          ClipRecord("b.wav", "pump", 1, None, "normal", domain="target", layout="dcase")]).groups
        ['fan/id_00', 'pump/section_01']
        """
        from soundanomaly.datasets.keys import group_key

        return [group_key(r) for r in self]

    @property
    def sessions(self) -> list[str | None]:
        """Session key of each clip (:func:`~soundanomaly.datasets.keys.session_key`), None where unknown.

        Examples
        --------
        >>> ClipSet([ClipRecord("a.wav", "fan", 0, 6.0, "normal", session="day 1"),
        ...          ClipRecord("b.wav", "pump", 1, None, "normal", domain="target", layout="dcase")]).sessions
        ['day 1', 'pump/section_01/target']
        """
        from soundanomaly.datasets.keys import session_key

        return [session_key(r) for r in self]

    @property
    def eval_groups(self) -> list[str]:
        """Per-group *evaluation* key of each clip (machine, id and SNR; DCASE: section and domain).

        What :meth:`~soundanomaly.evaluation.Evaluator.evaluate` takes as ``groups=`` for
        per-group metrics (:attr:`ClipRecord.group`).
        """
        return [r.group for r in self]

    def filter(
        self,
        *,
        machine: str | Iterable[str] | None = None,
        ids: int | Iterable[int] | None = None,
        snr: float | Iterable[float] | None = None,
        label: Label | None = None,
        domain: str | None = None,
        split: str | None = None,
        labelled: bool | None = None,
    ) -> ClipSet:
        """Keep the clips that match every given criterion.

        Parameters
        ----------
        machine : str or iterable of str, optional
        ids : int or iterable of int, optional
            Machine ids (``id_NN``), or DCASE sections.
        snr : float or iterable of float, optional
            SNR in dB (clips of unknown SNR never match).
        label : {"normal", "abnormal", "unknown"}, optional
        domain : {"source", "target"}, optional
            DCASE domain (clips without one never match).
        split : {"train", "test"}, optional
            DCASE split folder (MIMII clips, which have none, never match).
        labelled : bool, optional
            Keep only labelled (True) or only unlabelled (False) clips.
        """
        if label is not None and label not in (*LABELS, UNLABELLED):
            raise ParameterError(f"label must be 'normal', 'abnormal' or 'unknown', got {label!r}")
        if domain is not None and domain not in ("source", "target"):
            raise ParameterError(f"domain must be 'source' or 'target', got {domain!r}")
        if split is not None and split not in ("train", "test"):
            raise ParameterError(f"split must be 'train' or 'test', got {split!r}")
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
            and (domain is None or r.domain == domain)
            and (split is None or r.split == split)
            and (labelled is None or r.labelled == labelled)
        )
