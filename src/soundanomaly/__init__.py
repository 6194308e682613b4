"""soundanomaly: tell a malfunctioning industrial machine from a healthy one by its sound.

The top-level names are loaded lazily, so ``import soundanomaly`` stays cheap
and never imports TensorFlow, boto3 or sagemaker.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    "AudioError": "soundanomaly.exceptions",
    "BackendError": "soundanomaly.exceptions",
    "MissingDependencyError": "soundanomaly.exceptions",
    "ModelFormatError": "soundanomaly.exceptions",
    "NotFittedError": "soundanomaly.exceptions",
    "ParameterError": "soundanomaly.exceptions",
    "SoundAnomalyError": "soundanomaly.exceptions",
    "Detector": "soundanomaly.typing",
    "FeatureExtractor": "soundanomaly.typing",
    "load": "soundanomaly.audio",
    "ClipFeatures": "soundanomaly.features",
    "LogMelFrames": "soundanomaly.features",
    "MIMII": "soundanomaly.datasets",
    "ClipSet": "soundanomaly.datasets",
    "ClipRecord": "soundanomaly.datasets",
    "autoencoder_split": "soundanomaly.datasets",
    "classifier_split": "soundanomaly.datasets",
}

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        if name in {"audio", "features", "datasets", "detectors", "calibration", "evaluation", "plots", "backends"}:
            return importlib.import_module(f"soundanomaly.{name}")
        raise AttributeError(f"module 'soundanomaly' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from soundanomaly.audio import load as load
    from soundanomaly.datasets import MIMII as MIMII
    from soundanomaly.datasets import ClipRecord as ClipRecord
    from soundanomaly.datasets import ClipSet as ClipSet
    from soundanomaly.datasets import autoencoder_split as autoencoder_split
    from soundanomaly.datasets import classifier_split as classifier_split
    from soundanomaly.exceptions import AudioError as AudioError
    from soundanomaly.exceptions import BackendError as BackendError
    from soundanomaly.exceptions import MissingDependencyError as MissingDependencyError
    from soundanomaly.exceptions import ModelFormatError as ModelFormatError
    from soundanomaly.exceptions import NotFittedError as NotFittedError
    from soundanomaly.exceptions import ParameterError as ParameterError
    from soundanomaly.exceptions import SoundAnomalyError as SoundAnomalyError
    from soundanomaly.features import ClipFeatures as ClipFeatures
    from soundanomaly.features import LogMelFrames as LogMelFrames
    from soundanomaly.typing import Detector as Detector
    from soundanomaly.typing import FeatureExtractor as FeatureExtractor
