"""soundanomaly: tell a malfunctioning industrial machine from a healthy one by its sound.

The top-level names are loaded lazily, so ``import soundanomaly`` stays cheap
and never imports TensorFlow, Keras, boto3, sagemaker or matplotlib.

Examples
--------
>>> import soundanomaly
>>> soundanomaly.GaussianDetector.__name__, soundanomaly.load_model.__name__
('GaussianDetector', 'load_model')
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY: dict[str, str] = {
    # errors and warnings
    "AudioError": "soundanomaly.exceptions",
    "BackendError": "soundanomaly.exceptions",
    "CalibrationWarning": "soundanomaly.exceptions",
    "InvalidScoreError": "soundanomaly.exceptions",
    "InvalidScoreWarning": "soundanomaly.exceptions",
    "MissingDependencyError": "soundanomaly.exceptions",
    "ModelFormatError": "soundanomaly.exceptions",
    "NotFittedError": "soundanomaly.exceptions",
    "ParameterError": "soundanomaly.exceptions",
    "SoundAnomalyError": "soundanomaly.exceptions",
    "OutputExistsError": "soundanomaly.exceptions",
    "SoundAnomalyWarning": "soundanomaly.exceptions",
    # the design card's names (protocols and the main classes)
    "Detector": "soundanomaly.typing",
    "FeatureExtractor": "soundanomaly.typing",
    "AutoencoderDetector": "soundanomaly.detectors",
    "RekognitionDetector": "soundanomaly.detectors",
    "ThresholdCalibrator": "soundanomaly.calibration",
    "Evaluator": "soundanomaly.evaluation",
    # detectors and models
    "BaseDetector": "soundanomaly.detectors",
    "GaussianDetector": "soundanomaly.detectors",
    "SpectrogramCNNDetector": "soundanomaly.detectors",
    "ClipStatsDetector": "soundanomaly.detectors",
    "MachineIdDetector": "soundanomaly.detectors",
    "PerGroup": "soundanomaly.detectors",
    "Ensemble": "soundanomaly.detectors",
    "load_model": "soundanomaly.detectors",
    "register_extractor": "soundanomaly.detectors",
    "find_training_clips": "soundanomaly.detectors",
    "RunOptions": "soundanomaly.detectors",
    "ClipScore": "soundanomaly.results",
    "label_scores": "soundanomaly.results",
    "all_detectors": "soundanomaly.registry",
    "Calibration": "soundanomaly.calibration",
    "EvaluationReport": "soundanomaly.evaluation",
    # audio and features
    "load_audio": "soundanomaly.audio",
    "BaseFeatureExtractor": "soundanomaly.features",
    "ClipFeatures": "soundanomaly.features",
    "LogMelFrames": "soundanomaly.features",
    "SpectrogramImages": "soundanomaly.features",
    "MultiChannel": "soundanomaly.features",
    # data sets
    "MIMII": "soundanomaly.datasets",
    "ClipSet": "soundanomaly.datasets",
    "ClipRecord": "soundanomaly.datasets",
    "autoencoder_split": "soundanomaly.datasets",
    "classifier_split": "soundanomaly.datasets",
    "DCASE": "soundanomaly.datasets",
    "open_dataset": "soundanomaly.datasets",
    "download_mimii": "soundanomaly.datasets",
    "download_dcase": "soundanomaly.datasets",
    # monitoring and explanations
    "Monitor": "soundanomaly.monitor",
}
_RENAMED = {"load_audio": "load"}  # public name -> attribute of its module
_SUBMODULES = frozenset(
    {
        "audio",
        "features",
        "datasets",
        "detectors",
        "calibration",
        "evaluation",
        "plots",
        "backends",
        "typing",
        "monitor",
        "registry",
        "results",
    }
)

__all__ = ["__version__", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name == "load":
        warnings.warn(
            "soundanomaly.load is deprecated: use soundanomaly.load_audio for clips, soundanomaly.load_model for "
            "saved models",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module("soundanomaly.audio").load
    module = _LAZY.get(name)
    if module is None:
        if name in _SUBMODULES:
            return importlib.import_module(f"soundanomaly.{name}")
        raise AttributeError(f"module 'soundanomaly' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:
    from soundanomaly.audio import load as load_audio  # noqa: F401 - re-exported lazily
    from soundanomaly.calibration import Calibration as Calibration
    from soundanomaly.calibration import ThresholdCalibrator as ThresholdCalibrator
    from soundanomaly.datasets import DCASE as DCASE
    from soundanomaly.datasets import MIMII as MIMII
    from soundanomaly.datasets import ClipRecord as ClipRecord
    from soundanomaly.datasets import ClipSet as ClipSet
    from soundanomaly.datasets import autoencoder_split as autoencoder_split
    from soundanomaly.datasets import classifier_split as classifier_split
    from soundanomaly.datasets import download_dcase as download_dcase
    from soundanomaly.datasets import download_mimii as download_mimii
    from soundanomaly.datasets import open_dataset as open_dataset
    from soundanomaly.detectors import AutoencoderDetector as AutoencoderDetector
    from soundanomaly.detectors import BaseDetector as BaseDetector
    from soundanomaly.detectors import ClipStatsDetector as ClipStatsDetector
    from soundanomaly.detectors import Ensemble as Ensemble
    from soundanomaly.detectors import GaussianDetector as GaussianDetector
    from soundanomaly.detectors import MachineIdDetector as MachineIdDetector
    from soundanomaly.detectors import PerGroup as PerGroup
    from soundanomaly.detectors import RekognitionDetector as RekognitionDetector
    from soundanomaly.detectors import RunOptions as RunOptions
    from soundanomaly.detectors import SpectrogramCNNDetector as SpectrogramCNNDetector
    from soundanomaly.detectors import find_training_clips as find_training_clips
    from soundanomaly.detectors import load_model as load_model
    from soundanomaly.detectors import register_extractor as register_extractor
    from soundanomaly.evaluation import EvaluationReport as EvaluationReport
    from soundanomaly.evaluation import Evaluator as Evaluator
    from soundanomaly.exceptions import AudioError as AudioError
    from soundanomaly.exceptions import BackendError as BackendError
    from soundanomaly.exceptions import CalibrationWarning as CalibrationWarning
    from soundanomaly.exceptions import InvalidScoreError as InvalidScoreError
    from soundanomaly.exceptions import InvalidScoreWarning as InvalidScoreWarning
    from soundanomaly.exceptions import MissingDependencyError as MissingDependencyError
    from soundanomaly.exceptions import ModelFormatError as ModelFormatError
    from soundanomaly.exceptions import NotFittedError as NotFittedError
    from soundanomaly.exceptions import OutputExistsError as OutputExistsError
    from soundanomaly.exceptions import ParameterError as ParameterError
    from soundanomaly.exceptions import SoundAnomalyError as SoundAnomalyError
    from soundanomaly.exceptions import SoundAnomalyWarning as SoundAnomalyWarning
    from soundanomaly.features import BaseFeatureExtractor as BaseFeatureExtractor
    from soundanomaly.features import ClipFeatures as ClipFeatures
    from soundanomaly.features import LogMelFrames as LogMelFrames
    from soundanomaly.features import MultiChannel as MultiChannel
    from soundanomaly.features import SpectrogramImages as SpectrogramImages
    from soundanomaly.monitor import Monitor as Monitor
    from soundanomaly.registry import all_detectors as all_detectors
    from soundanomaly.results import ClipScore as ClipScore
    from soundanomaly.results import label_scores as label_scores
    from soundanomaly.typing import Detector as Detector
    from soundanomaly.typing import FeatureExtractor as FeatureExtractor
