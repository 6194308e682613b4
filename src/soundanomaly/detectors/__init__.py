"""Detectors: fit on clips, score clips (higher = more anomalous), predict (1 = anomaly).

``AutoencoderDetector`` needs the ``tf`` extra only to train; scoring a
trained or loaded one runs on NumPy. The CNN and Rekognition detectors are
imported on first use (``SpectrogramCNNDetector``, ``RekognitionDetector``),
so ``import soundanomaly.detectors`` stays light.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from soundanomaly.detectors.autoencoder import AutoencoderDetector
from soundanomaly.detectors.auxiliary import AuxiliaryClassifierDetector
from soundanomaly.detectors.base import (
    DEFAULT_TARGET_FPR,
    FORMAT_VERSION,
    BaseDetector,
    find_training_clips,
    load_model,
    register_extractor,
)
from soundanomaly.detectors.clipstats import ClipStatistics, ClipStatsDetector
from soundanomaly.detectors.domain_knn import DomainKNNDetector
from soundanomaly.detectors.ensemble import Ensemble
from soundanomaly.detectors.gaussian import GaussianDetector
from soundanomaly.detectors.machine_id import MachineIdDetector
from soundanomaly.detectors.meta import MetaDetector
from soundanomaly.detectors.options import RunOptions
from soundanomaly.detectors.pergroup import PerGroup
from soundanomaly.detectors.selective_mahalanobis import SelectiveMahalanobisDetector
from soundanomaly.detectors.twfr_gmm import TWFRGMMDetector
from soundanomaly.typing import PathLike

if TYPE_CHECKING:
    from soundanomaly.detectors.cnn import SpectrogramCNNDetector as SpectrogramCNNDetector
    from soundanomaly.detectors.rekognition import RekognitionDetector as RekognitionDetector

__all__ = [
    "DEFAULT_TARGET_FPR",
    "FORMAT_VERSION",
    "AutoencoderDetector",
    "AuxiliaryClassifierDetector",
    "BaseDetector",
    "ClipStatistics",
    "ClipStatsDetector",
    "DomainKNNDetector",
    "Ensemble",
    "GaussianDetector",
    "MachineIdDetector",
    "MetaDetector",
    "PerGroup",
    "RekognitionDetector",
    "RunOptions",
    "SelectiveMahalanobisDetector",
    "SpectrogramCNNDetector",
    "TWFRGMMDetector",
    "find_training_clips",
    "load",
    "load_model",
    "register_extractor",
]

_LAZY = {
    "SpectrogramCNNDetector": "soundanomaly.detectors.cnn",
    "RekognitionDetector": "soundanomaly.detectors.rekognition",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'soundanomaly.detectors' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def load(path: PathLike) -> BaseDetector:
    """Deprecated alias of :func:`load_model` (same result, with a ``DeprecationWarning``).

    Examples
    --------
    >>> import pytest
    >>> with pytest.deprecated_call():
    ...     load("missing-model")
    Traceback (most recent call last):
    ...
    soundanomaly.exceptions.ModelFormatError: missing-model: not a saved model (no manifest.json)
    """
    warnings.warn(
        "soundanomaly.detectors.load is deprecated; use soundanomaly.load_model", DeprecationWarning, stacklevel=2
    )
    return load_model(path)
