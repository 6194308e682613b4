"""Train/validation/test splits that reproduce the reference recipe.

Autoencoder route: train on normal clips only; test on equal numbers of
normal and abnormal clips; hold out some normal training clips for honest
threshold calibration. Classifier route: stratified 80/20 split with a seed,
identical to scikit-learn's ``train_test_split(train_size=0.8, stratify=y,
random_state=42)`` used by the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from soundanomaly.datasets.mimii import ClipSet
from soundanomaly.exceptions import ParameterError

__all__ = ["AutoencoderSplit", "ClassifierSplit", "autoencoder_split", "classifier_split"]


@dataclass(frozen=True)
class AutoencoderSplit:
    """Clips for the unsupervised route.

    Attributes
    ----------
    train : ClipSet
        Normal clips to fit on.
    validation : ClipSet
        Normal clips held out to calibrate the threshold (no anomalies needed).
    test : ClipSet
        Equal numbers of normal and abnormal clips (when there are enough normals).

    Examples
    --------
    See :func:`autoencoder_split`.

    >>> from soundanomaly.datasets.mimii import ClipRecord
    >>> clips = ClipSet([ClipRecord(f"n{i}.wav", "fan", 0, 6.0, "normal") for i in range(4)])
    >>> autoencoder_split(clips, validation_fraction=0.0).train.labels.tolist()  # no anomalies: all train
    [0, 0, 0, 0]

    """

    train: ClipSet
    validation: ClipSet
    test: ClipSet


@dataclass(frozen=True)
class ClassifierSplit:
    """Stratified train/test clips for the supervised route.

    Examples
    --------
    See :func:`classifier_split`.

    >>> from soundanomaly.datasets.mimii import ClipRecord
    >>> records = [ClipRecord(f"{i}.wav", "fan", 0, 6.0, "abnormal" if i % 2 else "normal") for i in range(10)]
    >>> split = classifier_split(ClipSet(records))
    >>> len(split.train), len(split.test), split.test.labels.sum()
    (8, 2, np.int64(1))

    """

    train: ClipSet
    test: ClipSet


def autoencoder_split(clips: ClipSet, *, validation_fraction: float = 0.1, seed: int = 0) -> AutoencoderSplit:
    """Split clips for training on normal sound only.

    All abnormal clips go to the test set with as many normal clips, up to
    half of the normal clips (so the training set keeps the other half). Of the
    remaining normal clips, ``validation_fraction`` (at least one when > 0) is
    held out for threshold calibration.

    Parameters
    ----------
    clips : ClipSet
    validation_fraction : float in [0, 1), default 0.1
    seed : int, default 0
        Seed of the shuffle of normal clips.

    Returns
    -------
    AutoencoderSplit

    Examples
    --------
    >>> from soundanomaly.datasets.mimii import ClipRecord
    >>> recs = [ClipRecord(f"n{i}.wav", "fan", 0, 6.0, "normal") for i in range(20)]
    >>> recs += [ClipRecord(f"a{i}.wav", "fan", 0, 6.0, "abnormal") for i in range(5)]
    >>> split = autoencoder_split(ClipSet(recs))
    >>> len(split.train), len(split.validation), len(split.test)
    (13, 2, 10)
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise ParameterError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    normal = clips.filter(label="normal")
    abnormal = clips.filter(label="abnormal")
    if len(normal) < 2:
        raise ParameterError(f"autoencoder_split needs at least 2 normal clips, got {len(normal)}")
    order = np.random.default_rng(seed).permutation(len(normal))
    n_test_normal = min(len(abnormal), len(normal) // 2)
    test_normal = normal.take(order[:n_test_normal])
    rest = order[n_test_normal:]
    n_val = 0 if validation_fraction == 0 else max(1, round(validation_fraction * len(rest)))
    n_val = min(n_val, len(rest) - 1)
    return AutoencoderSplit(
        train=normal.take(sorted(rest[n_val:])),
        validation=normal.take(sorted(rest[:n_val])),
        test=test_normal + abnormal,
    )


def classifier_split(clips: ClipSet, *, train_size: float = 0.8, seed: int = 42) -> ClassifierSplit:
    """Stratified split, identical to the reference's scikit-learn call.

    Same result as ``train_test_split(clips, train_size=train_size,
    stratify=clips.labels, random_state=seed)``: on all four MIMII fan ids at
    6 dB (5,550 clips) that is 4,440 train and 1,110 test clips.

    Examples
    --------
    >>> from soundanomaly.datasets.mimii import ClipRecord
    >>> records = [ClipRecord(f"{i}.wav", "fan", 0, 6.0, "abnormal" if i < 25 else "normal") for i in range(100)]
    >>> split = classifier_split(ClipSet(records), train_size=0.8, seed=42)
    >>> len(split.train), len(split.test), int(split.test.labels.sum())
    (80, 20, 5)

    """
    if not 0.0 < train_size < 1.0:
        raise ParameterError(f"train_size must be in (0, 1), got {train_size!r}")
    labels = clips.labels
    if min(np.bincount(labels, minlength=2)) < 2:
        raise ParameterError("classifier_split needs at least 2 clips of each label")
    from sklearn.model_selection import train_test_split

    train_idx, test_idx = train_test_split(
        np.arange(len(clips)), train_size=train_size, stratify=labels, random_state=seed
    )
    return ClassifierSplit(train=clips.take(train_idx), test=clips.take(test_idx))
