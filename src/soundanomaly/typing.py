"""Protocols that define the public contracts (runtime-checkable).

Any object that implements these methods plugs into soundanomaly: a custom
feature extractor can feed any detector, and any detector works with the
calibrator, the evaluator, the CLI and the report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeAlias, Union, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from soundanomaly.datasets.mimii import ClipSet
    from soundanomaly.features.base import ClipFeatures

__all__ = ["ClipData", "Detector", "FeatureExtractor", "FloatArray", "PathLike"]

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
FloatArray: TypeAlias = npt.NDArray[np.float32]
#: What detectors accept: clip paths, a dataset selection, or precomputed features.
ClipData: TypeAlias = Union["ClipSet", Sequence[PathLike], "ClipFeatures"]


@runtime_checkable
class FeatureExtractor(Protocol):
    """Turns one clip into a 2-D float32 matrix of feature vectors.

    ``transform(signal, sr)`` returns shape ``(n_windows, n_features)``.
    ``params()`` returns the JSON-serialisable parameters that define the
    features (saved with models and used as the cache key).

    Examples
    --------
    >>> from soundanomaly.features import LogMelFrames, SpectrogramImages
    >>> isinstance(LogMelFrames(), FeatureExtractor), isinstance(SpectrogramImages(), FeatureExtractor)
    (True, True)

    """

    def transform(self, signal: FloatArray, sr: int) -> FloatArray: ...

    def params(self) -> dict[str, Any]: ...


@runtime_checkable
class Detector(Protocol):
    """An anomaly detector: fit on clips, score clips, label clips.

    ``score`` returns one float per clip, **higher = more anomalous**;
    ``predict`` returns int8 labels, **1 = anomaly**, from the float
    attribute ``threshold_`` that ``fit`` sets (not part of the runtime check,
    so unfitted detectors satisfy the protocol too).

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> isinstance(GaussianDetector(), Detector)
    True

    """

    def fit(self, data: ClipData) -> Self: ...

    def score(self, data: ClipData) -> npt.NDArray[np.float64]: ...

    def decision_function(self, data: ClipData) -> npt.NDArray[np.float64]: ...

    def predict(self, data: ClipData) -> npt.NDArray[np.int8]: ...
