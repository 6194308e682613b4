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
    from soundanomaly.calibration import Calibration, ThresholdCalibrator
    from soundanomaly.datasets.clips import ClipSet
    from soundanomaly.features.base import ClipFeatures

__all__ = ["ClipData", "Detector", "FeatureExtractor", "FittedDetector", "FloatArray", "PathLike"]

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
FloatArray: TypeAlias = npt.NDArray[np.float32]
#: What detectors accept: clip paths, a dataset selection, or precomputed features.
ClipData: TypeAlias = Union["ClipSet", Sequence[PathLike], "ClipFeatures"]


@runtime_checkable
class FeatureExtractor(Protocol):
    """Turns one clip into a 2-D float32 matrix of feature vectors.

    ``transform(signal, sr)`` returns shape ``(n_windows, n_features)``.
    ``params()`` returns the JSON-serialisable parameters that define the
    features (saved with models and used as the cache key); include
    ``"name"`` and make the constructor accept the rest as keywords, so a saved
    model can rebuild it (see :func:`soundanomaly.register_extractor`).

    Any detector accepts such an object as ``features=``: reading files,
    channels, resampling, parallel workers, the cache and ``on_error`` come
    from :class:`~soundanomaly.features.BaseFeatureExtractor`, which wraps it.
    An extractor with an ``sr`` attribute gets every clip at that rate.

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

    What every part of soundanomaly (the :class:`~soundanomaly.evaluation.Evaluator`,
    the CLI's ``score``/``evaluate``, the demo) relies on, and all it relies on:

    * ``supervised`` (class attribute, bool): ``fit`` needs labelled anomalies.
    * ``fit(data, labels=None) -> self``; ``data`` is a ClipSet, a sequence of
      clip paths, or :class:`~soundanomaly.features.ClipFeatures`.
    * ``score(data)``: one float64 per clip, **higher = more anomalous**
      (``decision_function`` is the same).
    * ``predict(data)``: int8 labels, **1 = anomaly**, ``score > threshold_``;
      a clip without a finite score must be labelled 1.
    * ``calibrate(data, *, calibrator=None, labels=None)``: set ``threshold_``
      from held-out clips, return a :class:`~soundanomaly.calibration.Calibration`.
    * ``threshold_`` (float), set by ``fit``/``calibrate``: see :class:`FittedDetector`
      (not part of this runtime check, so unfitted detectors satisfy it).

    Optional, used when present: ``score_with_status(data) -> (scores, status)``
    with one status string per clip (``"ok"``, ``"skipped: <reason>"``,
    ``"invalid: non-finite score"``), ``save(path, *, overwrite=False, inputs=())``.
    Subclassing :class:`~soundanomaly.detectors.BaseDetector` gives all of it.

    Examples
    --------
    >>> from soundanomaly.detectors import GaussianDetector
    >>> isinstance(GaussianDetector(), Detector), isinstance(GaussianDetector(), FittedDetector)
    (True, False)

    """

    supervised: bool

    def fit(self, data: ClipData, labels: npt.ArrayLike | None = None) -> Self: ...

    def score(self, data: ClipData) -> npt.NDArray[np.float64]: ...

    def decision_function(self, data: ClipData) -> npt.NDArray[np.float64]: ...

    def predict(self, data: ClipData) -> npt.NDArray[np.int8]: ...

    def calibrate(
        self, data: ClipData, *, calibrator: ThresholdCalibrator | None = None, labels: npt.ArrayLike | None = None
    ) -> Calibration: ...


@runtime_checkable
class FittedDetector(Detector, Protocol):
    """A :class:`Detector` that has been fitted (or loaded): it has ``threshold_``.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.detectors import GaussianDetector
    >>> from soundanomaly.features import ClipFeatures
    >>> train = ClipFeatures.from_arrays([np.random.default_rng(i).normal(size=(9, 2)).astype("f4") for i in range(3)])
    >>> isinstance(GaussianDetector(threshold=2.0).fit(train), FittedDetector)
    True

    """

    threshold_: float
