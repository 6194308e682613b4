"""Index the DCASE Challenge Task 2 layouts (2020–2024) next to MIMII's.

DCASE Task 2 ("unsupervised anomalous sound detection for machine condition
monitoring") re-published MIMII, ToyADMOS, MIMII DUE/DG and ToyADMOS2 clips
under its own names. A clip lies in ``<machine>/<split folder>/<file>.wav``
(any number of folders above, e.g. ``dev_data/`` or ``dev_data/raw/``):

=========  ==============================  ==============================================================
edition    split folders                   file names
=========  ==============================  ==============================================================
2020       ``train``, ``test``             ``normal_id_00_00000000.wav``, ``anomaly_id_02_00000012.wav``;
                                           evaluation set: ``id_05_00000000.wav`` (no label)
2021       ``train``, ``source_test``,     ``section_00_source_train_normal_0000_strength_1_ambient.wav``,
           ``target_test``                 ``section_00_target_test_anomaly_0012.wav``;
                                           evaluation set: ``section_03_source_test_0000.wav``
2022–2024  ``train``, ``test``             ``section_00_source_test_anomaly_0012_vel_14.wav``,
                                           ``section_01_target_train_normal_0003_car_A1_spd_28V_mic_1.wav``;
                                           evaluation set: ``section_00_0000.wav`` (no label, no domain)
=========  ==============================  ==============================================================

DCASE's ``anomaly`` becomes the label ``"abnormal"`` (1 = anomaly, as everywhere in
soundanomaly); a name without ``normal``/``anomaly`` indexes as ``"unknown"``.
From 2021 on, :attr:`ClipRecord.machine_id` holds the *section* number.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from soundanomaly.audio import find_clips
from soundanomaly.datasets.mimii import MIMII, UNLABELLED, ClipRecord, ClipSet, Label, parse_path
from soundanomaly.exceptions import ParameterError
from soundanomaly.typing import PathLike

__all__ = ["DCASE", "open_dataset", "parse_dcase_path"]

_SPLIT_FOLDERS = {"train": "train", "test": "test", "source_test": "test", "target_test": "test"}
_LABEL: dict[str, Label] = {"normal": "normal", "anomaly": "abnormal"}
# 2020: normal_id_00_00000000.wav / anomaly_id_00_00000000.wav / (eval) id_05_00000000.wav
_NAME_2020 = re.compile(r"^(?:(normal|anomaly)_)?id_(\d+)_(\d+)$")
# 2021+: section_00_source_train_normal_0000[_attributes] / (2021 eval) section_03_source_test_0000[_attrs]
_NAME_SECTION = re.compile(r"^section_(\d+)_(source|target)_(train|test)_(?:(normal|anomaly)_)?(\d+)(?:_(.+))?$")
# 2022-2024 evaluation sets: section_00_0000.wav (domain and label hidden)
_NAME_SECTION_HIDDEN = re.compile(r"^section_(\d+)_(\d+)$")


def parse_dcase_path(path: PathLike) -> ClipRecord | None:
    """Parse a DCASE Task 2 path (any edition 2020–2024) into a record; ``None`` if it does not fit.

    Parameters
    ----------
    path : path
        ``.../<machine>/<train|test|source_test|target_test>/<DCASE file name>``.

    Returns
    -------
    ClipRecord or None

    Examples
    --------
    >>> r = parse_dcase_path("dev_data/ToyCar/test/section_00_source_test_anomaly_0012_car_A1_spd_28V_mic_1.wav")
    >>> r.machine, r.section, r.domain, r.split, r.label, r.attributes, r.layout
    ('ToyCar', 0, 'source', 'test', 'abnormal', 'car_A1_spd_28V_mic_1', 'dcase')
    >>> r = parse_dcase_path("dev_data/fan/train/normal_id_02_00000123.wav")
    >>> r.machine, r.machine_id, r.split, r.label, r.layout
    ('fan', 2, 'train', 'normal', 'dcase2020')
    >>> parse_dcase_path("eval_data/bearing/test/section_00_0007.wav").label
    'unknown'
    >>> parse_dcase_path("notes/section_00_0007.wav") is None
    True

    """
    parts = Path(path).parts
    if len(parts) < 3:
        return None
    stem, ext = os.path.splitext(parts[-1])
    split_folder, machine = parts[-2], parts[-3]
    split = _SPLIT_FOLDERS.get(split_folder)
    if split is None or not ext:
        return None
    shown = os.fspath(path)
    if (m := _NAME_SECTION.match(stem)) is not None:
        section, domain, name_split, label, _, attributes = m.groups()
        if name_split != split:
            return None
        return ClipRecord(
            shown,
            machine,
            int(section),
            None,
            _LABEL[label] if label else UNLABELLED,
            domain=domain,
            split=split,
            attributes=attributes or "",
            layout="dcase",
        )
    if (m := _NAME_SECTION_HIDDEN.match(stem)) is not None and split == "test":
        return ClipRecord(shown, machine, int(m.group(1)), None, UNLABELLED, split=split, layout="dcase")
    if (m := _NAME_2020.match(stem)) is not None:
        label, machine_id, _ = m.groups()
        if label is None and split == "train":
            return None  # 2020 training clips always say "normal"
        return ClipRecord(
            shown,
            machine,
            int(machine_id),
            None,
            _LABEL[label] if label else UNLABELLED,
            split=split,
            layout="dcase2020",
        )
    return None


def _index(root: PathLike, extensions: Sequence[str], *, mimii: bool, dcase: bool) -> list[ClipRecord]:
    folder = Path(root)
    if not folder.is_dir():
        raise ParameterError(f"root {os.fspath(root)!r} is not a folder")
    records = []
    for path in find_clips(folder, extensions=extensions):  # the one rule for which entries are clips
        record = (parse_dcase_path(path) if dcase else None) or (parse_path(path) if mimii else None)
        if record is not None:
            records.append(record)
    return sorted(records)


class DCASE(ClipSet):
    """All clips under a DCASE Task 2 folder (development, additional-training or evaluation set).

    Parameters
    ----------
    root : path
        A folder holding ``<machine>/<train|test|source_test|target_test>/*.wav`` at any depth,
        e.g. ``dev_data/`` or one machine type's folder.
    extensions : sequence of str, default (".wav",)

    Raises
    ------
    ParameterError
        If ``root`` does not exist or holds no clip with a DCASE name.

    See Also
    --------
    open_dataset : MIMII or DCASE, whichever the folder holds.

    Examples
    --------
    >>> import numpy as np, soundfile as sf, os
    >>> os.makedirs("dev/fan/train"); os.makedirs("dev/fan/test")
    >>> for name in ["train/section_00_source_train_normal_0000_m-n_W.wav",
    ...              "test/section_00_source_test_normal_0000_m-n_W.wav",
    ...              "test/section_00_target_test_anomaly_0000_m-n_X.wav"]:
    ...     sf.write(f"dev/fan/{name}", np.zeros(1600), 16000)
    >>> clips = DCASE("dev")
    >>> clips, clips.filter(split="test").eval_groups
    (DCASE(3 clips: 2 normal, 1 abnormal), ['fan section_00 source', 'fan section_00 target'])
    """

    def __init__(self, root: PathLike, *, extensions: Sequence[str] = (".wav",)) -> None:
        self.root = Path(root)
        records = _index(root, extensions, mimii=False, dcase=True)
        if not records:
            raise ParameterError(
                f"no clips found under {os.fspath(root)!r}: expected DCASE Task 2 names such as "
                "<machine>/train/section_00_source_train_normal_0000_<attributes>.wav or "
                "<machine>/test/normal_id_00_00000000.wav"
            )
        super().__init__(records)


def open_dataset(root: PathLike, *, split: str | None = None, extensions: Sequence[str] = (".wav",)) -> ClipSet:
    """Index a folder in MIMII's layout, a DCASE Task 2 layout, or both.

    Parameters
    ----------
    root : path
    split : {"train", "test"}, optional
        Keep the DCASE clips of this split folder; clips without a split (MIMII) are
        always kept. Training on a DCASE folder should use ``split="train"``
        (its normal-only training clips), evaluating ``split="test"``.
    extensions : sequence of str, default (".wav",)

    Returns
    -------
    ClipSet
        A :class:`~soundanomaly.datasets.MIMII` when every clip is in MIMII's layout,
        a :class:`DCASE` when every clip has a DCASE name, else a plain ClipSet.

    Raises
    ------
    ParameterError
        If ``root`` is not a folder, ``split`` is invalid, or no clip is found.

    Examples
    --------
    >>> from soundanomaly.datasets import synthetic
    >>> open_dataset(synthetic.write_dataset("fans", ids=[0], n_normal=2, n_abnormal=1, duration=1.0))
    MIMII(3 clips: 2 normal, 1 abnormal)
    """
    if split is not None and split not in ("train", "test"):
        raise ParameterError(f"split must be 'train' or 'test', got {split!r}")
    records = _index(root, extensions, mimii=True, dcase=True)
    if split is not None:
        records = [r for r in records if r.split in (None, split)]
    if not records:
        where = "" if split is None else f" in a {split!r} split folder"
        raise ParameterError(
            f"no clips found under {os.fspath(root)!r}{where}: expected MIMII's "
            "<snr>_<machine>/<machine>/id_NN/<normal|abnormal>/*.wav or DCASE Task 2 names "
            "(<machine>/<train|test>/section_00_source_test_normal_0000.wav, normal_id_00_00000000.wav)"
        )
    layouts = {r.layout == "mimii" for r in records}
    if len(layouts) == 2:
        return ClipSet(records)
    clips: MIMII | DCASE = MIMII.__new__(MIMII) if layouts == {True} else DCASE.__new__(DCASE)
    clips.root = Path(root)
    ClipSet.__init__(clips, records)
    return clips
