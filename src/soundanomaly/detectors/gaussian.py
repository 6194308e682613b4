"""A non-neural baseline: Mahalanobis distance to the normal feature distribution."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from soundanomaly.audio import Channel
from soundanomaly.calibration import ThresholdCalibrator
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import BaseFeatureExtractor, ClipFeatures
from soundanomaly.typing import FloatArray

__all__ = ["GaussianDetector"]


class GaussianDetector(BaseDetector):
    """Fit one Gaussian to the feature vectors of normal clips; score by Mahalanobis distance.

    A window's score is its squared Mahalanobis distance to the mean of the
    normal windows, divided by the number of features (about 1 for normal
    data); a clip's score is the mean over its windows: higher = more
    anomalous. Needs only NumPy: a fast, strong baseline for the autoencoder.

    Parameters
    ----------
    shrinkage : float in [0, 1], default 0.05
        Blend of the sample covariance with a scaled identity (keeps the
        precision matrix well conditioned on few clips).
    features, channel, threshold, chunk_size, progress
        See :class:`~soundanomaly.detectors.base.BaseDetector`.

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> normal = ClipFeatures.from_arrays([rng.normal(size=(40, 8)).astype("float32") for _ in range(5)])
    >>> shifted = ClipFeatures.from_arrays([rng.normal(3, 1, size=(40, 8)).astype("float32")])
    >>> detector = GaussianDetector().fit(normal)
    >>> bool(detector.score(shifted)[0] > detector.score(normal).max())
    True
    >>> detector.predict(shifted).tolist()
    [1]
    """

    def __init__(
        self,
        *,
        shrinkage: float = 0.05,
        features: BaseFeatureExtractor | None = None,
        channel: Channel = 0,
        threshold: float | ThresholdCalibrator | None = None,
        chunk_size: int = 64,
        progress: bool = False,
    ) -> None:
        super().__init__(
            features=features, channel=channel, threshold=threshold, chunk_size=chunk_size, progress=progress
        )
        if not 0.0 <= shrinkage <= 1.0:
            raise ParameterError(f"shrinkage must be in [0, 1], got {shrinkage!r}")
        self.shrinkage = shrinkage

    def get_params(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable)."""
        return {"shrinkage": self.shrinkage, **super().get_params()}

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        x = features.windows.astype(np.float64)
        self.mean_ = x.mean(axis=0)
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        target = np.trace(cov) / len(cov) * np.eye(len(cov))
        cov = (1 - self.shrinkage) * cov + self.shrinkage * target
        self.precision_ = np.linalg.pinv(cov)

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        centred = windows.astype(np.float64) - self.mean_
        return np.asarray(np.einsum("ij,ij->i", centred @ self.precision_, centred) / windows.shape[1])

    def _get_state(self) -> dict[str, FloatArray]:
        return {"mean": self.mean_, "precision": self.precision_}

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.mean_ = state["mean"].astype(np.float64)
        self.precision_ = state["precision"].astype(np.float64)
