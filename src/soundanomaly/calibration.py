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

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from soundanomaly._validation import check_finite_float, check_labels, check_scores
from soundanomaly.exceptions import CalibrationWarning, ParameterError

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
    n_normal, n_abnormal : int
        Clips of each class the threshold was chosen from.
    source : str
        Where those clips came from: ``"holdout"`` (held out by ``fit``),
        ``"training"`` (the training clips themselves: optimistic),
        ``"calibrate"`` (clips given to ``calibrate``), or ``""``.

    Examples
    --------
    >>> calibration = ThresholdCalibrator("max_f1").fit([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])
    >>> calibration.threshold, calibration.strategy
    (0.5, 'max_f1')

    """

    threshold: float
    strategy: str
    sweep: Sweep
    n_normal: int = 0
    n_abnormal: int = 0
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (threshold, strategy, clip counts and source)."""
        return {
            "threshold": self.threshold,
            "strategy": self.strategy,
            "n_normal": self.n_normal,
            "n_abnormal": self.n_abnormal,
            "source": self.source,
        }


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
    s = check_scores(scores)
    y = np.zeros(len(s), dtype=np.int8) if labels is None else check_labels(labels, n=len(s))
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
        PyOD's ``contamination`` plays this role when scores come from normal
        clips only. With ``n`` normal clips the smallest rate that can be told
        apart is about ``1 / (n + 1)``; when ``target_fpr`` is below it the
        threshold is the highest normal score and a :class:`CalibrationWarning`
        says how many clips the target needs.
    target_recall : float in (0, 1], default 0.9

    Examples
    --------
    >>> cal = ThresholdCalibrator("min_errors").fit([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1])
    >>> cal.threshold
    0.25
    >>> ThresholdCalibrator("target_fpr", target_fpr=0.0).fit([1.0, 2.0, 3.0]).threshold
    3.0
    >>> ThresholdCalibrator("target_fpr", target_fpr=0.25).fit(np.arange(40.0)).threshold
    29.5
    """

    def __init__(self, strategy: Strategy = "target_fpr", *, target_fpr: float = 0.01, target_recall: float = 0.9):
        if not isinstance(strategy, str) or strategy not in STRATEGIES:
            raise ParameterError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if not 0.0 <= check_finite_float(target_fpr, name="target_fpr") < 1.0:
            raise ParameterError(f"target_fpr must be in [0, 1), got {target_fpr!r}")
        if not 0.0 < check_finite_float(target_recall, name="target_recall") <= 1.0:
            raise ParameterError(f"target_recall must be in (0, 1], got {target_recall!r}")
        self.strategy: Strategy = strategy
        self.target_fpr = target_fpr
        self.target_recall = target_recall

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters (scikit-learn convention; ``sklearn.base.clone`` works).

        Examples
        --------
        >>> ThresholdCalibrator("max_f1").get_params()
        {'strategy': 'max_f1', 'target_fpr': 0.01, 'target_recall': 0.9}

        """
        return {"strategy": self.strategy, "target_fpr": self.target_fpr, "target_recall": self.target_recall}

    def set_params(self, **params: Any) -> ThresholdCalibrator:
        """Set parameters (validated as in the constructor); returns ``self``."""
        merged = {**self.get_params(), **params}
        unknown = set(params) - set(self.get_params())
        if unknown:
            raise ParameterError(f"ThresholdCalibrator has no parameter(s) {sorted(unknown)}")
        checked = ThresholdCalibrator(**merged)
        self.strategy, self.target_fpr, self.target_recall = checked.strategy, checked.target_fpr, checked.target_recall
        return self

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThresholdCalibrator) and self.get_params() == other.get_params()

    def __hash__(self) -> int:
        return hash(tuple(self.get_params().items()))

    def min_normal_clips(self) -> int:
        """Normal clips needed to resolve ``target_fpr`` (about ``1 / target_fpr - 1``); 1 for other strategies.

        Examples
        --------
        >>> ThresholdCalibrator(target_fpr=0.01).min_normal_clips(), ThresholdCalibrator(target_fpr=0.1).min_normal_clips()
        (99, 9)

        """
        if self.strategy != "target_fpr" or self.target_fpr <= 0:
            return 1
        return max(1, math.ceil(1.0 / self.target_fpr - 1.0 - 1e-9))

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

    def fit(self, scores: npt.ArrayLike, labels: npt.ArrayLike | None = None, *, source: str = "") -> Calibration:
        """Choose the threshold.

        Parameters
        ----------
        scores : array-like [shape=(n_clips,)]
            Anomaly scores, higher = more anomalous.
        labels : array-like [shape=(n_clips,)] of {0, 1}, optional
            1 = anomaly (or "normal"/"abnormal"). Required by every strategy but ``target_fpr``.
        source : str, optional
            Recorded in the result (see :attr:`Calibration.source`).

        Returns
        -------
        Calibration

        Warns
        -----
        CalibrationWarning
            ``target_fpr`` is finer than the normal clips can resolve (e.g. 1 % from 3 clips).
        """
        s = check_scores(scores)
        y: npt.NDArray[np.int8] | None = None
        if labels is not None:
            y = check_labels(labels, n=len(s))
        if self.needs_labels and (y is None or y.sum() == 0 or y.sum() == len(y)):
            raise ParameterError(f"strategy {self.strategy!r} needs labels with both normal and anomalous clips")
        if y is not None and not (y == 0).any():
            raise ParameterError("target_fpr needs normal clips (label 0)")
        n_normal = len(s) if y is None else int((y == 0).sum())
        if n_normal < self.min_normal_clips():
            warnings.warn(
                f"threshold calibrated on {n_normal} normal clip(s): a false-alarm rate of {self.target_fpr:g} needs "
                f"at least {self.min_normal_clips()}; the threshold is the highest normal score, and about "
                f"{1 / (n_normal + 1):.0%} of new normal clips may be flagged. Calibrate on more normal clips "
                "or raise target_fpr.",
                CalibrationWarning,
                stacklevel=2,
            )
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
        return Calibration(
            float(result.thresholds[index]), self.strategy, result, n_normal, len(s) - n_normal, str(source)
        )
