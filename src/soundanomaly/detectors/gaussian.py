"""A non-neural baseline: Mahalanobis distance to the normal feature distribution."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Interval
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.inputs import check_features_vary
from soundanomaly.detectors.mahalanobis import MahalanobisHooks, mahalanobis_scores
from soundanomaly.features.base import ClipFeatures
from soundanomaly.typing import FloatArray

__all__ = ["GaussianDetector"]


class GaussianDetector(MahalanobisHooks, BaseDetector):
    """Fit one Gaussian to the feature vectors of normal clips; score by Mahalanobis distance.

    A window's score is its squared Mahalanobis distance to the normal mean over the number of features
    (about 1 for normal data); a clip's is the mean over its windows: higher = more anomalous. NumPy only.
    Its explain, monitor and export hooks come from :mod:`~soundanomaly.detectors.mahalanobis`.

    Parameters
    ----------
    shrinkage : float in [0, 1], default 0.05
        Blend of the sample covariance with a scaled identity (a well-conditioned precision on few clips).
    **base
        ``features``, ``channel``, ``threshold``, ``holdout``, ``aggregate``, ``random_state``: see BaseDetector.

    Raises
    ------
    ParameterError
        From ``fit``, when the features barely vary (silent clips, a dead microphone).

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> normal = ClipFeatures.from_arrays([rng.normal(size=(40, 8)).astype("float32") for _ in range(500)])
    >>> shifted = ClipFeatures.from_arrays([rng.normal(3, 1, size=(40, 8)).astype("float32")])
    >>> detector = GaussianDetector().fit(normal)
    >>> len(detector.train_scores_), len(detector.holdout_scores_), detector.calibration_.source
    (400, 100, 'holdout')
    >>> detector.predict(shifted).tolist()
    [1]
    """

    _parameter_constraints: ClassVar[Constraints] = {"shrinkage": [Interval(float, 0, 1)]}

    def __init__(self, *, shrinkage: float = 0.05, **base: Any) -> None:
        super().__init__(**base)
        self.shrinkage = shrinkage

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        x = features.windows.astype(np.float64)
        check_features_vary(x)  # silent clips or a dead microphone: every clip would score the same
        self.mean_ = x.mean(axis=0)
        cov = np.atleast_2d(np.cov(x, rowvar=False))
        spread = float(np.trace(cov)) / len(cov)
        cov = (1 - self.shrinkage) * cov + self.shrinkage * spread * np.eye(len(cov))
        self.precision_ = np.linalg.pinv(cov)

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        return mahalanobis_scores(windows.astype(np.float64) - self.mean_, self.precision_)

    def _get_state(self) -> dict[str, FloatArray]:
        return {"mean": self.mean_, "precision": self.precision_}

    def _state_spec(self) -> dict[str, tuple[int | None, ...]]:
        return {"mean": (self.n_features_in_,), "precision": (self.n_features_in_, self.n_features_in_)}

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.mean_ = state["mean"].astype(np.float64)
        self.precision_ = state["precision"].astype(np.float64)
