"""The Mahalanobis arithmetic shared by the detectors that score by it (one place for each formula).

:class:`~soundanomaly.detectors.GaussianDetector`,
:class:`~soundanomaly.detectors.ClipStatsDetector` (``method="mahalanobis"``) and
:class:`~soundanomaly.detectors.SelectiveMahalanobisDetector` score a window
by ``d(z) = z' P z / D`` for centred (and possibly scaled) features ``z`` and a
precision matrix ``P``. These functions compute that score, its per-value
split ``z_i (P z)_i / D`` (rows sum to the score: what ``explain`` shows) and
the arrays :mod:`soundanomaly.export` writes; :class:`MahalanobisHooks` gives a
detector whose state is ``mean_`` and ``precision_`` the public hooks
(``feature_contributions``, ``stream_scorer``) and the export parts from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from soundanomaly.typing import FloatArray

__all__ = ["MahalanobisHooks", "mahalanobis_contributions", "mahalanobis_parts", "mahalanobis_scores"]

_F64 = npt.NDArray[np.float64]
_Float = npt.NDArray[np.floating[Any]]


def mahalanobis_scores(centred: _Float, precision: _Float) -> _F64:
    """Each row's squared Mahalanobis distance divided by the number of features, ``z' P z / D``.

    Examples
    --------
    >>> import numpy as np
    >>> mahalanobis_scores(np.array([[1.0, 2.0]]), np.eye(2)).tolist()
    [2.5]
    """
    return np.asarray(np.einsum("ij,ij->i", centred @ precision, centred) / centred.shape[1], dtype=np.float64)


def mahalanobis_contributions(centred: _Float, precision: _Float) -> _F64:
    """Each value's share ``z_i (P z)_i / D`` of its row's :func:`mahalanobis_scores` (rows sum to it).

    Examples
    --------
    >>> import numpy as np
    >>> mahalanobis_contributions(np.array([[1.0, 2.0]]), np.eye(2)).tolist()
    [[0.5, 2.0]]
    """
    return np.asarray(centred * (centred @ precision) / centred.shape[1], dtype=np.float64)


def mahalanobis_parts(mean: _Float, scale: _Float | None, precision: _Float, **extra: Any) -> dict[str, Any]:
    """The export parts of a Mahalanobis window score: ``z = (x - mean) / scale`` (``extra``: ``centre``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> sorted(mahalanobis_parts(np.zeros(2), None, np.eye(2)))
    ['kind', 'mean', 'precision', 'scale']
    """
    return {"kind": "mahalanobis", "mean": mean, "scale": scale, "precision": precision, **extra}


class MahalanobisHooks:
    """``feature_contributions``, ``stream_scorer`` and the export parts of a detector with ``mean_`` and ``precision_``.

    For a detector whose window score is :func:`mahalanobis_scores` of
    ``windows - mean_`` (:class:`~soundanomaly.detectors.GaussianDetector`).
    The closed-form streaming scorer is offered only while the class that
    mixes this in still scores that way: a subclass that overrides
    ``_score_windows`` gets ``None`` (the monitor then scores exactly).
    """

    mean_: npt.NDArray[Any]
    precision_: npt.NDArray[Any]

    if TYPE_CHECKING:

        def _check_fitted(self) -> None: ...  # BaseDetector's

    def feature_contributions(self, windows: FloatArray) -> _F64:
        """Each value's share ``(x - mu)_i (P (x - mu))_i / D`` of a window's score (rows sum to it), for ``explain``."""
        self._check_fitted()
        return mahalanobis_contributions(np.asarray(windows, dtype=np.float64) - self.mean_, self.precision_)

    def stream_scorer(self) -> Any:
        """The monitor's incremental scorer of this model (:mod:`soundanomaly.streaming.scorers`), or None."""
        from soundanomaly.streaming.scorers import GaussianStreamScorer

        owner = next(c for c in type(self).__mro__ if MahalanobisHooks in c.__bases__)
        own = getattr(type(self), "_score_windows", None) is getattr(owner, "_score_windows", None)
        return GaussianStreamScorer(self.mean_, self.precision_) if own else None

    def _export_parts(self) -> dict[str, Any]:
        return mahalanobis_parts(self.mean_, None, self.precision_)
