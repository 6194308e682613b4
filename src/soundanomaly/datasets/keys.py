"""One group vocabulary: the group key and the session key of a clip, written once.

A **group** is the unit a per-machine model is fitted and routed by: one
machine instance (MIMII and DCASE 2020 ``"<machine>/id_NN"``) or one DCASE
2021+ section (``"<machine>/section_NN"``). A **session** is a recording
condition within a group: a record's explicit :attr:`~ClipRecord.session`
(a day, a run), else a DCASE 2021+ domain (``"<machine>/section_NN/<source|target>"``).

Every part of the package that needs a clip's group (``fit``,
:class:`~soundanomaly.detectors.PerGroup`, :class:`~soundanomaly.detectors.Ensemble`,
the CLI, the monitor) calls :func:`group_key` / :func:`group_keys`; a clip
given as a path gets the same key as its parsed record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from soundanomaly.datasets.clips import ClipRecord, ClipSet
from soundanomaly.exceptions import ParameterError

__all__ = ["GroupBy", "group_key", "group_keys", "record_of", "session_key", "session_keys"]

GroupBy = Literal["machine_id", "machine"]
_GROUP_BY = ("machine_id", "machine")


def record_of(item: ClipRecord | str | os.PathLike[str]) -> ClipRecord | None:
    """The record a path implies (DCASE Task 2 names first, then the MIMII layout), or the record itself.

    Examples
    --------
    >>> record_of("6_dB_fan/fan/id_02/normal/00000001.wav").machine_id
    2
    >>> record_of("clip.wav") is None
    True
    """
    if isinstance(item, ClipRecord):
        return item
    from soundanomaly.datasets.dcase import parse_dcase_path
    from soundanomaly.datasets.mimii import parse_path

    text = os.fspath(item)
    if "\\" in text:
        text = text.replace("\\", "/")
    return parse_dcase_path(text) or parse_path(text)


@overload
def group_key(item: ClipRecord, *, group_by: GroupBy = "machine_id") -> str: ...


@overload
def group_key(item: str | os.PathLike[str], *, group_by: GroupBy = "machine_id") -> str | None: ...


def group_key(item: ClipRecord | str | os.PathLike[str], *, group_by: GroupBy = "machine_id") -> str | None:
    """The group key of a clip record or path: ``"<machine>/id_NN"`` or ``"<machine>/section_NN"``.

    MIMII (``.../<machine>/id_NN/<normal|abnormal>/<file>``) and DCASE 2020
    (``.../<machine>/<train|test>/normal_id_NN_....wav``) give the machine id;
    DCASE 2021+ (``.../<machine>/<split>/section_NN_...wav``) gives the section.

    Parameters
    ----------
    item : ClipRecord, str or os.PathLike
    group_by : {"machine_id", "machine"}, default "machine_id"
        ``"machine"`` keeps the machine type only.

    Returns
    -------
    str or None
        None when a path fits no known layout (a record always has a key).

    Examples
    --------
    >>> group_key("6_dB_fan/fan/id_02/normal/00000001.wav")
    'fan/id_02'
    >>> group_key("dev/pump/test/section_01_source_test_anomaly_0003.wav")
    'pump/section_01'
    >>> group_key("dev/fan/train/normal_id_04_00000000.wav")
    'fan/id_04'
    >>> group_key("6_dB_fan/fan/id_02/normal/00000001.wav", group_by="machine")
    'fan'
    >>> group_key("clip.wav") is None
    True
    """
    if group_by not in _GROUP_BY:
        raise ParameterError(f"group_by must be 'machine_id' or 'machine', got {group_by!r}")
    record = record_of(item)
    if record is None:
        return None
    if group_by == "machine":
        return record.machine
    unit = "section" if record.layout == "dcase" else "id"
    return f"{record.machine}/{unit}_{record.machine_id:02d}"


def session_key(item: ClipRecord | str | os.PathLike[str]) -> str | None:
    """The session key of a clip: its record's ``session`` if set, else ``"<machine>/section_NN/<domain>"``.

    DCASE 2021+ clips whose domain is known get their domain's key; other clips
    (MIMII, DCASE 2020, hidden-domain evaluation clips) have no session (None).

    Examples
    --------
    >>> session_key("dev/fan/test/section_00_target_test_normal_0001_car_B1.wav")
    'fan/section_00/target'
    >>> session_key(ClipRecord("a.wav", "fan", 0, 6.0, "normal", session="2024-05-01"))
    '2024-05-01'
    >>> session_key("6_dB_fan/fan/id_02/normal/00000001.wav") is None
    True
    """
    record = record_of(item)
    if record is None:
        return None
    if record.session is not None:
        return record.session
    if record.layout == "dcase" and record.domain is not None:
        return f"{record.machine}/section_{record.machine_id:02d}/{record.domain}"
    return None


def _given(values: Sequence[Any], n: int, name: str) -> npt.NDArray[np.str_]:
    if isinstance(values, (str, bytes)):
        raise ParameterError(f"{name} must be a sequence with one key per clip, not a single string")
    out = [str(v) for v in values]
    if len(out) != n:
        raise ParameterError(f"got {len(out)} {name} for {n} clips")
    return np.asarray(out, dtype=str)


def _items(data: Any) -> list[Any] | None:
    """Records or paths of ``data`` (a ClipSet, paths, or anything with ``.paths``); None when it has none."""
    if isinstance(data, ClipSet):
        return list(data)
    if hasattr(data, "windows"):  # ClipFeatures: the paths it was extracted from, if any
        paths = list(getattr(data, "paths", ()) or ())
        return paths or None
    items = list(data)
    if not all(isinstance(item, (ClipRecord, str, os.PathLike)) for item in items):
        return None  # not clips: no groups (the caller's input check names the problem)
    return [item if isinstance(item, ClipRecord) else os.fspath(item) for item in items]


@overload
def group_keys(
    data: Any, groups: Sequence[Any] | None = None, *, group_by: GroupBy = "machine_id", required: Literal[True] = True
) -> npt.NDArray[np.str_]: ...


@overload
def group_keys(
    data: Any, groups: Sequence[Any] | None = None, *, group_by: GroupBy = "machine_id", required: bool
) -> npt.NDArray[np.str_] | None: ...


def group_keys(
    data: Any, groups: Sequence[Any] | None = None, *, group_by: GroupBy = "machine_id", required: bool = True
) -> npt.NDArray[np.str_] | None:
    """Per-clip group keys: ``groups`` if given, else :func:`group_key` of each record or path.

    Parameters
    ----------
    data : ClipSet, sequence of paths, or ClipFeatures
    groups : sequence of str, optional
        Explicit keys, one per clip.
    group_by : {"machine_id", "machine"}, default "machine_id"
    required : bool, default True
        Raise when some clip's group cannot be told; with False return None instead.

    Returns
    -------
    np.ndarray of str [shape=(n_clips,)] or None

    Raises
    ------
    ParameterError
        ``groups`` has the wrong length, or (``required``) a clip's group cannot be told.

    Examples
    --------
    >>> clips = ClipSet([ClipRecord("x/fan/id_00/normal/a.wav", "fan", 0, 6.0, "normal")])
    >>> group_keys(clips).tolist(), group_keys(["x/pump/id_04/abnormal/b.wav"]).tolist()
    (['fan/id_00'], ['pump/id_04'])
    >>> group_keys(["a.wav"], required=False) is None
    True
    """
    if group_by not in _GROUP_BY:
        raise ParameterError(f"group_by must be 'machine_id' or 'machine', got {group_by!r}")
    n = len(data)
    if groups is not None:
        return _given(groups, n, "groups")
    items = _items(data)
    if items is None:
        if required:
            raise ParameterError("these features carry no paths, so their groups are unknown; pass groups=")
        return None
    keys = []
    for item in items:
        key = group_key(item, group_by=group_by)
        if key is None:
            if required:
                raise ParameterError(
                    f"cannot tell the group (machine id or section) of {item!r}: not a MIMII/DCASE path; "
                    "pass groups= or a ClipSet"
                )
            return None
        keys.append(key)
    return np.asarray(keys, dtype=str)


def session_keys(data: Any, sessions: Sequence[Any] | None = None) -> npt.NDArray[np.str_] | None:
    """Per-clip session keys: ``sessions`` if given, else :func:`session_key` of each record or path.

    Returns None when no clip has a session; clips without one among clips with
    one get ``""`` (a session of their own).

    Examples
    --------
    >>> session_keys(["d/fan/train/section_00_source_train_normal_0001.wav",
    ...               "d/fan/train/section_00_target_train_normal_0001.wav"]).tolist()
    ['fan/section_00/source', 'fan/section_00/target']
    >>> session_keys(["x/fan/id_00/normal/a.wav"]) is None
    True
    """
    n = len(data)
    if sessions is not None:
        return _given(sessions, n, "sessions")
    items = _items(data)
    if items is None:
        return None
    keys = [session_key(item) for item in items]
    if all(k is None for k in keys):
        return None
    return np.asarray(["" if k is None else k for k in keys], dtype=str)
