"""Clip statistics: one high-resolution spectral fingerprint per clip, scored by Mahalanobis or k-NN.

Stationary machines (fans, pumps) have a steady spectrum: narrow tones at the
shaft and blade-pass rates, hum, a broadband floor. Their faults move or add
tones (imbalance: a shaft tone and sidebands; a voltage change: every tone
shifts) or reshape the floor (clogging). Averaged over a whole clip, a fine
Welch spectrum shows those tones far above a broadband factory background,
even at -6 dB where frame-level features drown. :class:`ClipStatistics` makes
that fingerprint; :class:`ClipStatsDetector` scores a clip by its distance to
the normal fingerprints.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import Constraints, Interval, Options
from soundanomaly.detectors.base import BaseDetector
from soundanomaly.detectors.inputs import check_features_vary, feature_scale
from soundanomaly.detectors.mahalanobis import mahalanobis_contributions, mahalanobis_parts, mahalanobis_scores
from soundanomaly.exceptions import ParameterError
from soundanomaly.features.base import ClipFeatures
from soundanomaly.features.clipstats import ClipStatistics
from soundanomaly.typing import FloatArray

__all__ = ["ClipStatistics", "ClipStatsDetector", "ledoit_wolf"]

Method = Literal["mahalanobis", "knn"]
Scaling = Literal["none", "std"]


def ledoit_wolf(x: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.float64], float]:
    """Ledoit-Wolf shrunk covariance of the rows of ``x`` and the shrinkage it chose.

    The sample covariance blended with ``mu * I`` (``mu`` its mean variance)
    by the weight that minimises the expected squared error; well conditioned
    even with fewer rows than columns.

    Examples
    --------
    >>> import numpy as np
    >>> cov, shrink = ledoit_wolf(np.random.default_rng(0).normal(size=(20, 50)))
    >>> cov.shape, 0.0 <= shrink <= 1.0, bool(np.linalg.eigvalsh(cov).min() > 0)
    ((50, 50), True, True)
    """
    n, p = x.shape
    centred = x - x.mean(axis=0)
    cov = centred.T @ centred / n
    mu = float(np.trace(cov)) / p
    delta = float(np.sum((cov - mu * np.eye(p)) ** 2)) / p
    squares = centred**2
    beta = float(np.sum(squares.T @ squares) / n - np.sum(cov**2)) / (p * n)
    shrink = 1.0 if delta <= 0 else min(1.0, max(0.0, beta / delta))
    shrunk = (1.0 - shrink) * cov
    shrunk.flat[:: p + 1] += shrink * mu
    return shrunk, shrink


class ClipStatsDetector(BaseDetector):
    """Distance of a clip's spectral fingerprint to those of normal clips.

    Features are centred on the normal clips' mean (and, with
    ``scaling="std"``, divided by their spread per value), then a clip is
    scored by

    * ``"mahalanobis"``: its squared Mahalanobis distance under a
      Ledoit-Wolf (or fixed ``shrinkage``) covariance, divided by the number
      of features; or
    * ``"knn"``: the mean Euclidean distance to its ``n_neighbors`` nearest
      normal clips (a training clip is not its own neighbour when the
      training scores are computed).

    Cheap (no training loop) and strong for steady machines; best fitted per
    machine id (wrap it in :class:`~soundanomaly.detectors.pergroup.PerGroup`).
    Takes any extractor; with a frame-level one (several windows per clip)
    each window is scored and a clip's score is their mean.

    Parameters
    ----------
    method : {"knn", "mahalanobis"}, default "knn"
        ``"knn"`` is as accurate on the benchmark and cheaper to fit with the
        default 1152 features; ``"mahalanobis"`` suits fewer features and many clips.
    n_neighbors : int >= 1, default 3
        Neighbours averaged by ``"knn"``.
    shrinkage : float in [0, 1] or None, default None
        Covariance shrinkage towards a scaled identity; ``None`` picks it by Ledoit-Wolf.
    scaling : {"none", "std"}, default "none"
        ``"std"`` divides each value by its spread over the normal clips.
        The default keeps the features' own units (dB): with few clips per
        id, per-value spreads are noisy and over-weight the quietest values
        (measured on the quality benchmark: see docs/quality).
    features : extractor, default ClipStatistics()
    channel, threshold, holdout, aggregate, random_state
        See :class:`~soundanomaly.detectors.base.BaseDetector`.

    Attributes
    ----------
    shrinkage_ : float
        The shrinkage used (``"mahalanobis"``).

    Examples
    --------
    >>> import numpy as np
    >>> from soundanomaly.features import ClipFeatures
    >>> rng = np.random.default_rng(0)
    >>> normal = ClipFeatures.from_arrays([rng.normal(size=(1, 16)).astype("float32") for _ in range(30)])
    >>> odd = ClipFeatures.from_arrays([rng.normal(2, 1, size=(1, 16)).astype("float32")])
    >>> for method in ("mahalanobis", "knn"):
    ...     detector = ClipStatsDetector(method=method, threshold=1.0).fit(normal)
    ...     print(method, bool(detector.score(odd)[0] > detector.train_scores_.max()))
    mahalanobis True
    knn True
    """

    _parameter_constraints: ClassVar[Constraints] = {
        "method": [Options("mahalanobis", "knn")],
        "n_neighbors": [Interval(int, 1, None)],
        "shrinkage": [Interval(float, 0, 1), None],
        "scaling": [Options("none", "std")],
    }

    def __init__(
        self,
        *,
        method: Method = "knn",
        n_neighbors: int = 3,
        shrinkage: float | None = None,
        scaling: Scaling = "none",
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.method = method
        self.n_neighbors = n_neighbors
        self.shrinkage = shrinkage
        self.scaling = scaling

    @classmethod
    def _default_features(cls) -> Any:
        return ClipStatistics()

    def _standardise(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        return np.asarray((windows.astype(np.float64) - self.mean_) / self.scale_)

    def _fit(self, features: ClipFeatures, labels: npt.NDArray[np.int8] | None = None) -> None:
        x = features.windows.astype(np.float64)
        check_features_vary(x)  # silence (or one clip repeated) would give threshold 0 and meaningless scores
        self.mean_ = x.mean(axis=0)
        self.scale_ = feature_scale(x, self.scaling)
        z = self._standardise(features.windows)
        if self.method == "mahalanobis":
            if self.shrinkage is None:
                cov, self.shrinkage_ = ledoit_wolf(z)
            else:
                self.shrinkage_ = float(self.shrinkage)
                cov = np.atleast_2d(np.cov(z, rowvar=False, bias=True))
                cov = (1 - self.shrinkage_) * cov + self.shrinkage_ * np.trace(cov) / len(cov) * np.eye(len(cov))
            try:
                self.precision_ = np.linalg.inv(cov)  # shrunk: positive definite, and far cheaper than an SVD
            except np.linalg.LinAlgError:
                self.precision_ = np.linalg.pinv(cov, hermitian=True)
            self.reference_ = np.zeros((0, z.shape[1]))
        else:
            self.shrinkage_ = float("nan")
            self.precision_ = np.zeros((0, z.shape[1]))
            self.reference_ = z

    def _adapt(self, features: ClipFeatures, sessions: npt.NDArray[np.str_]) -> None:
        """k-NN: the new clips join the memory bank (the standardisation stays the training one)."""
        if self.method != "knn":
            raise ParameterError(
                "ClipStatsDetector adapts with method='knn' only (a Mahalanobis fit would be retrained)"
            )
        self.reference_ = np.vstack([self.reference_, self._standardise(features.windows)])

    def _knn(self, z: npt.NDArray[np.float64], *, exclude_self: bool = False) -> npt.NDArray[np.float64]:
        ref = self.reference_
        d2 = (z**2).sum(axis=1)[:, None] + (ref**2).sum(axis=1)[None, :] - 2.0 * z @ ref.T
        distances = np.sqrt(np.maximum(d2, 0.0))
        if exclude_self:
            np.fill_diagonal(distances, np.inf)
        k = min(self.n_neighbors, ref.shape[0] - (1 if exclude_self else 0))
        if k < 1:
            return np.zeros(len(z))
        nearest = np.partition(distances, k - 1, axis=1)[:, :k]
        return np.asarray(nearest.mean(axis=1) / np.sqrt(z.shape[1]), dtype=np.float64)

    def _score_windows(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        z = self._standardise(windows)
        if self.method == "knn":
            return self._knn(z)
        return mahalanobis_scores(z, self.precision_)

    def feature_contributions(self, windows: FloatArray) -> npt.NDArray[np.float64]:
        """Each standardised value's share ``z_i (P z)_i / D`` of a window's score (rows sum to it), for ``explain``.

        ``z = (x - mean_) / scale_`` as in scoring. Only ``method="mahalanobis"``
        splits into per-value terms; a k-NN distance does not.

        Raises
        ------
        ParameterError
            With ``method="knn"``.
        """
        self._check_fitted()
        if self.method == "knn":
            raise ParameterError(
                "ClipStatsDetector(method='knn') scores a clip by its distance to the nearest normal clips, which "
                "does not split into per-feature contributions; explain a ClipStatsDetector(method='mahalanobis')"
            )
        z = self._standardise(np.asarray(windows, dtype=np.float64))
        return mahalanobis_contributions(z, self.precision_)

    def _training_scores(self, features: ClipFeatures) -> npt.NDArray[np.float64]:
        z = self._standardise(features.windows)
        if self.method == "knn" and z.shape == self.reference_.shape and np.array_equal(z, self.reference_):
            return features.mean_per_clip(self._knn(z, exclude_self=True))
        return self._score_features(features)

    def _get_state(self) -> dict[str, FloatArray]:
        return {
            "mean": self.mean_,
            "scale": self.scale_,
            "precision": self.precision_,
            "reference": self.reference_,
            "shrinkage": np.array(-1.0 if np.isnan(self.shrinkage_) else self.shrinkage_),  # -1: k-NN, none
        }

    def _set_state(self, state: dict[str, FloatArray]) -> None:
        self.mean_ = state["mean"].astype(np.float64)
        self.scale_ = state["scale"].astype(np.float64)
        self.precision_ = state["precision"].astype(np.float64)
        self.reference_ = state["reference"].astype(np.float64)
        shrinkage = float(state["shrinkage"])
        self.shrinkage_ = float("nan") if shrinkage < 0 else shrinkage

    def _export_parts(self) -> dict[str, Any]:
        if self.method == "knn":
            return {"kind": "knn", "mean": self.mean_, "scale": self.scale_, "reference": self.reference_,
                    "n_neighbors": self.n_neighbors}  # fmt: skip
        return mahalanobis_parts(self.mean_, self.scale_, self.precision_)
