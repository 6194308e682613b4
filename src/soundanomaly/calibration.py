"""Turning anomaly scores into labels: threshold strategies.

A clip is labelled an anomaly when ``score > threshold``. Where the threshold
comes from matters as much as the model:

* ``"target_fpr"`` needs only **normal** clips held out from training (a
  validation set): the threshold lets through at most ``target_fpr`` of them as
  false alarms. This is the honest choice in production, where anomalies are
  rare and unknown in advance.
* ``"min_errors"`` (the reference recipe's), ``"max_f1"`` and ``"target_recall"``
  need labelled anomalies. Tuned on the **test** set they inflate every metric
  computed on that same set: the threshold has seen the answers. Tune them on a
  separate labelled validation set, or report them as an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly.exceptions import ParameterError

__all__ = ["STRATEGIES", "Calibration", "Strategy", "ThresholdCalibrator", "sweep"]

Strategy = Literal["target_fpr", "min_errors", "max_f1", "target_recall"]
STRATEGIES: tuple[str, ...] = ("target_fpr", "min_errors", "max_f1", "target_recall")
_F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Sweep:
    """Counts and rates at every candidate threshold (``score > threshold`` → anomaly).

    All arrays have shape ``(n_thresholds,)``; thresholds ascend. Rates that
    are undefined (no anomalies, no positive predictions) are NaN.
    """

    thresholds: _F64
    false_positives: npt.NDArray[np.int64]
    false_negatives: npt.NDArray[np.int64]
    precision: _F64
    recall: _F64
    f1: _F64
    false_positive_rate: _F64


@dataclass(frozen=True)
class Calibration:
    """A chosen threshold and the sweep it was chosen from (for plotting).

    Attributes
    ----------
    threshold : float
        Label a clip an anomaly when its score is strictly greater.
    strategy : str
    sweep : Sweep

    Examples
    --------
    >>> calibration = ThresholdCalibrator("max_f1").fit([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    >>> calibration.threshold, calibration.strategy
    (0.5, 'max_f1')

    """

    threshold: float
    strategy: str
    sweep: Sweep

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (threshold and strategy)."""
        return {"threshold": self.threshold, "strategy": self.strategy}


def _candidates(scores: _F64) -> _F64:
    unique = np.unique(scores)
    span = float(unique[-1] - unique[0]) or max(abs(float(unique[0])), 1.0)
    below = unique[0] - 1e-3 * span
    return np.concatenate([[below], (unique[:-1] + unique[1:]) / 2, [unique[-1]]])


def sweep(scores: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> Sweep:
    """Evaluate every useful threshold on ``scores`` (labels: 1 = anomaly).

    Without labels every clip is taken as normal (false negatives are 0,
    precision/recall NaN).

    Examples
    --------
    >>> result = sweep([0.1, 0.4, 0.8], [0, 1, 1])
    >>> result.thresholds.tolist(), result.false_negatives.tolist()
    ([0.0993, 0.25, 0.6000000000000001, 0.8], [0, 0, 1, 2])

    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.zeros(len(s), dtype=np.int8) if labels is None else np.asarray(labels).astype(np.int8)
    thresholds = _candidates(s)
    normal = np.sort(s[y == 0])
    abnormal = np.sort(s[y == 1])
    # scores strictly above t: n - searchsorted(side="right")
    fp = len(normal) - np.searchsorted(normal, thresholds, side="right")
    tp = len(abnormal) - np.searchsorted(abnormal, thresholds, side="right")
    fn = len(abnormal) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        recall = tp / len(abnormal) if len(abnormal) else np.full(len(thresholds), np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f1 = np.where(np.isnan(recall), np.nan, f1)
        fpr = fp / len(normal) if len(normal) else np.full(len(thresholds), np.nan)
    return Sweep(
        thresholds, fp.astype(np.int64), fn.astype(np.int64), precision, recall, np.asarray(f1, dtype=np.float64), fpr
    )


class ThresholdCalibrator:
    """Choose a decision threshold from scores.

    Parameters
    ----------
    strategy : {"target_fpr", "min_errors", "max_f1", "target_recall"}, default "target_fpr"
        * ``target_fpr``: smallest threshold whose false-positive rate on the
          normal clips is at most ``target_fpr`` (labels optional: without
          them every clip is taken as normal).
        * ``min_errors``: fewest false positives + false negatives (the
          reference recipe's rule); ties go to the lowest threshold.
        * ``max_f1``: highest F1 with anomaly as the positive class.
        * ``target_recall``: highest threshold that still finds at least
          ``target_recall`` of the anomalies (fewest false alarms).
    target_fpr : float in [0, 1), default 0.01
    target_recall : float in (0, 1], default 0.9

    Examples
    --------
    >>> cal = ThresholdCalibrator("min_errors").fit([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1])
    >>> cal.threshold
    0.25
    >>> ThresholdCalibrator("target_fpr", target_fpr=0.0).fit([1.0, 2.0, 3.0]).threshold
    3.0
    """

    def __init__(self, strategy: Strategy = "target_fpr", *, target_fpr: float = 0.01, target_recall: float = 0.9):
        if strategy not in STRATEGIES:
            raise ParameterError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if not 0.0 <= target_fpr < 1.0:
            raise ParameterError(f"target_fpr must be in [0, 1), got {target_fpr!r}")
        if not 0.0 < target_recall <= 1.0:
            raise ParameterError(f"target_recall must be in (0, 1], got {target_recall!r}")
        self.strategy: Strategy = strategy
        self.target_fpr = target_fpr
        self.target_recall = target_recall

    def __repr__(self) -> str:
        extra = {
            "target_fpr": f", target_fpr={self.target_fpr}",
            "target_recall": f", target_recall={self.target_recall}",
        }
        return f"ThresholdCalibrator({self.strategy!r}{extra.get(self.strategy, '')})"

    @property
    def needs_labels(self) -> bool:
        """Whether the strategy needs labelled anomalies."""
        return self.strategy != "target_fpr"

    def fit(self, scores: npt.ArrayLike, labels: npt.ArrayLike | None = None) -> Calibration:
        """Choose the threshold.

        Parameters
        ----------
        scores : array-like [shape=(n_clips,)]
            Anomaly scores, higher = more anomalous.
        labels : array-like [shape=(n_clips,)] of {0, 1}, optional
            1 = anomaly. Required by every strategy but ``target_fpr``.

        Returns
        -------
        Calibration
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 1 or len(s) == 0:
            raise ParameterError(f"scores must be a non-empty 1-D array, got shape {s.shape}")
        if not np.isfinite(s).all():
            raise ParameterError("scores contain NaN or infinite values")
        y: npt.NDArray[np.int8] | None = None
        if labels is not None:
            y = np.asarray(labels).astype(np.int8)
            if y.shape != s.shape or not np.isin(y, (0, 1)).all():
                raise ParameterError("labels must be 0/1 (1 = anomaly) with one label per score")
        if self.needs_labels and (y is None or y.sum() == 0 or y.sum() == len(y)):
            raise ParameterError(f"strategy {self.strategy!r} needs labels with both normal and anomalous clips")
        if y is not None and not (y == 0).any():
            raise ParameterError("target_fpr needs normal clips (label 0)")
        result = sweep(s, y)
        if self.strategy == "target_fpr":
            index = int(np.argmax(result.false_positive_rate <= self.target_fpr + 1e-12))
        elif self.strategy == "min_errors":
            index = int(np.argmin(result.false_positives + result.false_negatives))
        elif self.strategy == "max_f1":
            index = int(np.nanargmax(result.f1))
        else:
            ok = np.flatnonzero(result.recall >= self.target_recall - 1e-12)
            index = int(ok[-1])
        return Calibration(float(result.thresholds[index]), self.strategy, result)
